// wskit.js: the browser client of wskit (served at /wskit.js; no build step, no dependencies).
//
//   import { Client } from "/wskit.js";
//   const client = new Client("ws://127.0.0.1:8000/", { token: async () => getToken() });
//   await client.connect();
//   client.send("SAY", { room: "r", text: "hi" });
//   const res = await client.request("GET_USER", { id: "1" }, { timeout: 5000 });
//   const off = client.on("ROOM_MSG", (msg) => show(msg.payload));
//   const sub = await client.subscribe("feed:news");
//
// It speaks the wire of docs/protocol.md and behaves as the Python client (docs/client.md):
// reconnects with full-jitter backoff, keeps an offline queue, resubscribes from the last
// position before flushing that queue, fails pending requests on a lost connection (unless
// idempotent), and notices dead connections with the `__heartbeat` frame. Where a browser
// cannot do what the Python client does (see the doc's "Browser client" section) it says so.
//
// Types: wskit.d.ts beside this file.

/** The error codes after which reconnecting cannot help: the server said "do not come back". */
const STOP_CODES = new Map([
  [1002, "INVALID_ARGUMENT"],
  [1003, "INVALID_ARGUMENT"],
  [1007, "INVALID_ARGUMENT"],
  [1008, "PERMISSION_DENIED"],
  [1009, "RESOURCE_EXHAUSTED"],
  [1010, "INVALID_ARGUMENT"],
  [1015, "UNAVAILABLE"],
]);

/** Catalogue defaults of `retryable` (docs/protocol.md), for errors that do not say. */
const RETRYABLE = new Set(["UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED"]);

/**
 * A refusal that may pass by itself (a timeout, overload, the broker down): a subscription
 * refused so while resuming is tried again on the next connection instead of being dropped.
 * RESOURCE_EXHAUSTED without retryAfterMs is the per-connection topic limit: it stays.
 */
function transientError(err) {
  if (!err || err.retryable === false) return false;
  if (err.code === "DEADLINE_EXCEEDED" || err.code === "UNAVAILABLE") return true;
  return err.code === "RESOURCE_EXHAUSTED" && err.retryAfterMs !== null && err.retryAfterMs !== undefined;
}

/** Whether `msg` (not an error, not progress) is an answer the waiting `call` accepts. */
function isAnswer(call, msg) {
  if (call.answers) return call.answers.has(msg.type);
  // undeclared: any application type, but not a framework frame nor a topic delivery
  return !msg.type.startsWith("$") && !msg.type.startsWith("__") && msg.type !== "SERVER_SHUTDOWN" && typeof msg.meta.topic !== "string";
}

/** Positions kept for topics the client did not subscribe itself (a server handler's JOIN). */
const MAX_OTHER_POSITIONS = 1000;
/** Longest topic name whose position is kept (the server's default limit is 128). */
const MAX_TOPIC_LENGTH = 128;

const DEFAULTS = {
  tokenPlace: "query", // "query" (?access_token=) | "subprotocol" (bearer.<token>); browsers cannot set headers
  protocols: [],
  // resetAfter: ms a connection must stay open before the backoff starts again from the first
  // step (a server that accepts, then closes at once, is redialled ever more slowly)
  backoff: { initialDelay: 500, multiplier: 2, maxDelay: 30000, maxAttempts: null, resetAfter: 5000 },
  heartbeat: { interval: 10000, timeout: 5000 },
  offline: { maxCount: 1000, maxBytes: 1024 * 1024, policy: "queue" },
  maxRefusals: 5,
  probeUrl: undefined, // where to ask whether the server is up after a failed upgrade (default: ./readyz)
  resubscribeTimeout: 10000,
  requestTimeout: 5000,
  reconnectCodes: [],
};

/** A server error (or one the client makes: UNAVAILABLE, DEADLINE_EXCEEDED...), `.code` the wire code. */
export class ClientError extends Error {
  constructor(code, message, { details = undefined, retryable = undefined, retryAfterMs = null } = {}) {
    super(message || code);
    this.name = "ClientError";
    this.code = code;
    this.details = details;
    this.retryable = retryable === undefined || retryable === null ? RETRYABLE.has(code) : !!retryable;
    this.retryAfterMs = retryAfterMs ?? null;
  }

  /** The error an `ERROR`/`RPC_ERROR` payload describes. */
  static fromPayload(p) {
    p = p || {};
    return new ClientError(p.code || "UNKNOWN", p.message, {
      details: p.details,
      retryable: p.retryable,
      retryAfterMs: p.retryAfterMs,
    });
  }
}

/** One subscription made with `client.subscribe(topic)`; kept across reconnects. */
export class Subscription {
  constructor(client, topic) {
    this.client = client;
    this.topic = topic;
    this.active = true;
    this._resets = new Set();
    this._first = null; // {resolve, reject} of a subscribe() made while disconnected
  }

  /** Settle the subscribe() that waits for this subscription's first answer, if one does. */
  _settleFirst(error) {
    const first = this._first;
    if (!first) return;
    this._first = null;
    if (error) first.reject(error);
    else first.resolve();
  }

  /** The last `{offset, epoch}` seen on the topic (null on topics without history). */
  get position() {
    return this.client.positions.get(this.topic) || null;
  }

  /** `fn(error)` runs when the server cannot replay what was missed: reload your state there. */
  onReset(fn) {
    this._resets.add(fn);
    return () => this._resets.delete(fn);
  }

  /** Leave the topic (resolves once the server confirms, or at once when disconnected). */
  async unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._subs.delete(this.topic);
    this.client.positions.delete(this.topic);
    this._settleFirst(new ClientError("CANCELLED", `${this.topic}: unsubscribed before the server answered`));
    if (this.client._live()) await this.client._call("$ws:unsubscribe", { topic: this.topic }, this.client.options.resubscribeTimeout);
  }
}

/**
 * The client. States: "connecting" | "open" | "reconnecting" | "closed" ("closed", with
 * closeError null, before the first connect()).
 * Listen with `client.onState(fn)` or `client.addEventListener("state", (e) => e.detail)`:
 * `{old, state, error, retryIn}` (retryIn: ms until the next attempt).
 */
export class Client extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    const o = { ...DEFAULTS, ...options };
    o.backoff = { ...DEFAULTS.backoff, ...(options.backoff || {}) };
    o.heartbeat = options.heartbeat === null ? null : { ...DEFAULTS.heartbeat, ...(options.heartbeat || {}) };
    o.offline = { ...DEFAULTS.offline, ...(options.offline || {}) };
    this.options = o;
    /** topic -> {offset, epoch}: the last position seen (server-made subscriptions too). */
    this.positions = new Map();
    /** Why the client stopped (a ClientError), once state is "closed". */
    this.closeError = null;
    this.state = "closed"; // until connect()
    this._handlers = new Map(); // type -> Set of fn
    this._pending = new Map(); // correlationId -> request record
    this._queue = []; // {text, size, type, cid}
    this._queueBytes = 0;
    this._roomWaiters = []; // send() calls waiting for room in the queue ("queue" policy)
    this._subs = new Map(); // topic -> Subscription
    this._connectHooks = new Set();
    this._ws = null;
    this._resuming = false; // connection open, resubscribing and flushing the queue
    this._inHooks = false; // onConnect hooks running: what they send is written at once
    this._draining = false; // SERVER_SHUTDOWN seen: nothing more is written on this connection
    this._attempt = 0; // failed attempts in a row (a connection lost within backoff.resetAfter counts)
    this._openedAt = 0; // when the current connection opened
    this._refusals = 0; // failed upgrades in a row while the server answered HTTP
    this._floor = 0; // ms: the server's retryAfterMs, a floor under the next wait
    this._timer = null;
    this._heartbeat = null;
    this._lastHeard = 0;
    this._nextId = 1;
    this._waiters = []; // connect() promises
  }

  // -- public API ---------------------------------------------------------------------------

  /** Open the connection; resolves once open. Rejects when the client stops for good. */
  connect() {
    if (this.state === "open") return Promise.resolve();
    const waiting = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === "closed") {
      this.closeError = null;
      this._attempt = 0;
      this._refusals = 0;
      this._setState("connecting");
      this._dial();
    }
    return waiting;
  }

  /** Send an event. Written now when open, else queued (see the offline queue). */
  send(type, payload, meta) {
    const frame = { type, meta: { ...(meta || {}) } };
    if (payload !== undefined) frame.payload = payload;
    return this._enqueue(frame, null);
  }

  /**
   * Call an RPC: resolves with the response `{type, meta, payload}`, rejects with a ClientError.
   * Options: timeout (ms, default 5000; sent as meta.timeoutMs), onProgress(payload),
   * signal (an AbortSignal: cancels on the server too), idempotent (sent again after a reconnect),
   * response (the answer's type, or a list of them: a frame of another type carrying this
   * request's correlationId is then not taken for its answer; without it, any application type
   * that is not a topic delivery is), meta (extra meta keys, e.g. a W3C traceparent; the
   * correlationId and timeoutMs are the client's).
   */
  request(type, payload, { timeout, onProgress, signal, idempotent = false, response, meta } = {}) {
    timeout = timeout ?? this.options.requestTimeout;
    const cid = `c${this._nextId++}-${Math.random().toString(36).slice(2, 8)}`;
    const frame = { type, meta: { ...(meta || {}), correlationId: cid, timeoutMs: timeout } };
    if (payload !== undefined) frame.payload = payload;
    return new Promise((resolve, reject) => {
      const answers = response === undefined || response === null ? null : new Set([].concat(response));
      const call = { resolve, reject, onProgress, idempotent, frame, answers, sent: false, timer: null, abort: null };
      const fail = (error) => {
        if (this._pending.get(cid) !== call) return;
        this._settle(cid);
        if (call.sent && this._live()) this._write({ type: "$ws:rpc-cancel", meta: { correlationId: cid } });
        this._unqueue(cid);
        reject(error);
      };
      call.fail = fail;
      // a little after the server's own DEADLINE_EXCEEDED, which it answers at timeoutMs
      call.timer = setTimeout(() => fail(new ClientError("DEADLINE_EXCEEDED", `${type}: no answer within ${timeout} ms`)), timeout + 250);
      if (signal) {
        if (signal.aborted) return reject(new ClientError("CANCELLED", `${type}: cancelled`));
        call.abort = () => fail(new ClientError("CANCELLED", `${type}: cancelled`));
        signal.addEventListener("abort", call.abort, { once: true });
        call.signal = signal;
      }
      this._pending.set(cid, call);
      this._enqueue(frame, cid).catch(fail);
    });
  }

  /** `fn(msg)` for every message of `type` ("*" for all); returns a function that removes it. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this._handlers.get(type)?.delete(fn);
  }

  /** `fn(change)` on every state change; returns a remover. */
  onState(fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener("state", listener);
    return () => this.removeEventListener("state", listener);
  }

  /**
   * `fn(client)` on every open connection, after the subscriptions are back and before the
   * offline queue is flushed: what it sends (e.g. an app's own JOIN from its last position)
   * goes out ahead of what was queued. It may return a promise, which is awaited.
   */
  onConnect(fn) {
    this._connectHooks.add(fn);
    return () => this._connectHooks.delete(fn);
  }

  /** Subscribe to `topic` ($ws:subscribe); kept and recovered across reconnects. */
  async subscribe(topic) {
    let sub = this._subs.get(topic);
    if (sub) return sub;
    sub = new Subscription(this, topic);
    this._subs.set(topic, sub);
    if (this._live()) {
      try {
        await this._subscribeOne(sub, false);
      } catch (err) {
        this._subs.delete(topic);
        sub.active = false;
        throw err;
      }
      return sub;
    }
    // while disconnected it is made on the next connection, before the queue is flushed; this
    // settles with the server's answer there (a refusal rejects, as when connected)
    await new Promise((resolve, reject) => {
      sub._first = { resolve, reject };
    });
    return sub;
  }

  /** Frames waiting in the offline queue. */
  get queued() {
    return this._queue.length;
  }

  /** Close for good: pending requests and queued frames fail; state "closed". */
  async close() {
    this._stop(new ClientError("CANCELLED", "The client was closed"), 1000);
  }

  // -- connecting -----------------------------------------------------------------------------

  async _dial() {
    let token = this.options.token;
    try {
      if (typeof token === "function") token = await token();
    } catch (err) {
      this._report(err);
      token = null;
    }
    if (this.state === "closed") return;
    const url = new URL(this.url, typeof location !== "undefined" ? location.href : undefined);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    const protocols = [...this.options.protocols];
    if (token && this.options.tokenPlace === "subprotocol") protocols.unshift(`bearer.${token}`);
    else if (token) url.searchParams.set("access_token", token);
    let ws;
    try {
      ws = new WebSocket(url.href, protocols);
    } catch (err) {
      // a malformed URL: retrying cannot fix it
      this._stop(new ClientError("INVALID_ARGUMENT", String(err && err.message)), null);
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this._opened(ws);
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._frame(event.data);
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._lost(ws, opened ? event.code : null, event.reason);
    };
  }

  async _opened(ws) {
    this._openedAt = Date.now(); // the attempt counter is reset only if it stays open (_lost)
    this._refusals = 0;
    this._floor = 0;
    this._draining = false;
    this._resuming = true;
    this._lastHeard = Date.now();
    this._startHeartbeat(ws);
    try {
      // 1. subscriptions from their last position, 2. idempotent requests, 3. app hooks, 4. the queue
      const transient = [];
      await Promise.all(
        [...this._subs.values()].map((sub) =>
          this._subscribeOne(sub, true).catch((err) => {
            if (transientError(err) && sub.active && this._subs.get(sub.topic) === sub) transient.push(err);
            this._report(err);
          }),
        ),
      );
      if (this._ws !== ws) return;
      if (transient.length) {
        // a subscription could not be made again for now (timeout, overload, broker down):
        // being "open" without it would lose its deliveries until the next disconnect, so this
        // connection is given up and the next one tries again, after the backoff and no sooner
        // than the server's retryAfterMs
        const floor = Math.max(0, ...transient.map((err) => Number(err.retryAfterMs) || 0));
        const first = transient[0];
        this._abandon(ws, new ClientError("UNAVAILABLE", `Resubscribing failed: ${first.message}`, { details: { code: first.code, retryAfterMs: floor || null } }), floor);
        return;
      }
      for (const call of this._pending.values()) {
        if (call.sent && call.idempotent && this._ws === ws) this._write(call.frame);
      }
      for (const hook of [...this._connectHooks]) {
        if (this._ws !== ws) return;
        this._inHooks = true; // what a hook sends goes out now, ahead of the queue
        try {
          await hook(this);
        } finally {
          this._inHooks = false;
        }
      }
    } catch (err) {
      this._report(err);
    }
    if (this._ws !== ws) return;
    this._flush(); // still resuming: written now, in order, ahead of anything sent from here on
    this._resuming = false;
    this._setState("open");
    for (const w of this._waiters.splice(0)) w.resolve();
  }

  /** The connection ended; `code` is null when it never opened (the browser hides why). */
  async _lost(ws, code, reason) {
    this._ws = null;
    this._resuming = false;
    this._stopHeartbeat();
    ws.onopen = ws.onmessage = ws.onclose = null;
    this._failInFlight();
    if (this.state === "closed") return;
    if (code !== null) {
      if (Date.now() - this._openedAt >= this.options.backoff.resetAfter) this._attempt = 0; // it was stable
      const stop = STOP_CODES.get(code) || (code >= 3000 && code <= 4999 && !this.options.reconnectCodes.includes(code) ? "ABORTED" : null);
      if (stop) {
        this._stop(new ClientError(stop, `The server closed the connection (${code}${reason ? ": " + reason : ""})`, { details: { closeCode: code, reason } }), null);
        return;
      }
      this._retry(new ClientError("UNAVAILABLE", `Connection lost (${code}${reason ? ": " + reason : ""})`, { details: { closeCode: code } }));
      return;
    }
    // Never opened: nothing listening, or the server answered the upgrade with an HTTP error
    // (401, 403, 429...) that the browser does not show. Ask the server whether it is up: if
    // it answers HTTP, count a refusal; enough in a row and the client stops.
    const up = await this._probe();
    if (this.state === "closed") return;
    if (up) this._refusals += 1;
    else this._refusals = 0;
    if (up && this._refusals >= this.options.maxRefusals) {
      const msg = `The server refused the connection ${this._refusals} times in a row (unauthorized, forbidden, or full: the browser does not say which)`;
      this._stop(new ClientError("UNAUTHENTICATED", msg, { details: { reason: "refused", refusals: this._refusals } }), null);
      return;
    }
    const why = up ? "The server refused the connection" : "The server cannot be reached";
    this._retry(new ClientError("UNAVAILABLE", why, { details: { reason: up ? "refused" : "unreachable" } }));
  }

  /** Give up an open connection from this side (closed 4000) and reconnect after the backoff. */
  _abandon(ws, error, floor = 0) {
    this._ws = null;
    this._resuming = false;
    this._stopHeartbeat();
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(4000, "resubscribe failed");
    } catch {
      // already closing
    }
    this._failInFlight();
    if (this.state === "closed") return;
    if (Date.now() - this._openedAt >= this.options.backoff.resetAfter) this._attempt = 0;
    this._floor = Math.max(this._floor, floor);
    this._retry(error);
  }

  async _probe() {
    if (this.options.probeUrl === false || typeof fetch !== "function") return false;
    const url = new URL(this.options.probeUrl || "readyz", new URL(this.url, typeof location !== "undefined" ? location.href : undefined));
    url.protocol = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
    url.search = "";
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 2000);
    try {
      // no-cors: an opaque answer is enough, any HTTP answer means "the server is up"
      await fetch(url.href, { mode: "no-cors", cache: "no-store", signal: abort.signal });
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  _retry(error) {
    const b = this.options.backoff;
    this._attempt += 1;
    if (b.maxAttempts !== null && this._attempt > b.maxAttempts) {
      this._stop(new ClientError(error.code, `${error.message}; gave up after ${b.maxAttempts} attempts`, { details: error.details }), null);
      return;
    }
    // full jitter: uniform in [0, ceiling], the ceiling growing per failed attempt
    const ceiling = Math.min(b.maxDelay, b.initialDelay * b.multiplier ** (this._attempt - 1));
    const wait = Math.max(this._floor, Math.random() * ceiling);
    this._floor = 0;
    this._setState(this.state === "connecting" ? "connecting" : "reconnecting", error, Math.round(wait));
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this.state !== "closed") this._dial();
    }, wait);
  }

  _stop(error, closeCode) {
    if (this.state === "closed" && this.closeError) return;
    clearTimeout(this._timer);
    this._stopHeartbeat();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(closeCode || 1000);
      } catch {
        // already closing
      }
    }
    this.closeError = error;
    for (const [cid, call] of [...this._pending]) {
      this._settle(cid);
      call.reject(error);
    }
    for (const item of this._queue.splice(0)) this._dropped(item, "closed");
    this._queueBytes = 0;
    for (const w of this._roomWaiters.splice(0)) w.reject(error);
    for (const sub of this._subs.values()) sub._settleFirst(error);
    this._setState("closed", error);
    for (const w of this._waiters.splice(0)) w.reject(error);
  }

  // -- frames in --------------------------------------------------------------------------------

  _frame(data) {
    this._lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return this._report(new ClientError("INVALID_ARGUMENT", "The server sent a frame that is not JSON", { details: { head: String(data).slice(0, 80) } }));
    }
    if (!msg || typeof msg !== "object" || typeof msg.type !== "string") {
      return this._report(new ClientError("INVALID_ARGUMENT", "The server sent a frame without a type"));
    }
    const meta = msg.meta && typeof msg.meta === "object" ? msg.meta : (msg.meta = {});
    if (msg.type === "__heartbeat_ack") return;
    const cid = meta.correlationId;
    if (cid !== undefined && cid !== null) {
      const call = this._pending.get(cid);
      if (!call) return this._report(new ClientError("NOT_FOUND", `An answer (${msg.type}) for no waiting request`, { details: { correlationId: cid } }));
      if (msg.type === "$ws:rpc-progress") {
        if (call.onProgress) this._safely(() => call.onProgress(msg.payload));
        return;
      }
      if (msg.type === "RPC_ERROR" || msg.type === "ERROR") {
        this._settle(cid);
        call.reject(ClientError.fromPayload(msg.payload));
        return;
      }
      if (isAnswer(call, msg)) {
        this._settle(cid);
        call.resolve(msg);
        return;
      }
      // not an answer this request can have (a delivery or event that carries its id): an
      // ordinary frame, handled below
    }
    if (msg.type === "SERVER_SHUTDOWN") {
      // send nothing more on this connection (sends are queued), but keep reading it: requests
      // in flight may still be answered during the grace period
      this._draining = true;
      this._floor = Number(msg.payload && msg.payload.retryAfterMs) || 0;
      this._setState("reconnecting", new ClientError("UNAVAILABLE", (msg.payload && msg.payload.reason) || "server shutting down"), this._floor);
    } else if (msg.type === "ERROR") {
      const error = ClientError.fromPayload(msg.payload);
      const topic = error.details && error.details.topic;
      if (error.code === "FAILED_PRECONDITION" && error.details && error.details.reason === "recovery" && topic) {
        // the server lost publications of a topic: reset its position, the app reloads
        this.positions.delete(topic);
        const sub = this._subs.get(topic);
        if (sub) this._reset(sub, error);
      }
      this._report(error);
    }
    if (typeof meta.topic === "string" && typeof meta.offset === "number" && typeof meta.epoch === "string") {
      const last = this.positions.get(meta.topic);
      // a delivery already seen (replayed after a recovery that overlapped): drop it
      if (last && last.epoch === meta.epoch && meta.offset <= last.offset) return;
      if (this._tracks(meta.topic, last)) this.positions.set(meta.topic, { offset: meta.offset, epoch: meta.epoch });
    }
    this._dispatch(msg);
  }

  /**
   * Whether the position of `topic` is kept: always for the client's own subscriptions; for
   * topics a server handler joined, names of at most MAX_TOPIC_LENGTH characters and at most
   * MAX_OTHER_POSITIONS of them, so a server cannot grow the map without bound.
   */
  _tracks(topic, last) {
    if (this._subs.has(topic)) return true;
    if (topic.length > MAX_TOPIC_LENGTH) return false;
    // O(1): at most every subscription's position plus MAX_OTHER_POSITIONS others
    return !!last || this.positions.size < this._subs.size + MAX_OTHER_POSITIONS;
  }

  _dispatch(msg) {
    let handled = false;
    for (const key of [msg.type, "*"]) {
      const fns = this._handlers.get(key);
      if (!fns) continue;
      for (const fn of [...fns]) {
        handled = handled || key === msg.type;
        this._safely(() => fn(msg));
      }
    }
    return handled;
  }

  _safely(fn) {
    try {
      const out = fn();
      if (out && typeof out.catch === "function") out.catch((err) => this._report(err));
    } catch (err) {
      this._report(err);
    }
  }

  /** Problems that answer no call (an ERROR event, a junk frame, a handler that threw): to "error" listeners. */
  _report(error) {
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
    if (this.options.onError) this._safely(() => this.options.onError(error));
  }

  // -- frames out ---------------------------------------------------------------------------

  /** The connection is usable for writing now. */
  _live() {
    return !!this._ws && this._ws.readyState === 1 && !this._draining && (this.state === "open" || this._resuming);
  }

  _write(frame) {
    this._ws.send(JSON.stringify(frame));
  }

  _enqueue(frame, cid) {
    // "closed" without a closeError: not connected yet, sends queue for the first connection
    if (this.state === "closed" && this.closeError) return Promise.reject(this.closeError);
    const text = JSON.stringify(frame);
    // while resuming only the onConnect hooks write directly: anything else waits its turn in
    // the queue, flushed after them, so it never overtakes what was queued before it
    if (this._live() && (this._resuming ? this._inHooks : this._queue.length === 0)) {
      this._ws.send(text);
      const call = cid && this._pending.get(cid);
      if (call) call.sent = true; // gone when it timed out or was aborted while waiting for room
      return Promise.resolve();
    }
    const o = this.options.offline;
    const size = new TextEncoder().encode(text).length;
    if (size > o.maxBytes) return Promise.reject(new ClientError("RESOURCE_EXHAUSTED", `A ${size}-byte frame does not fit the offline queue`));
    const item = { text, size, type: frame.type, cid };
    const full = () => this._queue.length >= o.maxCount || this._queueBytes + size > o.maxBytes;
    if (full()) {
      if (o.policy === "drop-new") {
        this._dropped(item, "queue full");
        return Promise.reject(new ClientError("RESOURCE_EXHAUSTED", "The offline queue is full: frame dropped"));
      }
      if (o.policy === "drop-oldest") {
        while (full() && this._queue.length) {
          const old = this._queue.shift();
          this._queueBytes -= old.size;
          this._dropped(old, "queue full");
        }
      } else {
        // "queue": wait for room, then try again
        return new Promise((resolve, reject) => this._roomWaiters.push({ resolve, reject })).then(() => {
          // a request that timed out or was aborted while it waited is not written after all
          if (cid && !this._pending.has(cid)) return undefined;
          return this._enqueue(frame, cid);
        });
      }
    }
    this._queue.push(item);
    this._queueBytes += size;
    return Promise.resolve();
  }

  _flush() {
    while (this._queue.length && this._live()) {
      const item = this._queue.shift();
      this._queueBytes -= item.size;
      this._ws.send(item.text);
      const call = item.cid && this._pending.get(item.cid);
      if (call) call.sent = true;
    }
    for (const w of this._roomWaiters.splice(0)) w.resolve();
  }

  _unqueue(cid) {
    const at = this._queue.findIndex((item) => item.cid === cid);
    if (at >= 0) this._queueBytes -= this._queue.splice(at, 1)[0].size;
  }

  _dropped(item, reason) {
    const drop = { type: item.type, size: item.size, correlationId: item.cid, reason };
    this.dispatchEvent(new CustomEvent("drop", { detail: drop }));
    if (this.options.onDrop) this._safely(() => this.options.onDrop(drop));
    const call = item.cid && this._pending.get(item.cid);
    if (call) {
      this._settle(item.cid);
      call.reject(new ClientError("RESOURCE_EXHAUSTED", `Request dropped from the offline queue (${reason})`));
    }
  }

  _settle(cid) {
    const call = this._pending.get(cid);
    if (!call) return;
    this._pending.delete(cid);
    clearTimeout(call.timer);
    if (call.signal) call.signal.removeEventListener("abort", call.abort);
  }

  /** Requests written to a lost connection fail now (their answer can never come), unless idempotent. */
  _failInFlight() {
    for (const [cid, call] of [...this._pending]) {
      if (!call.sent) continue;
      if (call.idempotent) continue; // written again on the next connection
      this._settle(cid);
      call.reject(new ClientError("UNAVAILABLE", "The connection was lost before the answer", { retryable: true }));
    }
  }

  /** A framework request ($ws:subscribe...) written now, ahead of the queue. */
  _call(type, payload, timeout) {
    const cid = `s${this._nextId++}`;
    const answers = new Set([type === "$ws:subscribe" ? "$ws:subscribed" : "$ws:unsubscribed"]);
    return new Promise((resolve, reject) => {
      const call = { resolve, reject, answers, sent: true, idempotent: false, timer: null };
      call.timer = setTimeout(() => {
        this._settle(cid);
        reject(new ClientError("DEADLINE_EXCEEDED", `${type}: no answer within ${timeout} ms`));
      }, timeout);
      this._pending.set(cid, call);
      this._write({ type, meta: { correlationId: cid }, payload });
    });
  }

  // -- subscriptions ------------------------------------------------------------------------------

  async _subscribeOne(sub, resuming) {
    const pos = this.positions.get(sub.topic);
    const payload = { topic: sub.topic };
    if (resuming && pos) Object.assign(payload, pos);
    try {
      const res = await this._call("$ws:subscribe", payload, this.options.resubscribeTimeout);
      const p = res.payload || {};
      if (typeof p.offset === "number" && typeof p.epoch === "string") {
        const last = this.positions.get(sub.topic);
        if (!last || last.epoch !== p.epoch || last.offset < p.offset) this.positions.set(sub.topic, { offset: p.offset, epoch: p.epoch });
      }
      sub._settleFirst(null);
    } catch (err) {
      if (err.code === "FAILED_PRECONDITION" && err.details && err.details.reason === "recovery") {
        // the history no longer covers the gap: the app reloads, then we take the live stream
        this.positions.delete(sub.topic);
        await this._reset(sub, err);
        if (this._live()) await this._subscribeOne(sub, resuming); // no position now: from the live stream
        return;
      }
      if (resuming && !transientError(err)) {
        // refused outright (permissions changed, too many topics): dropped, and said
        this._subs.delete(sub.topic);
        sub.active = false;
        sub._settleFirst(err);
      }
      throw err;
    }
  }

  async _reset(sub, error) {
    for (const fn of [...sub._resets]) {
      try {
        await fn(error);
      } catch (err) {
        this._report(err);
      }
    }
  }

  // -- heartbeat ----------------------------------------------------------------------------------

  // Browsers cannot send WebSocket pings, and their own keep-alive (if any) is not visible to
  // pages: the client sends wskit's `__heartbeat` frame when the connection has been silent for
  // `interval` and drops it when nothing at all arrives within `timeout` after that.
  _startHeartbeat(ws) {
    const hb = this.options.heartbeat;
    if (!hb || !hb.interval) return;
    let pingedAt = 0;
    const tick = Math.max(50, Math.min(hb.interval, hb.timeout) / 2);
    this._heartbeat = setInterval(() => {
      if (this._ws !== ws || ws.readyState !== 1) return;
      const now = Date.now();
      if (pingedAt && this._lastHeard < pingedAt && now - pingedAt >= hb.timeout) {
        // dead: do not wait for a closing handshake the peer will never answer
        this._lost(ws, 1006, "heartbeat timeout");
        try {
          ws.close(4000, "heartbeat timeout");
        } catch {
          // already closing
        }
        return;
      }
      if (this._lastHeard >= pingedAt) pingedAt = 0;
      // after SERVER_SHUTDOWN nothing more is written here, pings included
      if (!pingedAt && !this._draining && now - this._lastHeard >= hb.interval) {
        pingedAt = now;
        ws.send('{"type":"__heartbeat"}');
      }
    }, tick);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  _setState(state, error = null, retryIn = null) {
    const old = this.state;
    if (old === state && !error) return;
    this.state = state;
    const change = { old, state, error, retryIn };
    this.dispatchEvent(new CustomEvent("state", { detail: change }));
    if (this.options.onState) this._safely(() => this.options.onState(change));
  }
}
