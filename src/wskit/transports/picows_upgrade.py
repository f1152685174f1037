"""The picows host's front door: one asyncio protocol per TCP connection until it upgrades.

picows asks a synchronous factory for each connection's listener, but admission is async
(``authenticate``, bans asked of the broker). So :class:`Front` reads the request head
itself (bounded, under the ``HANDSHAKE_TIMEOUT_MS`` timer), answers the server's own HTTP
paths and what RFC 6455 refuses, and :class:`PicowsHost` admits the upgrade in a task,
writes a refusal as its HTTP status, or hands the connection to picows with the 101 decided
(:func:`wskit.transports.picows_internals.hand_over`). Then the connection is a
:class:`~wskit.transports.picows_host.PicowsSession`'s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

from multidict import CIMultiDict, CIMultiDictProxy
from picows import WSUpgradeResponse

from wskit.admission import Refusal
from wskit.connection import Connection
from wskit.logs import LogBudget
from wskit.ops_http import is_own_path, own_answer
from wskit.runtime import Runtime
from wskit.transports.aiohttp_internals import tail_is_masked
from wskit.transports.asgi_upgrade import parse_cookies
from wskit.transports.base import HandshakeRequest, chosen_subprotocol
from wskit.transports.batching import Flusher
from wskit.transports.picows_host import READERS, IdleSweep, Peer, PicowsSession
from wskit.transports.picows_internals import hand_over
from wskit.transports.picows_socket import PicowsSocket, heard, ping

__all__ = ["MAX_HEAD_BYTES", "Front", "PicowsHost"]

log = logging.getLogger("wskit.server")

#: the largest request head read (request line and headers); larger is answered 431
MAX_HEAD_BYTES = 32 * 1024
_MAX_HEADERS = 256
#: a control byte inside a line of the head: a bare CR or LF, or any other but tab
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")


def answer(
    transport: asyncio.BaseTransport,
    status: int,
    text: str,
    headers: Mapping[str, str] | None = None,
    *,
    head_only: bool = False,
) -> None:
    """Write a plain-text HTTP answer and close the connection (no keep-alive: a second
    request trickled on the same socket would need a timer of its own). ``head_only`` for an
    answer to HEAD: its headers only (RFC 9110 9.3.2), or the body would be read as the start
    of the next answer on a connection a client or proxy keeps."""
    write_answer(transport, status, "text/plain; charset=utf-8", text.encode(), headers or {}, head_only=head_only)


def write_answer(
    transport: asyncio.BaseTransport,
    status: int,
    content_type: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    head_only: bool = False,
) -> None:
    """Write a complete HTTP answer (without its body for ``head_only``: a HEAD request) and
    close the connection.

    ``write`` never blocks: what the peer does not read yet stays in the transport's buffer,
    and the close waits for it to drain, so a slow reader holds only its own socket."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}"]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not subclasses
    if not transport.is_closing():
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
        transport.close()


@dataclass(slots=True)
class PicowsHost:
    """What the picows host serves: the runtime, and the host's own options and state."""

    runtime: Runtime
    max_payload_bytes: int
    handshake_timeout_s: float
    path: str | None = None
    #: connections that have not completed their request head yet
    fronts: set[Front] = field(default_factory=set)
    #: one task per upgrade: admission, then the connection's life
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    expired: int = 0
    log_budget: LogBudget = field(default_factory=LogBudget)
    #: writes every socket's batched frames once per loop tick
    flusher: Flusher = field(default_factory=Flusher)
    #: ends the reader tasks of connections gone idle
    sweep: IdleSweep = field(default_factory=IdleSweep)

    def __call__(self) -> Front:
        return Front(self)

    def answer_own(self, transport: asyncio.Transport, path: str, method: str) -> None:
        """Answer one of the server's own paths (:mod:`wskit.ops_http`) in a task: a scrape
        may read other processes' files (in a thread) before it can answer."""
        task = asyncio.get_running_loop().create_task(self._answer_own(transport, path, method))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer_own(self, transport: asyncio.Transport, path: str, method: str) -> None:
        try:
            own = await own_answer(self.runtime, path, method)
        except asyncio.CancelledError:
            transport.abort()  # the server stopping
            raise
        except Exception:
            log.exception("answering %s failed", path)
            answer(transport, 500, "Internal Server Error", head_only=method == "HEAD")
            return
        if own is None:  # not one of its paths: never, is_own_path() said so
            answer(transport, 404, "Not Found", head_only=method == "HEAD")
            return
        write_answer(transport, own.status, own.content_type, own.body, own.headers, head_only=method == "HEAD")

    @property
    def guard(self) -> PicowsHost:
        """The slowloris guard's counters (``expired``), where the aiohttp host keeps them."""
        return self

    def start(self, ping_interval: float) -> None:
        self.sweep.start()
        if ping_interval:
            self.runtime.watchdog.enable_pings(ping_interval, ping, heard)

    async def stop(self) -> None:
        """After ``runtime.close_connections``: cut requests still being read, and end the
        connections' tasks (those waiting for admission; the others have finished), after
        the readers ending connections closed a moment ago have run ``on_close``."""
        self.sweep.stop()
        for front in list(self.fronts):
            if front.transport is not None:
                front.transport.abort()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        waited: list[asyncio.Task[Any]] = [*tasks, *(task for task in READERS if task.get_loop() is loop)]
        if waited:
            _, stuck = await asyncio.wait(waited, timeout=2.0)
            for left in stuck:
                left.cancel()

    async def upgrade(self, front: Front, hs: HandshakeRequest, key: str, context: contextvars.Context) -> None:
        """Admit the upgrade ``front`` read, then serve the connection to its end."""
        runtime, transport = self.runtime, front.transport
        assert transport is not None
        client_ip = hs.client_ip
        live = False  # the session took the connection over: it gives its admission back
        try:
            outcome = await runtime.admission.admit(hs)
        except BaseException:
            transport.abort()  # cancelled (the server stopping) or failed: not left open and paused
            raise
        if isinstance(outcome, Refusal):
            answer(transport, outcome.status, outcome.text, dict(outcome.headers))
            return
        try:
            if transport.is_closing():
                return  # the peer left while it was admitted
            client_id = str(uuid.uuid4())
            headers = {"x-client-id": client_id}
            chosen = chosen_subprotocol(hs.subprotocols)  # never a bearer.<token> credential
            if chosen is not None:
                headers["Sec-WebSocket-Protocol"] = chosen
            sock = PicowsSocket(self.flusher)
            peer = Peer(sock, self.max_payload_bytes, context, self.sweep)
            conn = Connection(client_id, sock, data=outcome, request=hs, limits=runtime.queue_limits)
            session = PicowsSession(runtime, conn, peer)
            tail, front.buffer = bytes(front.buffer), bytearray()
            hand_over(
                transport, peer, WSUpgradeResponse.create_101_response(headers), key, tail, self.max_payload_bytes
            )
            if sock.ws is None:  # picows refused the replayed request: never expected
                transport.abort()
                return
            if not peer.paused:  # frames sent with the request may have filled the queue already
                transport.resume_reading()
            live = True
            await session.live()  # returns once the connection is open and idle (it has no task then)
        except BaseException:
            # cancelled (the server stopping during admission) or failed: the socket must not
            # stay open and paused behind us
            transport.abort()
            raise
        finally:
            if not live:
                runtime.admission.release(client_ip)


class Front(asyncio.Protocol):
    """One TCP connection until its request head is read and answered or upgraded."""

    __slots__ = ("buffer", "host", "timer", "transport")

    def __init__(self, host: PicowsHost) -> None:
        self.host = host
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.host.fronts.add(self)
        timeout = self.host.handshake_timeout_s
        if timeout > 0:
            self.timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        self.host.fronts.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            host = self.host
            host.expired += 1
            tail = host.log_budget.take()  # a client can open such sockets as fast as it likes
            if tail is not None:
                log.info(
                    "closed a connection that sent no complete request in %.1f s%s", host.handshake_timeout_s, tail
                )
            transport.close()
        self._done()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        # the blank line can only end in what just came (or straddle it): a head trickled a
        # byte at a time is not searched from its start on every byte
        start = max(len(buffer) - 3, 0)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        transport = self.transport
        assert transport is not None
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                self._done()
                answer(transport, 431, "Request header fields too large")
            return
        self._done()
        transport.pause_reading()  # what follows is frames: read by picows once upgraded
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self._route(transport, head)

    def _route(self, transport: asyncio.Transport, head: bytes) -> None:
        if _CONTROL.search(head) is not None:
            # a bare CR or LF, or another control byte, inside a line: a header value echoed
            # into the 101 (the subprotocol) could carry headers of its own
            answer(transport, 400, "Malformed HTTP request")
            return
        lines = head.decode("latin-1").split("\r\n")
        request = lines[0].split(" ")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or len(headers) >= _MAX_HEADERS:
                answer(transport, 400, "Malformed HTTP request")
                return
            headers.add(name, value.strip())
        if len(request) != 3 or not request[2].startswith("HTTP/"):
            answer(transport, 400, "Malformed HTTP request")
            return
        method, target, version = request
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        host, runtime = self.host, self.host.runtime
        if headers.get("Upgrade", "").lower() != "websocket":
            if is_own_path(path):
                host.answer_own(transport, path, method)
            elif host.path is not None and path != host.path:
                answer(transport, 404, "Not Found", head_only=method == "HEAD")
            else:
                answer(transport, 400, "Expected a WebSocket upgrade (Upgrade: websocket)", head_only=method == "HEAD")
            return
        peer = transport.get_extra_info("peername")
        client_ip = runtime.admission.resolve_ip(peer[0] if peer else None, headers)
        refused = _refusal(host.path, path, method, version, headers, bytes(self.buffer))
        if refused is not None:
            status, why, _ = refused
            reason = "path" if host.path is not None and path != host.path else "bad_request"
            runtime.telemetry.refused_upgrade(reason, status, client_ip, path, why)
            answer(transport, *refused, head_only=method == "HEAD")
            return
        hs = HandshakeRequest(
            path=path,
            headers=CIMultiDictProxy(headers),
            # the first value of each name, as aiohttp's view of the query gives it
            query_params={name: value for name, value in reversed(parse_qsl(query, keep_blank_values=True))},
            cookies=parse_cookies(headers.get("Cookie")),
            client_ip=client_ip,
            subprotocols=tuple(p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()),
        )
        # the connection's first reader runs in this task: in a Context the peer keeps
        context = contextvars.copy_context()
        key = headers["Sec-WebSocket-Key"].strip()
        task = asyncio.get_running_loop().create_task(host.upgrade(self, hs, key, context), context=context)
        host.tasks.add(task)
        task.add_done_callback(host.tasks.discard)


def _refusal(
    ws_path: str | None, path: str, method: str, version: str, headers: CIMultiDict[str], tail: bytes
) -> tuple[int, str, dict[str, str]] | None:
    """The HTTP answer to an upgrade request RFC 6455 does not allow (4.1, 4.4), or None."""
    if ws_path is not None and path != ws_path:
        return 404, "Not Found", {}
    if method != "GET":
        return 405, "WebSocket upgrades use GET", {"Allow": "GET"}
    if version in ("HTTP/1.0", "HTTP/0.9"):
        return 400, "WebSocket upgrades need HTTP/1.1 or later", {}
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return 426, "Unsupported WebSocket version: this server speaks 13", {"Sec-WebSocket-Version": "13"}
    if "upgrade" not in headers.get("Connection", "").lower():
        return 400, "No Connection: Upgrade header", {}
    try:
        key = base64.b64decode(headers.get("Sec-WebSocket-Key", "").strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 16:
        return 400, "Handshake error: invalid Sec-WebSocket-Key", {}
    if not tail_is_masked(tail):  # frames sent before the 101 (RFC 6455 5.1)
        return 400, "Unmasked frame from the client", {}
    return None
