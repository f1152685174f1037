// Compiled by tests/export/test_typescript_tsc.py (tsc --strict) next to chat.ts, the chat
// demo's `wskit types` output: what a front end writes against it compiles, and every line
// marked @ts-expect-error must fail to (tsc reports an expectation that is not met).
import type { InboundMessage, InboundOf, JoinPayload, OutboundMessage, OutboundOf, Payloads, Rpcs, SayPayload } from "./chat";
import { INBOUND_TYPES, OUTBOUND_TYPES, RPC_TYPES } from "./chat";

export const say: InboundMessage = { type: "SAY", meta: { timestamp: 1 }, payload: { room: "lobby", text: "hi" } };
export const join: InboundOf<"JOIN"> = { type: "JOIN", payload: { room: "lobby", name: "ada", offset: null } };
export const history: InboundOf<"HISTORY"> = {
  type: "HISTORY",
  meta: { correlationId: "h1", timeoutMs: 5000 },
  payload: { room: "lobby", limit: 5 },
};
export const heartbeat: InboundMessage = { type: "__heartbeat" };

// @ts-expect-error -- a SAY's text is a string
export const badText: InboundMessage = { type: "SAY", payload: { room: "lobby", text: 1 } };
// @ts-expect-error -- payloads are strict: no key the model lacks
export const extraKey: SayPayload = { room: "lobby", text: "hi", color: "red" };
// @ts-expect-error -- a JOIN names the joiner
export const noName: JoinPayload = { room: "lobby" };
// @ts-expect-error -- a request carries its correlationId
export const noCorrelation: InboundMessage = { type: "HISTORY", payload: { room: "lobby" } };
// @ts-expect-error -- the union is discriminated: a JOIN does not take a SAY's payload
export const mixed: InboundMessage = { type: "JOIN", payload: { room: "lobby", text: "hi" } };
// @ts-expect-error -- the server never sends SAY
export const notSent: OutboundMessage = { type: "SAY", payload: { room: "lobby", text: "hi" } };
// @ts-expect-error -- meta keys are the protocol's own (clientId is the server's)
export const clientId: InboundMessage = { type: "SAY", meta: { clientId: "x" }, payload: { room: "l", text: "t" } };

/** Narrowing on `type` reaches each payload's fields. */
export function describe(msg: OutboundMessage): string {
  switch (msg.type) {
    case "ROOM_MSG":
      return `${msg.payload.name}: ${msg.payload.text} (${msg.payload.id + 1}, offset ${msg.meta?.offset ?? "-"})`;
    case "HISTORY_RESULT":
      return `${msg.payload.messages.length} for ${msg.meta.correlationId}`;
    case "ERROR":
    case "RPC_ERROR":
      return `${msg.payload.code}: ${msg.payload.message} ${msg.payload.retryAfterMs ?? ""}`;
    case "SERVER_SHUTDOWN":
      return msg.payload.reason;
    case "$ws:subscribed":
      return `${msg.payload.topic} ${msg.payload.offset ?? "live"}`;
    default:
      return msg.type;
  }
}

export const welcome: OutboundOf<"WELCOME">["payload"] = { client_id: "c", max_members: 2, history_len: 3 };
export const answer: Rpcs["HISTORY"]["response"] = { room: "lobby", messages: [] };
export const answerType: Rpcs["WHO"]["responseType"] = "WHO_RESULT";
// @ts-expect-error -- WHO is answered WHO_RESULT
export const wrongAnswer: Rpcs["WHO"]["responseType"] = "HISTORY_RESULT";
export const request: Payloads["WHO"] = { room: "lobby" };
export const sendable: (typeof INBOUND_TYPES)[number] = "SAY";
// @ts-expect-error -- ROOM_MSG is not a type a client sends
export const notSendable: (typeof INBOUND_TYPES)[number] = "ROOM_MSG";
export const all: readonly string[] = [...INBOUND_TYPES, ...OUTBOUND_TYPES, ...RPC_TYPES];
