// Compiled by tests/export/test_typescript_tsc.py (tsc --strict) next to chat_zod.ts (`wskit
// types --zod`) and chat.ts (`wskit types`): WS-Kit's own type helpers read the generated
// messages, and the payload types they infer are those the declarations state.
import type { InferMessage, InferPayload, InferResponse, InferType } from "@ws-kit/zod";
import type { ChatMessage, HistoryResult, JoinPayload, SayPayload } from "./chat";
import { HISTORY, JOIN, MESSAGES, ROOM_MSG, SAY, SayPayload as SayPayloadSchema } from "./chat_zod";

export const said: InferPayload<typeof SAY> = { room: "lobby", text: "hi" };
// @ts-expect-error -- a SAY's text is a string
export const badText: InferPayload<typeof SAY> = { room: "lobby", text: 1 };
// @ts-expect-error -- WS-Kit infers the strict shape: no unknown key
export const extraKey: InferPayload<typeof SAY> = { room: "lobby", text: "hi", color: "red" };

// the zod module and the declarations agree, both ways
export const asDeclared: SayPayload = said;
export const fromDeclared: InferPayload<typeof SAY> = asDeclared;
export const joinBack: InferPayload<typeof JOIN> = {} as JoinPayload;
export const joinThere: JoinPayload = {} as InferPayload<typeof JOIN>;

export function reply(answer: InferResponse<typeof HISTORY>): HistoryResult {
  return answer;
}
export function heard(msg: InferMessage<typeof ROOM_MSG>): ChatMessage {
  return msg.payload;
}
export const type: InferType<typeof SAY> = "SAY";
// @ts-expect-error -- SAY's type is "SAY"
export const wrongType: InferType<typeof SAY> = "JOIN";
export const lookedUp: typeof SAY = MESSAGES.SAY;
export const parsed = SayPayloadSchema.safeParse({ room: "lobby", text: "hi" });
