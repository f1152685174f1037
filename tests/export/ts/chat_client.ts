// Run by tests/export/test_typescript_wskit.py under Bun, next to chat_zod.ts (`wskit types
// --zod` of the chat demo), against a wskit server serving the demo: `bun chat_client.ts URL`.
// Prints one JSON object of what happened; the test asserts on it.
//
// It does what WS-Kit's client does with a message() schema (@ws-kit/client 0.10 is not
// published on the npm registry): stamp meta, safeParse the whole frame before sending and
// refuse to send what fails, match replies by correlationId and safeParse them with the
// RPC's response schema, and check every frame it receives against the schema of its type.
import type { BrandedSchema, InferPayload, InferResponse, MessageSchema } from "@ws-kit/zod";
import { HISTORY, JOIN, MESSAGES, SAY } from "./chat_zod";

declare const process: { argv: string[]; exit(code: number): never };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any message: its payload, response and meta vary
type AnySchema = MessageSchema & BrandedSchema<string, any, any, any>;
type Frame = { type: string; meta?: Record<string, unknown>; payload?: unknown };
type Issue = { path: string; message: string };

const received: Frame[] = [];
const failedSchema: Record<string, unknown> = {};
const unknownTypes: string[] = [];
let wake: () => void = () => {};

const socket = new WebSocket(process.argv[2]);
socket.onmessage = (event: MessageEvent) => {
  const frame = JSON.parse(String(event.data)) as Frame;
  received.push(frame);
  const byType: Record<string, MessageSchema | undefined> = MESSAGES;
  const schema = byType[frame.type];
  if (schema === undefined) {
    unknownTypes.push(frame.type);
  } else {
    const checked = schema.safeParse(frame);
    if (!checked.success) failedSchema[frame.type] = checked.error.issues;
  }
  wake();
};

async function next(match: (frame: Frame) => boolean, what: string): Promise<Frame> {
  const deadline = Date.now() + 5000;
  for (let seen = 0; ; ) {
    for (; seen < received.length; seen++) if (match(received[seen])) return received.splice(seen, 1)[0];
    if (Date.now() > deadline) throw new Error(`no ${what} within 5 s; received ${JSON.stringify(received)}`);
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
}

function typeOf(schema: MessageSchema): string {
  return (schema as unknown as { messageType: string }).messageType;
}

function issuesOf(error: { issues: { path: PropertyKey[]; message: string }[] }): Issue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
}

/** WS-Kit's send(): the frame is checked whole, and sent only when it passes. */
function send<S extends AnySchema>(schema: S, payload: InferPayload<S>, meta: Record<string, unknown> = {}): Issue[] {
  const frame = { type: typeOf(schema), meta: { timestamp: Date.now(), ...meta }, payload };
  const checked = schema.safeParse(frame);
  if (!checked.success) return issuesOf(checked.error);
  socket.send(JSON.stringify(checked.data));
  return [];
}

/** WS-Kit's request(): send with a correlationId, then the reply, checked by the response schema. */
async function request<S extends AnySchema>(schema: S, payload: InferPayload<S>): Promise<InferResponse<S>> {
  const correlationId = crypto.randomUUID();
  const refused = send(schema, payload, { correlationId });
  if (refused.length) throw new Error(`refused: ${JSON.stringify(refused)}`);
  const reply = await next((f) => f.meta?.correlationId === correlationId, `answer to ${typeOf(schema)}`);
  if (reply.type === "RPC_ERROR") throw new Error(`RPC_ERROR ${JSON.stringify(reply.payload)}`);
  const checked = (schema as unknown as { response: AnySchema }).response.safeParse(reply);
  if (!checked.success) throw new Error(`reply fails its schema: ${JSON.stringify(checked.error.issues)}`);
  return (checked.data as { payload: InferResponse<S> }).payload;
}

function errorOf(frame: Frame): { type: string; code: unknown; paths: string[] } {
  const payload = frame.payload as { code?: unknown; details?: { issues?: { path: unknown[] }[] } };
  const paths = (payload.details?.issues ?? []).map((issue) => issue.path.map(String).join("."));
  return { type: frame.type, code: payload.code, paths };
}

await new Promise<void>((resolve, reject) => {
  socket.onopen = () => resolve();
  socket.onerror = () => reject(new Error("cannot connect"));
});
const welcome = await next((f) => f.type === "WELCOME", "WELCOME");

const joinRefused = send(JOIN, { room: "lobby", name: "ada" });
const joined = await next((f) => f.type === "JOINED", "JOINED");
const position = await next((f) => f.type === "POSITION", "POSITION");
const sayRefused = send(SAY, { room: "lobby", text: "hello from WS-Kit" });
const said = await next((f) => f.type === "ROOM_MSG", "ROOM_MSG");
const history = await request(HISTORY, { room: "lobby", limit: 10 });

// what the schema refuses never leaves; the same frames sent raw are refused by the server too
const emptyText = send(SAY, { room: "lobby", text: "" });
const badRoom = send(SAY, { room: "Lobby!", text: "hi" });
const extraKey = send(SAY, { room: "lobby", text: "hi", color: "red" } as InferPayload<typeof SAY>);
socket.send(JSON.stringify({ type: "SAY", payload: { room: "lobby", text: "" } }));
const serverOnEmptyText = errorOf(await next((f) => f.type === "ERROR", "ERROR"));
socket.send(JSON.stringify({ type: "HISTORY", meta: { correlationId: "bad-1" }, payload: { room: "Lobby!" } }));
const serverOnBadRoom = errorOf(await next((f) => f.meta?.correlationId === "bad-1", "RPC_ERROR"));

console.log(
  JSON.stringify({
    welcome: welcome.payload,
    joinRefused,
    joined: joined.payload,
    position: position.payload,
    sayRefused,
    said: { payload: said.payload, meta: said.meta },
    history: { room: history.room, texts: history.messages.map((m) => m.text) },
    refused: { emptyText, badRoom, extraKey },
    server: { emptyText: serverOnEmptyText, badRoom: serverOnBadRoom },
    failedSchema,
    unknownTypes,
  }),
);
socket.close();
process.exit(0);
