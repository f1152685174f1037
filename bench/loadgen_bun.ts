// The suite's native load generator: Bun's built-in WebSocket client, 127.0.0.1 only.
//
//   bun bench/loadgen_bun.ts --scenario echo --port P --conns 50 --seconds 2 --server-pid PID
//
// The same workloads and the same one-line JSON answer as bench/loadgen.py (which stays the
// load generator of the other scenarios and of socket.io): `echo` (each connection one ECHO
// RPC in flight: replies/s, round-trip p50/p99) and `pipelined` (each connection `--inflight`
// PING events in flight, each PONG answered by a new PING: messages/s). It exists because the
// Python load generator saturates its core near 90-100k msg/s, below what raw Bun and raw
// picows can serve; `bench/run.py --loadgen bun` uses it, and its report shows the load
// generator's CPU beside the server's so a saturated client is visible. Every wait is bounded
// (`--deadline`).

import { readFileSync } from "node:fs";

type Args = Record<string, string>;

function parseArgs(argv: string[]): Args {
  const out: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    if (key.startsWith("--")) out[key.slice(2)] = argv[i + 1] ?? "";
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const scenario = args["scenario"] ?? "echo";
const port = Number(args["port"] ?? "0");
const conns = Number(args["conns"] ?? "1");
const inflight = Number(args["inflight"] ?? "20");
const seconds = Number(args["seconds"] ?? "2");
const warmup = Number(args["warmup"] ?? "0.5");
const serverPid = Number(args["server-pid"] ?? "0");
const deadline = Number(args["deadline"] ?? "300");
const HOST = "127.0.0.1";
const CLK_TCK = 100; // Linux USER_HZ

function procCpu(pid: number): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function cpuTicks(): [number, number] {
  const values = readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/).slice(1).map(Number);
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  return [values[7] ?? 0, total];
}

function selfCpu(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

class Window {
  wall = 0;
  own = 0;
  server = 0;
  steal: [number, number] = [0, 0];
  start(): void {
    this.wall = performance.now();
    this.own = selfCpu();
    this.server = procCpu(serverPid);
    this.steal = cpuTicks();
  }
  stop(): Record<string, number> {
    const wall = Math.max((performance.now() - this.wall) / 1000, 1e-9);
    const [steal, total] = cpuTicks();
    return {
      seconds: wall,
      loadgen_cpu: (selfCpu() - this.own) / wall,
      server_cpu: serverPid ? (procCpu(serverPid) - this.server) / wall : 0,
      steal: (steal - this.steal[0]) / Math.max(total - this.steal[1], 1),
    };
  }
}

function percentiles(ns: number[]): Record<string, number> {
  if (ns.length === 0) return { p50_ms: NaN, p99_ms: NaN };
  ns.sort((a, b) => a - b);
  const pick = (q: number) => ns[Math.min(ns.length - 1, Math.floor(q * ns.length))] / 1e6;
  return { p50_ms: pick(0.5), p99_ms: pick(0.99) };
}

const sleep = (s: number) => new Promise<void>((resolve) => setTimeout(resolve, s * 1000));

function open(onMessage: (ws: WebSocket, data: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}/`);
    const timer = setTimeout(() => reject(new Error("handshake timed out")), 10_000);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onerror = () => reject(new Error("connection failed"));
    ws.onmessage = (event) => onMessage(ws, event.data as string);
  });
}

async function openAll(count: number, onMessage: (ws: WebSocket, data: string) => void): Promise<WebSocket[]> {
  const out: WebSocket[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Math.min(100, count - i);
    out.push(...(await Promise.all(Array.from({ length: batch }, () => open(onMessage)))));
  }
  return out;
}

// What a scenario's message handler reads and counts; `measured` runs the window around it.
type Run = { recording: boolean; stopping: boolean; count: number; errors: number };

// Warm up, then count replies for `seconds` while the window meters CPU; then stop sending
// and close. The scenario has already put its first messages in flight.
async function measured(window: Window, sockets: WebSocket[], run: Run): Promise<Record<string, number>> {
  await sleep(warmup);
  window.start();
  run.recording = true;
  await sleep(seconds);
  run.recording = false;
  const figures = window.stop();
  run.stopping = true;
  for (const ws of sockets) ws.close();
  return { rate: run.count / figures.seconds, errors: run.errors, ...figures };
}

async function echo(window: Window): Promise<Record<string, number>> {
  const latencies: number[] = [];
  const sentAt = new Map<WebSocket, number>();
  const seq = new Map<WebSocket, number>();
  const run: Run = { recording: false, stopping: false, count: 0, errors: 0 };
  const send = (ws: WebSocket) => {
    const n = (seq.get(ws) ?? 0) + 1;
    seq.set(ws, n);
    sentAt.set(ws, Bun.nanoseconds());
    ws.send(`{"type":"ECHO","meta":{"correlationId":"${n}"},"payload":{"text":"hello"}}`);
  };
  const sockets = await openAll(conns, (ws, data) => {
    const now = Bun.nanoseconds();
    if (!data.startsWith('{"type":"ECHO_OK"') || !data.includes(`"correlationId":"${seq.get(ws)}"`)) {
      run.errors++;
      return;
    }
    if (run.recording) {
      run.count++;
      latencies.push(now - (sentAt.get(ws) ?? now));
    }
    if (!run.stopping) send(ws);
  });
  for (const ws of sockets) send(ws);
  const figures = await measured(window, sockets, run);
  return { ...figures, ...percentiles(latencies) };
}

async function pipelined(window: Window): Promise<Record<string, number>> {
  const PING = '{"type":"PING","payload":{"text":"hello"}}';
  const run: Run = { recording: false, stopping: false, count: 0, errors: 0 };
  const sockets = await openAll(conns, (ws, data) => {
    if (!data.startsWith('{"type":"PONG"')) {
      run.errors++;
      return;
    }
    if (run.recording) run.count++;
    if (!run.stopping) ws.send(PING);
  });
  for (const ws of sockets) for (let i = 0; i < inflight; i++) ws.send(PING);
  return measured(window, sockets, run);
}

const scenarios: Record<string, (w: Window) => Promise<Record<string, number>>> = { echo, pipelined };

async function main(): Promise<number> {
  const run = scenarios[scenario];
  if (run === undefined) {
    console.log(JSON.stringify({ error: `bun load generator has no scenario ${scenario}` }));
    return 1;
  }
  const bound = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("deadline")), deadline * 1000));
  try {
    const result = await Promise.race([run(new Window()), bound]);
    console.log(JSON.stringify(result));
    return 0;
  } catch (exc) {
    console.log(JSON.stringify({ error: String(exc) }));
    return 1;
  }
}

process.exit(await main());
