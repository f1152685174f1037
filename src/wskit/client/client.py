"""``Client``: a typed asyncio client that reconnects by itself and loses nothing it can keep.

    async with Client("ws://127.0.0.1:8000/", token=get_token) as client:
        client.on(RoomMsg, show)
        sub = await client.subscribe("room:lobby")
        await client.send(Say, {"room": "lobby", "text": "hi"})
        user = await client.request(GetUser, {"id": "1"}, timeout=5.0)

One supervisor task owns the connection's life: ask the token, open, resubscribe from the
last positions, send again the idempotent requests, flush the offline queue, then report
``open``; when the connection ends, decide from the close code or HTTP status
(:mod:`wskit.client.verdicts`) whether to wait (backoff, a server's ``retryAfterMs``) and
dial again or to stop and say why. See ``docs/client.md`` for the whole behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from wskit.client.auth import TokenPlace, TokenProvider, TokenSource
from wskit.client.backoff import Backoff
from wskit.client.codec import ERROR_TYPES, Envelope, Message, PayloadCodecs, parse_envelope, reserved_frame
from wskit.client.connection import Connection, DialFailed, Heartbeat, Lost
from wskit.client.errors import ClientError, ClientStopped
from wskit.client.handlers import Handler, Handlers
from wskit.client.offline import Dropped, OfflineLimits, OfflineQueue, Queued
from wskit.client.pending import Pending, PendingRequests, ProgressCallback
from wskit.client.reports import Reporter
from wskit.client.state import State, StateChange, StateWatch
from wskit.client.subscriber import Ask, Subscriber
from wskit.client.subscriptions import SUBSCRIBED_TYPE, UNSUBSCRIBED_TYPE, Positions, Subscription
from wskit.client.verdicts import Verdict, after_close, after_refusal
from wskit.errors import ConfigError, ErrorCode, UsageError
from wskit.protocol import (
    CANCEL_TYPE,
    HEARTBEAT_ACK_TYPE,
    PROGRESS_TYPE,
    SHUTDOWN_TYPE,
    Position,
)
from wskit.schema.declarations import MessageSchema, RpcSchema
from wskit.schema.validator import Validator

__all__ = ["SHUTDOWN_TYPE", "Client"]

log = logging.getLogger("wskit.client")

Res = TypeVar("Res")
P = TypeVar("P")

#: the graceful-shutdown notice (PROTOCOL.md, "Shutdown")
#: default largest frame accepted from the server (aiohttp closes 1009 above it)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class Client:
    """A WebSocket client of a wskit (or WS-Kit) server.

    ``url``: ``ws://`` or ``wss://``. Options (keyword-only, defaults in brackets):

    - ``token`` [None]: a string, or a sync/async function called on every (re)connect;
      ``token_place`` ["query"]: ``query`` (``access_token=``), ``header``
      (``Authorization: Bearer``) or ``subprotocol`` (``bearer.<token>``);
    - ``ssl`` [None: the system's trust store]: an ``SSLContext`` for ``wss://``;
    - ``headers``, ``protocols``: extra upgrade headers and offered subprotocols;
    - ``backoff`` [:class:`Backoff` ()]: reconnect timing and ``max_attempts``;
    - ``heartbeat`` [:class:`Heartbeat` ()]: ping every 10 s, dead after 5 s of silence;
    - ``offline`` [:class:`OfflineLimits` ()]: the queue of frames sent while disconnected;
    - ``max_message_bytes`` [4 MiB]: larger frames from the server close the connection
      (1009, reported) and the client reconnects;
    - ``connect_timeout`` [10 s] for one upgrade; ``resubscribe_timeout`` [10 s];
    - ``reconnect_codes``: application close codes (3000-4999) to reconnect after instead
      of stopping;
    - ``validator``: the schema backend for payloads (default: chosen by model);
    - ``on_state(change)``, ``on_drop(dropped)``, ``on_error(exc)``: callbacks.
    """

    def __init__(
        self,
        url: str,
        *,
        token: TokenProvider = None,
        ssl: ssl_module.SSLContext | None = None,
        token_place: TokenPlace | str = TokenPlace.QUERY,
        headers: Mapping[str, str] | None = None,
        protocols: Sequence[str] = (),
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = None,
        offline: OfflineLimits | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        connect_timeout: float = 10.0,
        resubscribe_timeout: float = 10.0,
        reconnect_codes: Collection[int] = (),
        validator: Validator | str | None = None,
        on_state: Callable[[StateChange], object] | None = None,
        on_drop: Callable[[Dropped], object] | None = None,
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        self.url = URL(url)
        if self.url.scheme not in ("ws", "wss"):
            raise UsageError(f"Client needs a ws:// or wss:// URL, got {url!r}")
        self._tokens = TokenSource(token, token_place)
        self._ssl = ssl
        self._headers = dict(headers or {})
        self._protocols = tuple(protocols)
        self.backoff = backoff or Backoff()
        self.heartbeat = heartbeat or Heartbeat()
        self.max_message_bytes = max_message_bytes
        self.connect_timeout = connect_timeout
        self.resubscribe_timeout = resubscribe_timeout
        self._reconnect_codes = frozenset(reconnect_codes)
        self._codecs = PayloadCodecs(validator)
        self._watch = StateWatch()
        if on_state is not None:
            self._watch.add(on_state)
        self._reporter = Reporter(on_error)
        self._pending = PendingRequests("c")
        self._offline = OfflineQueue(offline or OfflineLimits(), on_drop=on_drop, on_request_dropped=self._pending.fail)
        self._handlers = Handlers()
        self._positions = Positions()
        self._subscriber = Subscriber(self._positions, self._pending.new_id, self._reporter)
        self._positions.subscribed = self._subscriber.topics.__contains__
        self._positions.on_untracked = self._untracked_topic
        self._resend: list[Pending] = []
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        #: the current connection takes application frames (open, and no shutdown notice)
        self._ready = False
        self._generation = 0
        self._opened: asyncio.Future[None] | None = None
        self._retry_at = 0.0  # loop time before which no reconnect (a SERVER_SHUTDOWN hint)
        self._background: set[asyncio.Future[Any]] = set()
        #: why the client is closed (None while it runs, or before the first connect)
        self.close_error: ClientStopped | None = None

    # -- facts ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``connecting``, ``open``, ``reconnecting`` or ``closed`` (compares equal to the strings)."""
        return self._watch.state

    @property
    def positions(self) -> Mapping[str, Position]:
        """The last ``(offset, epoch)`` seen per history topic, including topics a server
        handler subscribed this client to (rejoin from them after a reconnect)."""
        return self._positions.view

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        """The topics this client subscribed to itself (kept across reconnects)."""
        return dict(self._subscriber.topics)

    @property
    def queued(self) -> int:
        """Frames waiting in the offline queue."""
        return len(self._offline)

    @property
    def problems(self) -> Mapping[str, int]:
        """Bad frames and server errors reported so far, by kind."""
        return dict(self._reporter.counts)

    def on_state(self, callback: Callable[[StateChange], object]) -> Callable[[], None]:
        """Call ``callback(change)`` on every state change; returns a function that removes it."""
        return self._watch.add(callback)

    def states(self) -> AsyncIterator[StateChange]:
        """``async for change in client.states()``: every change from now until the client stops."""
        return self._watch.changes()

    # -- life ------------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, *, timeout: float | None = None) -> None:
        """Connect, and keep connected until :meth:`close`; returns once the connection is open.

        Transient failures are retried under ``backoff`` (a client may start before its
        server). Raises :class:`ClientStopped` when the server refuses for good (401/403,
        1008...) or ``backoff.max_attempts`` run out, ``TimeoutError`` after ``timeout``
        seconds (the client keeps trying: call :meth:`close` to stop it).
        """
        if self._runner is None or self._runner.done():
            self.close_error = None
            self._offline.reopen()
            self._opened = asyncio.get_running_loop().create_future()
            self._watch.set(State.CONNECTING)
            self._runner = asyncio.create_task(self._run(), name="wskit-client")
        assert self._opened is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._opened)

    async def close(self) -> None:
        """Close the connection and stop reconnecting. Pending requests fail with
        :class:`ClientStopped` (``CANCELLED``); queued frames are dropped (and reported)."""
        runner, self._runner = self._runner, None
        conn = self._conn
        self._stop(ClientStopped(ErrorCode.CANCELLED, "the client was closed by the application"))
        if conn is not None:
            await conn.close(1000, "client closed")
        if runner is not None:
            runner.cancel()
            await asyncio.wait([runner])  # without raising the runner's CancelledError here
        if self._session is not None:
            await self._session.close()
            self._session = None
        for task in list(self._background):
            task.cancel()

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self, schema: MessageSchema[Any], payload: Any = None, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Send a message (payload validated by its declaration). While reconnecting it waits
        in the offline queue and goes out, in order, once the connection is back.

        Raises :class:`~wskit.schema.OutboundValidationError` for a payload that fails its
        schema, :class:`ClientStopped` once the client is closed, :class:`ClientError`
        ``RESOURCE_EXHAUSTED`` for a frame the offline queue can never hold.
        """
        self._check_running()
        data = self._codecs.encode(schema, payload, meta or {})
        await self._deliver(data, schema.type, None)

    async def request(
        self,
        rpc: RpcSchema[Any, Res],
        payload: Any = None,
        *,
        timeout: float = 5.0,
        on_progress: ProgressCallback | None = None,
        idempotent: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Message[Res]:
        """Call an RPC and return its typed response message (``.type``, ``.meta``, ``.payload``).

        ``on_progress(payload)`` gets each ``$ws:rpc-progress`` payload. ``timeout`` covers
        queueing too, and is sent as ``meta.timeoutMs`` (the server's deadline). Cancelling
        the awaiting task sends ``$ws:rpc-cancel``. If the connection is lost before the
        answer, raises :class:`ClientError` ``UNAVAILABLE`` (retryable) at once, unless
        ``idempotent=True``: then the request is sent again after the reconnect.

        Raises :class:`ClientError` with the server's ``code``, ``details``, ``retryable``
        and ``retry_after_ms`` for an ``RPC_ERROR``; ``DEADLINE_EXCEEDED`` after ``timeout``.
        """
        self._check_running()
        cid = self._pending.new_id()
        full_meta = {**dict(meta or {}), "correlationId": cid, "timeoutMs": max(1, int(timeout * 1000))}
        data = self._codecs.encode(rpc.request, payload, full_meta)
        answers = frozenset({rpc.response.type, *ERROR_TYPES})
        envelope = await self._call(cid, rpc.type, data, answers, timeout, on_progress, idempotent)
        if envelope.type in ERROR_TYPES:
            raise ClientError.from_payload(envelope.payload)
        try:
            return self._codecs.decode(rpc.response, envelope)
        except Exception as exc:  # a model's validator may raise anything
            raise ClientError(
                ErrorCode.INTERNAL,
                f"the server's {envelope.type!r} answer to {rpc.type!r} does not fit its declaration: {exc}",
            ) from exc

    def on(self, schema: MessageSchema[P], handler: Handler[P]) -> Callable[[], None]:
        """Call ``handler(msg)`` (sync or async) for every ``schema`` message the server sends;
        ``msg.payload`` is the declared class. Returns a function that removes the handler."""
        return self._handlers.add(schema, handler)

    async def _call(
        self,
        cid: str,
        type_name: str,
        data: bytes,
        answers: frozenset[str],
        timeout: float,
        on_progress: ProgressCallback | None,
        idempotent: bool,
    ) -> Envelope:
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        pending = Pending(cid, type_name, data, idempotent, future, answers, on_progress)
        self._pending.add(pending)
        try:
            async with asyncio.timeout(timeout):
                await self._deliver(data, type_name, pending)
                return await future
        except TimeoutError:
            self._abandon(pending)
            raise ClientError(
                ErrorCode.DEADLINE_EXCEEDED, f"no answer to {type_name!r} within {timeout} s", retryable=True
            ) from None
        except asyncio.CancelledError:
            self._abandon(pending)
            raise

    def _abandon(self, pending: Pending) -> None:
        """The caller gave up: forget the request, and tell the server when it has it."""
        self._pending.discard(pending.correlation_id)
        self._offline.remove(pending.correlation_id)
        conn = self._conn
        if conn is not None and self._ready and pending.sent_on == conn.generation:
            frame = reserved_frame(CANCEL_TYPE, {"correlationId": pending.correlation_id})
            self._spawn(conn.send(frame))

    async def _deliver(self, data: bytes, type_name: str, pending: Pending | None) -> None:
        cid = pending.correlation_id if pending is not None else None
        while True:
            conn = self._conn
            if conn is not None and self._ready:
                if pending is not None:
                    pending.sent_on = conn.generation
                try:
                    await conn.send(data)
                    return
                except ConnectionError:
                    if pending is not None:
                        if pending.sent_on is None:
                            return  # the loss already queued it for sending again (idempotent)
                        pending.sent_on = None
            # waited for room while the connection came back: send it on that one instead
            if await self._offline.put(Queued(data, type_name, cid), bypass=self._is_ready):
                return

    def _is_ready(self) -> bool:
        return self._ready

    def _check_running(self) -> None:
        if self.close_error is not None:
            raise self.close_error
        if self._runner is None:
            raise UsageError("the client is not connected: call `await client.connect()` first")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("wskit client background send failed: %r", task.exception())

    # -- subscriptions ---------------------------------------------------------------------

    async def subscribe(self, topic: str) -> Subscription:
        """Subscribe to ``topic`` (the router must ``allow_subscribe`` it). The subscription is
        made again after every reconnect, from the last position seen on history topics.

        Raises :class:`ClientError` with the server's refusal (``PERMISSION_DENIED``,
        ``INVALID_ARGUMENT``, ``RESOURCE_EXHAUSTED``).
        """
        self._check_running()
        try:
            return await self._subscriber.subscribe(topic, self._call_queued, self._unsubscribe)
        finally:
            if self._ready:
                self._start_resets()

    def _start_resets(self) -> None:
        """Run the due ``on_reset`` callbacks as tasks (they may make requests: never inside
        the connection's setup or its reader)."""
        for reset in self._subscriber.take_resets():
            self._spawn(reset)

    async def _unsubscribe(self, sub: Subscription) -> None:
        # not subscribed on any server while disconnected, and never again once closed; made
        # again on a connection still being set up: left on it directly (it takes no queue yet)
        conn = self._conn
        ask: Ask | None = None
        if self.close_error is not None:
            ask = None
        elif self._ready:
            ask = self._call_queued
        elif conn is not None and not conn.is_lost and sub.topic in self._subscriber.on_server:
            ask = self._call_direct
        await self._subscriber.unsubscribe(sub, ask)

    async def _call_queued(self, cid: str, type_name: str, data: bytes, answers: frozenset[str]) -> Envelope:
        return await self._call(cid, type_name, data, answers, self.resubscribe_timeout, None, False)

    async def _call_direct(self, cid: str, type_name: str, data: bytes, answers: frozenset[str]) -> Envelope:
        """A framework request on the connection being set up (not through the queue: the
        connection does not take application frames until its subscriptions are back)."""
        conn = self._conn
        if conn is None:
            raise ConnectionResetError("the connection was lost")
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        pending = Pending(cid, type_name, data, False, future, answers, None, sent_on=conn.generation)
        self._pending.add(pending)
        lost = asyncio.ensure_future(conn.wait_lost())
        try:
            async with asyncio.timeout(self.resubscribe_timeout):
                await conn.send(data)
                # the answer, or the end of the connection (its answer can never come)
                await asyncio.wait((future, lost), return_when=asyncio.FIRST_COMPLETED)
            if future.done():
                return future.result()
            raise ConnectionResetError(f"the connection was lost before the answer to {type_name!r}")
        finally:
            lost.cancel()
            self._pending.discard(cid)

    # -- the supervisor ----------------------------------------------------------------------

    async def _run(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        await self._connect_loop(self._session)
        if self._runner is not asyncio.current_task():
            # close() took over (it clears _runner first): it closes the connection with the
            # closing handshake and then the session; closing the session here would cut the
            # socket under that handshake (the server saw 1006, not the client's 1000)
            return
        # stopped (not cancelled by close()): release the HTTP session now, connect() makes another
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _connect_loop(self, session: aiohttp.ClientSession) -> None:
        failures = 0
        next_token: str | None = None
        have_next = False
        loop = asyncio.get_running_loop()
        while True:
            if have_next:
                token, have_next = next_token, False
            else:
                try:
                    token = await self._tokens.get()
                except ConfigError as exc:
                    self._stop(ClientStopped(ErrorCode.INVALID_ARGUMENT, f"{exc}: not reconnecting"))
                    return
                except Exception as exc:  # noqa: BLE001 - the application's provider may raise anything
                    self._reporter.local("token-provider", "the token provider raised", exc)
                    failures += 1
                    if not await self._wait(failures, exc):
                        return
                    continue
            handshake = self._tokens.handshake(self.url, token, headers=self._headers, protocols=self._protocols)
            self._generation += 1
            try:
                conn = await Connection.open(
                    session,
                    handshake,
                    generation=self._generation,
                    ssl=self._ssl,
                    max_message_bytes=self.max_message_bytes,
                    connect_timeout=self.connect_timeout,
                    heartbeat=self.heartbeat,
                )
            except DialFailed as exc:
                if exc.untrusted:
                    self._stop(ClientStopped(ErrorCode.UNAVAILABLE, f"{exc}: not reconnecting (pass ssl=...)"))
                    return
                if exc.status is not None:
                    decision = after_refusal(exc.status)
                    if decision.verdict is Verdict.STOP_UNLESS_NEW_TOKEN and self._tokens.renewable:
                        try:
                            fresh = await self._tokens.get()
                        except ConfigError as problem:
                            self._stop(ClientStopped(ErrorCode.INVALID_ARGUMENT, f"{problem}: not reconnecting"))
                            return
                        except Exception as problem:  # noqa: BLE001 - asked again on the next attempt
                            self._reporter.local("token-provider", "the token provider raised", problem)
                            fresh, decision = None, after_refusal(503)
                        if fresh and fresh != token:
                            next_token, have_next = fresh, True
                            decision = after_refusal(503)
                    if decision.verdict is not Verdict.RECONNECT:
                        why = f"{decision.why} (HTTP {exc.status}): not reconnecting"
                        self._stop(ClientStopped(decision.code, why, http_status=exc.status))
                        return
                failures += 1
                if not await self._wait(failures, exc, floor=exc.retry_after or 0.0):
                    return
                continue
            opened_at = loop.time()
            lost = await self._serve(conn)
            if self.close_error is not None:
                return  # closed by the application meanwhile
            if lost.by_client and lost.code == 1009:
                detail = f"a frame over max_message_bytes ({self.max_message_bytes} B); reconnecting: {lost.reason}"
                self._reporter.bad_frame("too-big", detail)
            self._resend.extend(self._pending.lost(conn.generation))
            decision = after_close(lost.code)
            if lost.by_client or lost.code in self._reconnect_codes:
                decision = after_close(1006)
            if decision.verdict is not Verdict.RECONNECT:
                said = lost.reason.partition("closed by the server: ")[2]
                why = f"{decision.why} (close {lost.code}{': ' + said if said else ''}): not reconnecting"
                self._stop(ClientStopped(decision.code, why, close_code=lost.code))
                return
            if loop.time() - opened_at >= self.backoff.reset_after:
                failures = 0  # it stayed up: the server is fine, start the count over
            failures += 1
            floor = max(0.0, self._retry_at - loop.time())
            if not await self._wait(failures, ConnectionResetError(f"{lost.reason} ({lost.code})"), floor=floor):
                return

    async def _wait(self, failures: int, error: BaseException, *, floor: float = 0.0) -> bool:
        """Back off before the next attempt; False (the client stopped) when attempts ran out."""
        if self.close_error is not None:
            return False
        if self.backoff.exhausted(failures):
            self._stop(
                ClientStopped(
                    ErrorCode.UNAVAILABLE, f"gave up after {failures} failed connection attempts; the last: {error}"
                )
            )
            return False
        delay = self.backoff.delay(failures - 1, floor=floor)
        state = State.CONNECTING if self._watch.state is State.CONNECTING else State.RECONNECTING
        log.info("wskit client: %s; next attempt in %.2f s", error, delay)
        self._watch.set(state, error=error, retry_in=delay)
        await asyncio.sleep(delay)
        return True

    async def _serve(self, conn: Connection) -> Lost:
        """Set a new connection up (subscriptions, then resends, then the queue), report it
        open, and wait until it ends."""
        self._conn = conn
        self._retry_at = 0.0
        conn.start(self._on_frame)
        try:
            await self._subscriber.resubscribe(self._call_direct)
            again, self._resend = self._resend, []
            for at, pending in enumerate(again):
                if self._pending.get(pending.correlation_id) is not pending:
                    continue  # its caller gave up meanwhile
                if conn.draining:
                    self._resend.extend(again[at:])
                    break
                pending.sent_on = conn.generation
                try:
                    await conn.send(pending.frame)
                except ConnectionError:
                    pending.sent_on = None
                    self._resend.extend(again[at:])
                    raise
            # until the queue stays empty: what the application sends meanwhile still queues
            while not conn.draining and (items := self._offline.take_all()):
                for at, item in enumerate(items):
                    waiting = self._pending.get(item.correlation_id) if item.correlation_id else None
                    if item.correlation_id is not None and waiting is None:
                        continue  # its caller gave up while it waited
                    if conn.draining:
                        self._offline.restore(items[at:])
                        break
                    if waiting is not None:
                        waiting.sent_on = conn.generation
                    try:
                        await conn.send(item.data)
                    except ConnectionError:
                        if waiting is not None:
                            waiting.sent_on = None
                        self._offline.restore(items[at:])
                        raise
            if not conn.draining:  # a SERVER_SHUTDOWN during the setup: this one never opens
                self._ready = True
                self._watch.set(State.OPEN)
                self._start_resets()
                if self._opened is not None and not self._opened.done():
                    self._opened.set_result(None)
        except ClientError as exc:  # a retryable refusal of a resubscribe: come back later
            delay = (exc.retry_after_ms or 0) / 1000.0
            self._retry_at = asyncio.get_running_loop().time() + delay
            self._reporter.error(exc, "resubscribe-deferred")
            conn.abort(Lost(1006, f"a resubscribe was refused for now ({exc.code}): reconnecting", by_client=True))
        except (ConnectionError, TimeoutError) as exc:
            log.info("wskit client: the connection was lost while being set up: %r", exc)
            conn.abort(Lost(1006, f"lost while being set up: {exc!r}", by_client=True))
        lost = await conn.wait_lost()
        self._ready = False
        self._conn = None
        if self.close_error is None:
            log.info("wskit client: connection lost: %s (%d)", lost.reason, lost.code)
        return lost

    def _stop(self, error: ClientStopped) -> None:
        """Stop for good: fail what waits, drop what is queued, report ``closed``."""
        if self.close_error is not None:
            return
        self.close_error = error
        self._ready = False
        if error.code != ErrorCode.CANCELLED:
            log.warning("wskit client stopped: %s", error.message)
        for item in self._offline.close(error):
            if item.correlation_id is None:
                self._offline.report(item, "the client stopped before it could be sent")
        self._pending.fail_all(error)
        for pending in self._resend:
            if not pending.future.done():
                pending.future.set_exception(error)
        self._resend = []
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved: connect() may not be awaited by anyone
        self._watch.set(State.CLOSED, error=error)

    # -- inbound ---------------------------------------------------------------------------

    def _on_frame(self, data: bytes | str) -> Any:
        try:
            envelope = parse_envelope(data)
        except ValueError as exc:
            self._reporter.bad_frame("not-json", str(exc), data)
            return None
        type_name = envelope.type
        cid = envelope.meta.get("correlationId")
        if type_name == PROGRESS_TYPE:
            if not isinstance(cid, str) or not self._pending.progress(cid, envelope.payload):
                self._reporter.bad_frame("unknown-correlation-id", f"progress for no request ({cid!r})", data)
            return None
        if isinstance(cid, str) and self._pending.settle(cid, envelope):
            return None
        if type_name in ERROR_TYPES:
            if isinstance(cid, str):
                self._reporter.bad_frame("unknown-correlation-id", f"an error for no request ({cid!r})", data)
            error = ClientError.from_payload(envelope.payload)
            self._reporter.error(error)
            if self._subscriber.history_lost(error) and self._ready:
                self._start_resets()
            return None
        if type_name == SHUTDOWN_TYPE:
            self._shutdown_notice(envelope)
            return None
        if type_name in (SUBSCRIBED_TYPE, UNSUBSCRIBED_TYPE):
            self._reporter.bad_frame("unknown-correlation-id", f"{type_name} for no request ({cid!r})", data)
            return None
        if type_name == HEARTBEAT_ACK_TYPE:
            return None
        if not self._positions.admit(envelope.meta):
            return None  # a delivery this client already has (replay overlapping live)
        if not self._handlers.knows(type_name):
            if isinstance(cid, str):  # most likely the late answer to a request given up on
                detail = f"{type_name[:64]!r} for no request (correlationId {cid[:64]!r})"
                self._reporter.bad_frame("unknown-correlation-id", detail, data)
            else:
                self._reporter.bad_frame("unknown-type", f"no handler for {type_name[:64]!r}", data)
            return None
        return self._handlers.dispatch(envelope, self._codecs, self._reporter, data)

    def _untracked_topic(self, topic: str) -> None:
        detail = f"a delivery on topic {topic[:64]!r}: beyond the topics tracked (positions not kept)"
        self._reporter.bad_frame("untracked-topic", detail)

    def _shutdown_notice(self, envelope: Envelope) -> None:
        """The server is going away: send nothing more on this connection (application frames
        queue for the next one) and reconnect no sooner than ``retryAfterMs`` from now."""
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        retry_ms = payload.get("retryAfterMs")
        delay = retry_ms / 1000.0 if isinstance(retry_ms, int | float) and not isinstance(retry_ms, bool) else 0.0
        self._ready = False
        if self._conn is not None:
            self._conn.draining = True
        self._retry_at = asyncio.get_running_loop().time() + max(0.0, delay)
        log.info(
            "wskit client: the server is shutting down (%s); reconnecting in >= %.2f s", payload.get("reason"), delay
        )
        self._watch.set(
            State.RECONNECTING, error=ClientError(ErrorCode.UNAVAILABLE, "server shutting down"), retry_in=delay
        )
