"""Hostile input against a real server: 100,000+ random and mutated frames, floods, slowloris.

Frames come from hypothesis (:mod:`tests.fuzz.frames`); the answer each must get comes from
an independent oracle (:mod:`tests.fuzz.oracle`, PROTOCOL.md's errors table). Several fuzzing
connections pipeline batches of frames and match the answers to the oracle's; meanwhile a
well-behaved client calls an echo RPC every 50 ms and must get every answer. How long those
answers take is measured, not asserted, by ``bench/under_abuse.py`` (hostile-frames, conn-flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from tests.conftest import TIME_SCALE
from tests.fuzz.app import Deliberate, build_router
from tests.fuzz.frames import Frame, examples, mutations
from tests.fuzz.oracle import Expectation, canonical, expect
from tests.production.conftest import http_status
from tests.support.waiting import PATIENCE_S, eventually
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wskit import Server

MAX_PAYLOAD = 64 * 1024
TARGET_FRAMES = 100_000
#: hypothesis examples; each yields ~90 frames (checked: the pool must reach TARGET_FRAMES)
EXAMPLES = 1150
FUZZERS = 4
BATCH = 64
ANSWER_TIMEOUT_S = 5.0
#: how long a frame checked alone may take to answer after the barrier (RPCs answer from a task)
RPC_WAIT_S = 1.0
#: how many failing batches are replayed frame by frame to name the culprits
MAX_REPLAYS = 40
#: how many examples of each kind of finding the failure message shows
SHOWN = 2
SHOWN_KINDS = 60

HEARTBEAT = b'{"type":"__heartbeat"}'
ACK = canonical({"type": "__heartbeat_ack"})
_STANDARD_CODES = {
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "UNIMPLEMENTED",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "ABORTED",
    "INTERNAL",
}


def build_pool() -> list[Frame]:
    """Every frame of the run, drawn by hypothesis (reproducible: derandomized, no database)."""
    pool: list[Frame] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(examples())
    def collect(example: Any) -> None:
        pool.extend(mutations(example))

    collect()
    return pool


# -- what went wrong, kept by kind ----------------------------------------------------------


@dataclass
class Findings:
    """Every way the server's behaviour differed from the oracle's, grouped by kind."""

    kinds: dict[str, list[str]] = field(default_factory=dict)
    total: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, text: str) -> None:
        self.total[kind] += 1
        shown = self.kinds.setdefault(kind, [])
        if len(shown) < SHOWN:
            shown.append(text)

    def __bool__(self) -> bool:
        return bool(self.total)

    def report(self) -> str:
        lines = []
        for kind, count in self.total.most_common(SHOWN_KINDS):
            lines.append(f"- {kind}: {count}x")
            lines.extend(f"    {text}" for text in self.kinds[kind])
        if len(self.total) > SHOWN_KINDS:
            lines.append(f"- ... and {len(self.total) - SHOWN_KINDS} more kinds")
        return "\n".join(lines)


def _show(data: bytes, limit: int = 160) -> str:
    return ascii(data[:limit]) + ("..." if len(data) > limit else "")


def _error_shape(message: dict[str, Any]) -> str | None:
    """What is wrong with an ERROR/RPC_ERROR frame's payload (PROTOCOL.md, Errors), if anything."""
    payload = message.get("payload")
    if not isinstance(payload, dict) or set(payload) - {"code", "message", "details", "retryAfterMs", "retryable"}:
        return f"bad error payload keys: {payload!r}"
    code = payload.get("code")
    if not isinstance(code, str) or not isinstance(payload.get("message"), str):
        return "error without a string code and message"
    if code in _STANDARD_CODES and not isinstance(payload.get("retryable"), bool):
        return f"{code} without retryable"
    if code == "INTERNAL" and payload["message"] != "Internal server error":
        return f"INTERNAL leaks a message: {payload['message']!r}"
    details = payload.get("details")
    if "details" in payload and (not isinstance(details, dict) or not details):
        return "details present but not a non-empty object"
    issues = details.get("issues") if isinstance(details, dict) else None
    if issues is not None and not (
        isinstance(issues, list)
        and issues
        and all(
            isinstance(i, dict) and isinstance(i.get("path"), list) and isinstance(i.get("message"), str)
            for i in issues
        )
    ):
        return f"malformed issues: {issues!r}"
    return None


def _match(slots: list[frozenset[str]], answers: list[str]) -> tuple[list[int], list[int]]:
    """Assign answers to slots (bipartite matching): the unmatched slots and answers."""
    owner: dict[int, int] = {}  # answer -> slot
    by_answer: dict[str, list[int]] = {}
    for j, answer in enumerate(answers):
        by_answer.setdefault(answer, []).append(j)

    def place(i: int, seen: set[int]) -> bool:
        for allowed in slots[i]:
            for j in by_answer.get(allowed, ()):
                if j in seen:
                    continue
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    # single-answer slots first: they have no choice
    order = sorted(range(len(slots)), key=lambda i: len(slots[i]))
    unmatched = [i for i in order if not place(i, set())]
    extra = [j for j in range(len(answers)) if j not in owner]
    return unmatched, extra


# -- the fuzzing connections ---------------------------------------------------------------


@dataclass
class Run:
    """Shared state of one fuzzing run."""

    url: str
    frames: Iterator[Frame]
    findings: Findings = field(default_factory=Findings)
    sent: int = 0
    answers: int = 0
    deliberate: int = 0
    deliberate_maybe: int = 0
    replays: int = 0
    closes: Counter[int] = field(default_factory=Counter)

    def count_deliberate(self, exp: Expectation) -> None:
        """Failures the app will report for a frame answered as the oracle said."""
        if exp.refusable:
            self.deliberate_maybe += exp.deliberate
        else:
            self.deliberate += exp.deliberate


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, compression=None, max_size=None, open_timeout=5, close_timeout=1, ping_interval=None) as ws:
        yield ws


async def _send(ws: ClientConnection, frame: Frame) -> None:
    await ws.send(frame.data, text=not frame.binary)


async def _receive(ws: ClientConnection, run: Run) -> str:
    raw = await ws.recv()
    run.answers += 1
    try:
        message = json.loads(raw)
    except ValueError:
        run.findings.add("answer is not JSON", ascii(raw)[:200])
        return "<not JSON>"
    if isinstance(message, dict) and message.get("type") in ("ERROR", "RPC_ERROR"):
        problem = _error_shape(message)
        if problem is not None:
            run.findings.add("malformed error frame", f"{problem}: {ascii(raw)[:200]}")
    return canonical(message)


class Closed(Exception):
    """The server closed a fuzzing connection."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


def _closed(ws: ClientConnection) -> Closed:
    return Closed(ws.close_code, ws.close_reason or "")


async def _exchange(ws: ClientConnection, run: Run, batch: list[tuple[Frame, Expectation]]) -> list[str]:
    """Send a batch and a heartbeat, then read as many answers as the oracle expects."""
    expected = sum(len(exp.slots) for _, exp in batch) + 1
    try:
        for frame, _ in batch:
            await _send(ws, frame)
        await ws.send(HEARTBEAT, text=True)
        run.sent += len(batch)
        answers: list[str] = []
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while len(answers) < expected:
                answers.append(await _receive(ws, run))
        return answers
    except ConnectionClosed:
        raise _closed(ws) from None
    except TimeoutError:
        slots = [slot for _, exp in batch for slot in exp.slots] + [frozenset([ACK])]
        owners = [frame for frame, exp in batch for _ in exp.slots] + [Frame(HEARTBEAT, False, "barrier")]
        unmatched, _ = _match(slots, answers)
        missing = [f"{owners[i].label}: {_show(owners[i].data, 100)} -> {_briefs(slots[i])}" for i in unmatched]
        run.findings.add(
            "batches whose answers did not all come", f"{len(answers)} of {expected}; missing {missing[:3]}"
        )
        return answers


async def _resync(ws: ClientConnection, run: Run) -> None:
    """After a mismatch: read everything up to a fresh heartbeat ack and a short silence."""
    try:
        await ws.send(HEARTBEAT, text=True)
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while await _receive(ws, run) != ACK:
                pass
        while True:
            async with asyncio.timeout(0.02):
                await _receive(ws, run)
    except TimeoutError:
        return
    except ConnectionClosed:
        raise _closed(ws) from None


def _brief(answer: str) -> str:
    """A canonical answer in a few words (for grouping findings)."""
    if not answer.startswith("["):
        return answer
    parts = json.loads(answer)
    if parts[0] in ("ERROR", "RPC_ERROR"):
        return f"{parts[0]} {parts[2]}"
    return str(parts[0])


def _briefs(answers: Any) -> str:
    return " | ".join(sorted({_brief(a) for a in answers})) or "nothing"


async def _check_batch(ws: ClientConnection, run: Run, batch: list[tuple[Frame, Expectation]]) -> bool:
    """Send a batch; True when its answers are exactly the oracle's (in any order)."""
    answers = await _exchange(ws, run, batch)
    slots = [slot for _, exp in batch for slot in exp.slots] + [frozenset([ACK])]
    unmatched, extra = _match(slots, answers)
    if unmatched or extra:
        await _resync(ws, run)
        return False
    for _, exp in batch:
        run.count_deliberate(exp)
    return True


def _refused(exp: Expectation, got: list[str]) -> bool:
    return exp.refusals is not None and len(got) == 1 and got[0] in exp.refusals


async def _check_solo(ws: ClientConnection, run: Run, frame: Frame, exp: Expectation) -> bool:
    """One frame behind a heartbeat barrier: exactly its answers, or the close it allows.

    Records what differs as a finding named after the frame's mutation. False: the server
    closed the connection.
    """
    got: list[str] = []
    try:
        await _send(ws, frame)
        await ws.send(HEARTBEAT, text=True)
        run.sent += 1
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while (answer := await _receive(ws, run)) != ACK:
                got.append(answer)
        # an RPC's answer comes from its own task, possibly after the barrier's ack
        allowed = set().union(*exp.slots, exp.refusals or ())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RPC_WAIT_S):
                while len(got) < len(exp.slots) and not _refused(exp, got) and allowed.issuperset(got):
                    got.append(await _receive(ws, run))
    except (ConnectionClosed, TimeoutError) as exc:
        code = ws.close_code
        if code is not None:
            run.closes[code] += 1
        if exp.may_close is None or code != exp.may_close:
            what = f"close {code}" if isinstance(exc, ConnectionClosed) else "silence"
            run.findings.add(
                f"{frame.label}: expected {_briefs(s for slot in exp.slots for s in slot)}, got {what}",
                f"{_show(frame.data)} ({'binary' if frame.binary else 'text'}) -> {what} {ws.close_reason!r}; "
                f"answers before: {got[:2]}",
            )
        return isinstance(exc, TimeoutError) and ws.close_code is None
    unmatched, extra = _match(exp.slots, got)
    if (extra or unmatched) and not _refused(exp, got):
        run.findings.add(
            f"{frame.label}: expected {_briefs(s for slot in exp.slots for s in slot)}, got {_briefs(got)}",
            f"{_show(frame.data)} ({'binary' if frame.binary else 'text'}) expected "
            f"{[sorted(s) for s in exp.slots]}{f' or one of {sorted(exp.refusals)}' if exp.refusals else ''}, "
            f"got {got[:3]}",
        )
    else:
        run.count_deliberate(exp)
    return True


async def _replay(run: Run, batch: list[tuple[Frame, Expectation]]) -> None:
    """A batch went wrong: send its frames one by one, on a fresh connection, to name the culprits."""
    run.replays += 1
    frames = iter(batch)
    for frame, exp in frames:
        async with _client(run.url) as ws:
            if not await _check_solo(ws, run, frame, exp):
                continue
            for frame, exp in frames:
                if not await _check_solo(ws, run, frame, exp):
                    break


async def fuzz(run: Run, deadline: float) -> None:
    """One fuzzing connection: pull frames from the shared pool until it is empty or time is up."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            async with _client(run.url) as ws:
                await _fuzz_on(ws, run, deadline)
                return
        except Closed as closed:
            if closed.code is not None:
                run.closes[closed.code] += 1


async def _fuzz_on(ws: ClientConnection, run: Run, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    batch: list[tuple[Frame, Expectation]] = []
    in_flight: set[str] = set()

    async def flush() -> None:
        if not batch:
            return
        taken = list(batch)
        batch.clear()
        in_flight.clear()
        try:
            ok = await _check_batch(ws, run, taken)
        except Closed as closed:
            run.findings.add("batches that closed their connection", f"close {closed.code} {closed.reason!r}")
            if run.replays < MAX_REPLAYS:
                await _replay(run, taken)
            raise
        if not ok:
            run.findings.add("batches answered differently from the oracle", "(frames named by the replays)")
            if run.replays < MAX_REPLAYS:
                await _replay(run, taken)

    for frame in run.frames:
        exp = expect(frame.data, binary=frame.binary)
        if exp.solo:
            await flush()
            if not await _check_solo(ws, run, frame, exp):
                raise Closed(None, "solo frame closed the connection")
        else:
            # RPCs sharing a correlationId (or cancelled by one) in one batch would race: split
            cids = {exp.rpc_cid, exp.cancel_cid} - {None}
            if cids & in_flight:
                await flush()
            if exp.rpc_cid is not None:
                in_flight.add(exp.rpc_cid)
            batch.append((frame, exp))
            if len(batch) >= BATCH:
                await flush()
        if loop.time() >= deadline:
            break
    await flush()


# -- the well-behaved client ---------------------------------------------------------------


@dataclass
class Witness:
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0


async def witness(url: str, stop: asyncio.Event, out: Witness) -> None:
    """An echo RPC every 50 ms; each must be answered (the wait is bounded only to stop a hang)."""
    async with _client(url) as ws:
        while not stop.is_set():
            out.calls += 1
            cid = f"witness-{out.calls}"
            started = time.monotonic()
            request = {"type": "ECHO", "meta": {"correlationId": cid}, "payload": {"text": "still there?"}}
            try:
                await ws.send(json.dumps(request))
                async with asyncio.timeout(PATIENCE_S):
                    answer = json.loads(await ws.recv())
                if answer != {
                    "type": "ECHO_OK",
                    "meta": {"correlationId": cid},
                    "payload": {"text": "still there?", "n": None, "tags": []},
                }:
                    out.failures.append(f"call {cid}: wrong answer {answer!r}")
            except (TimeoutError, ConnectionClosed) as exc:
                out.failures.append(f"call {cid}: {type(exc).__name__} after {time.monotonic() - started:.2f} s")
                return
            out.slowest = max(out.slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)


# -- log records and loop errors -----------------------------------------------------------


class ErrorLog(logging.Handler):
    """ERROR records of wskit's, aiohttp's and asyncio's loggers, except the app's deliberate failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Deliberate):
            return
        self.records.append(record)

    def shown(self) -> list[str]:
        out = []
        for record in self.records[:SHOWN]:
            exc = record.exc_info[1] if record.exc_info else None
            out.append(f"{record.name}: {record.getMessage()} [{type(exc).__name__}: {exc}]")
        return out


@asynccontextmanager
async def watched_logs() -> AsyncIterator[tuple[ErrorLog, list[dict[str, Any]]]]:
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("wskit", "aiohttp", "asyncio")]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        # thousands of tracebacks would bury the report: the handler keeps them, summarised
        logger.propagate = False
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        yield handler, loop_errors
    finally:
        loop.set_exception_handler(previous)
        for logger, before in zip(loggers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = before


# -- the tests -----------------------------------------------------------------------------


def _frame_of_size(size: int) -> bytes:
    """A valid ECHO request of exactly ``size`` bytes (padded with an ignored root key)."""
    head = b'{"type":"ECHO","meta":{"correlationId":"big"},"payload":{"text":"big"},"pad":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def _oversize(url: str, findings: Findings) -> int:
    """Frames around MAX_PAYLOAD_BYTES: up to it answered, one byte more closed with 1009."""
    sent = 0
    big_ok = canonical(
        {"type": "ECHO_OK", "meta": {"correlationId": "big"}, "payload": {"text": "big", "n": None, "tags": []}}
    )
    for size in (MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 2 * MAX_PAYLOAD, 1024 * 1024):
        for binary in (False, True):
            data = _frame_of_size(size)
            assert len(data) == size
            async with _client(url) as ws:
                sent += 1
                try:
                    await ws.send(data, text=not binary)
                    async with asyncio.timeout(ANSWER_TIMEOUT_S):
                        answer = canonical(json.loads(await ws.recv()))
                    outcome = answer
                except ConnectionClosed:
                    outcome = f"close {ws.close_code}"
                except TimeoutError:
                    outcome = "nothing"
                wanted = big_ok if size <= MAX_PAYLOAD else "close 1009"
                if outcome != wanted:
                    findings.add(
                        "frame size limit",
                        f"{size}-byte {'binary' if binary else 'text'} frame (MAX_PAYLOAD_BYTES={MAX_PAYLOAD}): "
                        f"expected {wanted}, got {outcome}",
                    )
    return sent


@pytest.mark.timeout(180)
async def test_hostile_frames_are_all_answered_per_protocol() -> None:
    """100,000+ random and mutated frames: each answered as PROTOCOL.md says (or closed per its
    limit), no crash, no unexpected error, and a well-behaved client is served throughout."""
    started = time.monotonic()
    pool = build_pool()
    generated_in = time.monotonic() - started
    assert len(pool) >= TARGET_FRAMES, f"hypothesis drew only {len(pool)} frames"
    errors: list[BaseException] = []
    async with watched_logs() as (error_log, loop_errors):
        server = Server(build_router(errors), port=0, env={}, max_payload_bytes=MAX_PAYLOAD)
        async with server:
            run = Run(server.url, iter(pool))
            stop = asyncio.Event()
            good = Witness()
            witness_task = asyncio.create_task(witness(server.url, stop, good))
            await eventually(lambda: good.calls > 0 or witness_task.done(), what="the witness started")
            deadline = asyncio.get_running_loop().time() + 120
            await asyncio.gather(*(fuzz(run, deadline) for _ in range(FUZZERS)))
            oversize = await _oversize(server.url, run.findings)
            stop.set()
            await witness_task
            with contextlib.suppress(AssertionError):  # reported below, with the findings
                await eventually(lambda: server.connection_count == 0)  # it notices the closes
            still_open = server.connection_count
        fuzzed_in = time.monotonic() - started - generated_in
    findings = run.findings
    total = run.sent + oversize
    if error_log.records:
        findings.add(f"ERROR log records ({len(error_log.records)})", "; ".join(error_log.shown()))
    for context in loop_errors[:SHOWN]:
        findings.add("unhandled exception in the event loop", f"{context.get('message')}: {context.get('exception')!r}")
    unexpected = [exc for exc in errors if not isinstance(exc, Deliberate)]
    if unexpected:
        findings.add("on_error got an unexpected exception", repr(unexpected[:SHOWN]))
    if not findings and not run.deliberate <= len(errors) <= run.deliberate + run.deliberate_maybe:
        findings.add(
            "on_error count",
            f"{len(errors)} reported, {run.deliberate} deliberate failures expected "
            f"(+ up to {run.deliberate_maybe} of frames the server may refuse)",
        )
    summary = (
        f"{total} frames sent ({len(pool)} drawn in {generated_in:.1f} s, fuzzing {fuzzed_in:.1f} s), "
        f"{run.answers} answers, closes {dict(run.closes)}, witness calls {good.calls} "
        f"(slowest {good.slowest * 1000:.0f} ms)"
    )
    print(summary)
    assert not findings, f"{summary}\nfindings:\n{findings.report()}"
    assert total >= TARGET_FRAMES, summary
    assert good.calls >= 20 and not good.failures, f"well-behaved client: {good.failures[:SHOWN]}"
    assert still_open == 0, f"{still_open} connections still open after every client closed"


async def _upgrade(port: int) -> tuple[int, asyncio.StreamWriter]:
    """Start a WebSocket upgrade; the status, and the writer (kept open when it was 101)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), writer


@pytest.mark.timeout(60)
async def test_connection_flood_from_one_ip_is_capped() -> None:
    """200 concurrent upgrades from one IP with MAX_CONNECTIONS_PER_IP=20: exactly 20 succeed,
    the other 180 get HTTP 429, and the server keeps answering meanwhile and afterwards."""
    async with Server(build_router([]), port=0, env={}, max_connections_per_ip=20) as server:
        async with asyncio.timeout(20):
            health = asyncio.ensure_future(http_status(server.port, "/healthz", upgrade=False))
            outcomes = await asyncio.gather(*(_upgrade(server.port) for _ in range(200)))
            assert (await health) == (200, "ok")
        statuses = Counter(status for status, _ in outcomes)
        assert statuses == {101: 20, 429: 180}
        assert server.admission.per_ip == {"127.0.0.1": 20}
        assert await http_status(server.port, "/healthz", upgrade=False) == (200, "ok")
        for _, writer in outcomes:
            writer.close()
        await eventually(lambda: not server.admission.per_ip, what="the 20 slots released")
        async with _client(server.url) as ws:
            await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "after"}, "payload": {"text": "hi"}}))
            async with asyncio.timeout(PATIENCE_S):
                assert json.loads(await ws.recv())["type"] == "ECHO_OK"


async def _trickle(port: int) -> float:
    """Send a request's header one byte every 100 ms; seconds until the server cuts us off."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" * 4
    try:
        for byte in header:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                async with asyncio.timeout(0.1):
                    if await reader.read(1) == b"":
                        break
            except TimeoutError:
                continue
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


#: the handshake timeout of the slowloris test: long enough for a normal client to be served
#: while the trickling sockets still hang, on a loaded machine too
SLOWLORIS_TIMEOUT_S = 1.5 * TIME_SCALE


@pytest.mark.timeout(60)
async def test_slowloris_sockets_are_cut_while_others_connect() -> None:
    """Several sockets trickling header bytes are cut after HANDSHAKE_TIMEOUT_MS (not before,
    nor left to trickle on), and a normal client connects and is served in the meantime."""
    timeout_ms = int(SLOWLORIS_TIMEOUT_S * 1000)
    async with Server(build_router([]), port=0, env={}, handshake_timeout_ms=timeout_ms) as server:
        trickles = [asyncio.ensure_future(_trickle(server.port)) for _ in range(8)]
        await asyncio.sleep(0.2)  # the trickles connect first
        async with _client(server.url) as ws:
            await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "ok"}, "payload": {"text": "hi"}}))
            async with asyncio.timeout(PATIENCE_S):
                assert json.loads(await ws.recv())["type"] == "ECHO_OK"
            assert not any(t.done() for t in trickles), "the slow sockets should still be trickling"
            async with asyncio.timeout(SLOWLORIS_TIMEOUT_S + PATIENCE_S):
                lifetimes = await asyncio.gather(*trickles)
        # a trickle left alone would go on for ~30 s (one byte every 100 ms)
        cut = [0.9 * SLOWLORIS_TIMEOUT_S <= t <= SLOWLORIS_TIMEOUT_S + 1.5 * TIME_SCALE for t in lifetimes]
        assert all(cut), lifetimes
        assert server.transport is not None and server.transport.guard is not None
        assert server.transport.guard.expired == 8
