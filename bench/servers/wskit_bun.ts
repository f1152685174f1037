// WS-Kit 0.10 on Bun speaking the bench messages (bench/README.md): zod schemas, pub/sub
// through @ws-kit/memory. Run by bench/run.py as `bun bench/servers/wskit_bun.ts --port P`.
import { createBunHandler } from "@ws-kit/bun";
import { memoryPubSub } from "@ws-kit/memory";
import { createRouter, message, rpc, withPubSub, withZod, z } from "@ws-kit/zod";

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);

const Text = { text: z.string() };
const Topic = { topic: z.string() };
const Tick = { topic: z.string(), seq: z.number().int(), t: z.number().int() };

const Echo = rpc("ECHO", Text, "ECHO_OK", Text);
const Ping = message("PING", Text);
const Pong = message("PONG", Text);
const Sub = rpc("SUB", Topic, "SUBBED", Topic);
const Pub = message("PUB", Tick);
const TickMsg = message("TICK", Tick);

const router = createRouter()
  .plugin(withZod())
  .plugin(withPubSub({ adapter: memoryPubSub() }));

router.rpc(Echo, (ctx) => {
  ctx.reply({ text: ctx.payload.text });
});
router.on(Ping, (ctx) => {
  ctx.send(Pong, { text: ctx.payload.text });
});
router.rpc(Sub, async (ctx) => {
  await ctx.topics.subscribe(ctx.payload.topic);
  ctx.reply({ topic: ctx.payload.topic });
});
router.on(Pub, async (ctx) => {
  await ctx.publish(ctx.payload.topic, TickMsg, ctx.payload);
});

const { fetch, websocket } = createBunHandler(router);
Bun.serve({ hostname: "127.0.0.1", port, fetch, websocket });
console.log(`wskit_bun listening on ${port}`);
