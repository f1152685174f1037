// Types of wskit.js, the browser client served at /wskit.js (editors pick this file up beside it).

/** "closed" (closeError null) before the first connect() */
export type State = "connecting" | "open" | "reconnecting" | "closed";

export interface Message<P = any> {
  type: string;
  meta: Record<string, any>;
  payload: P;
}

export interface Position {
  offset: number;
  epoch: string;
}

export interface StateChange {
  old: State;
  state: State;
  /** why the state changed (the lost connection, the refusal, the shutdown notice) */
  error: ClientError | null;
  /** ms until the next connection attempt (reconnecting), else null */
  retryIn: number | null;
}

export interface Dropped {
  type: string;
  size: number;
  correlationId: string | null;
  reason: string;
}

export interface ClientOptions {
  /** a string, or a function (sync or async) asked on every (re)connect */
  token?: string | null | (() => string | null | undefined | Promise<string | null | undefined>);
  /** "query" (default): ?access_token=; "subprotocol": Sec-WebSocket-Protocol bearer.<token> */
  tokenPlace?: "query" | "subprotocol";
  protocols?: string[];
  /** ms; defaults 500, 2, 30000, null (never stop) */
  backoff?: {
    initialDelay?: number;
    multiplier?: number;
    maxDelay?: number;
    maxAttempts?: number | null;
    /** ms a connection must stay open before the backoff starts again from its first step (5000) */
    resetAfter?: number;
  };
  /** ms; defaults 10000 and 5000; null turns it off */
  heartbeat?: { interval?: number; timeout?: number } | null;
  /** defaults 1000 frames, 1 MiB, "queue" */
  offline?: { maxCount?: number; maxBytes?: number; policy?: "queue" | "drop-oldest" | "drop-new" };
  /** failed upgrades in a row, while the server answers HTTP, before stopping (default 5) */
  maxRefusals?: number;
  /** the URL asked whether the server is up after a failed upgrade (default "readyz" beside the socket URL); false: never ask */
  probeUrl?: string | false;
  resubscribeTimeout?: number;
  /** default request timeout, ms (5000) */
  requestTimeout?: number;
  /** application close codes (3000-4999) after which the client reconnects instead of stopping */
  reconnectCodes?: number[];
  onState?: (change: StateChange) => void;
  onDrop?: (drop: Dropped) => void;
  onError?: (error: unknown) => void;
}

export interface RequestOptions {
  /** ms (default 5000), sent as meta.timeoutMs */
  timeout?: number;
  onProgress?: (payload: any) => void;
  /** aborting cancels the request on the server too ($ws:rpc-cancel) */
  signal?: AbortSignal;
  /** sent again after a reconnect instead of failing with UNAVAILABLE */
  idempotent?: boolean;
  /** the answer's type(s): another frame carrying this request's correlationId is not its answer */
  response?: string | string[];
  /** extra meta keys (e.g. traceparent); correlationId and timeoutMs are set by the client */
  meta?: Record<string, unknown>;
}

export class ClientError extends Error {
  constructor(code: string, message?: string, extra?: { details?: any; retryable?: boolean; retryAfterMs?: number | null });
  /** the wire code: NOT_FOUND, UNAVAILABLE, an application code such as ROOM_FULL... */
  code: string;
  details: any;
  retryable: boolean;
  retryAfterMs: number | null;
  static fromPayload(payload: any): ClientError;
}

export class Subscription {
  readonly topic: string;
  active: boolean;
  readonly position: Position | null;
  /** fn(error) when what was missed cannot be replayed: reload state there; returns a remover */
  onReset(fn: (error: ClientError) => void | Promise<void>): () => void;
  unsubscribe(): Promise<void>;
}

export class Client extends EventTarget {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  state: State;
  closeError: ClientError | null;
  /** topic -> last position seen (server-made subscriptions too, e.g. a JOIN's) */
  positions: Map<string, Position>;
  readonly queued: number;
  connect(): Promise<void>;
  send(type: string, payload?: unknown, meta?: Record<string, unknown>): Promise<void>;
  request<P = any>(type: string, payload?: unknown, options?: RequestOptions): Promise<Message<P>>;
  on<P = any>(type: string, fn: (msg: Message<P>) => void | Promise<void>): () => void;
  onState(fn: (change: StateChange) => void): () => void;
  /** runs on every open connection after resubscribing, before the offline queue is flushed */
  onConnect(fn: (client: Client) => void | Promise<void>): () => void;
  /** settles with the server's answer, on the next connection when disconnected (a refusal rejects) */
  subscribe(topic: string): Promise<Subscription>;
  close(): Promise<void>;
}
