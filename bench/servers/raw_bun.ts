// Raw Bun: Bun.serve, JSON.parse/stringify and native publish, speaking the bench messages
// (bench/README.md). The ceiling of the runtime WS-Kit runs on.
const port = Number(process.argv[process.argv.indexOf("--port") + 1]);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("upgrade required", { status: 400 });
  },
  websocket: {
    idleTimeout: 0,
    sendPings: false,
    message(ws, raw) {
      const msg = JSON.parse(typeof raw === "string" ? raw : raw.toString());
      switch (msg.type) {
        case "ECHO":
          ws.send(JSON.stringify({ type: "ECHO_OK", meta: { correlationId: msg.meta.correlationId }, payload: msg.payload }));
          break;
        case "PING":
          ws.send(JSON.stringify({ type: "PONG", payload: msg.payload }));
          break;
        case "SUB":
          ws.subscribe(msg.payload.topic);
          ws.send(JSON.stringify({ type: "SUBBED", meta: { correlationId: msg.meta.correlationId }, payload: msg.payload }));
          break;
        case "PUB":
          server.publish(msg.payload.topic, JSON.stringify({ type: "TICK", payload: msg.payload }));
          break;
      }
    },
  },
});
console.log(`raw_bun listening on ${port}`);
