"""The suite's load generator: one process, picows on uvloop, 127.0.0.1 only.

    python bench/loadgen.py --scenario echo --port P --conns 50 --seconds 2 --server-pid PID

Runs one sample of one scenario against a server that speaks the bench messages
(``bench/README.md``) and prints one JSON object: the figures, this process's CPU, the
server's CPU (``/proc/<pid>/stat``) and the hypervisor steal (``/proc/stat``), all over the
measured window. ``bench/run.py`` starts it pinned to its own core. Scenarios:

* ``echo``: ``--conns`` connections, each with one ``ECHO`` RPC in flight (sequential);
  replies/s and round-trip p50/p99.
* ``pipelined``: ``--conns`` connections, ``--inflight`` ``PING`` events in flight each;
  every ``PONG`` is answered by a new ``PING`` and the ones that arrive in one read are
  written back in one write (coalesced); messages/s.
* ``fanout``: ``--subscribers`` connections ``SUB`` to one topic, one publisher. Bursts of
  ``--burst`` ``PUB`` (deliveries/s from the first send to the last delivery), then
  ``--publishes`` paced single publishes (publish-to-receive p50/p99 unqueued).
* ``idle``: ``--conns`` connections opened and held; server RSS per connection.
* ``redis``: two wskit instances on one Redis through ``bench/redis_scaleout.py``;
  cross-instance latency at a steady rate (wskit only; it starts its own servers).

``--protocol socketio`` speaks the same workload as socket.io events over Engine.IO v4
(ECHO with an acknowledgement). Every wait is bounded; ``--deadline`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
from _common import raise_fd_limit  # bench/servers: shared with the servers
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

HOST = "127.0.0.1"
#: connections per loopback source address (an explicit bind draws from half of the ~28,000
#: ephemeral ports of one)
PER_SOURCE = 12_000
HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
_T_FIELD = re.compile(rb'"t":(\d+)')

# -- meters -------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of every CPU from the first line of ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    steal = values[7] if len(values) > 7 else 0
    return steal, sum(values[:8])


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Window:
    """CPU of this process and the server, and steal, between :meth:`start` and :meth:`stop`."""

    server_pid: int
    wall: float = 0.0
    own: float = 0.0
    server: float = 0.0
    steal: tuple[int, int] = (0, 0)
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.wall, self.own, self.server, self.steal = (
            time.perf_counter(),
            self_cpu(),
            proc_cpu(self.server_pid),
            cpu_ticks(),
        )

    def stop(self) -> dict[str, float]:
        wall = max(time.perf_counter() - self.wall, 1e-9)
        steal, total = cpu_ticks()
        d_total = max(total - self.steal[1], 1)
        self.result = {
            "seconds": wall,
            "loadgen_cpu": (self_cpu() - self.own) / wall,
            "server_cpu": (proc_cpu(self.server_pid) - self.server) / wall if self.server_pid else 0.0,
            "steal": (steal - self.steal[0]) / d_total,
        }
        return self.result


def percentiles(ns: list[int]) -> dict[str, float]:
    if not ns:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    ns.sort()
    pick = lambda q: ns[min(len(ns) - 1, int(q * len(ns)))] / 1e6  # noqa: E731
    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99)}


# -- the two dialects -------------------------------------------------------------------------------


def masked(payload: bytes) -> bytes:
    """A client text frame with a zero mask key: written as is, many at a time, no masking cost."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, 0x80 | n)) + b"\0\0\0\0" + payload
    return bytes((0x81, 0x80 | 126)) + struct.pack("!H", n) + b"\0\0\0\0" + payload


class Dialect:
    """The bench messages as WS-Kit envelopes (every peer but socket.io)."""

    path = "/"
    ready_on_open = True
    ping_frame = masked(b'{"type":"PING","payload":{"text":"hello"}}')
    pong_prefix = b'{"type":"PONG"'

    def echo(self, n: int) -> bytes:
        return b'{"type":"ECHO","meta":{"correlationId":"%d"},"payload":{"text":"hello"}}' % n

    def echo_ok(self, data: bytes, n: int) -> bool:
        return data.startswith(b'{"type":"ECHO_OK"') and (b'"correlationId":"%d"' % n) in data

    def sub(self, topic: str, n: int) -> bytes:
        return b'{"type":"SUB","meta":{"correlationId":"s%d"},"payload":{"topic":"%s"}}' % (n, topic.encode())

    def subbed(self, data: bytes) -> bool:
        return data.startswith(b'{"type":"SUBBED"')

    def pub(self, topic: str, seq: int) -> bytes:
        t = time.perf_counter_ns()
        return b'{"type":"PUB","payload":{"topic":"%s","seq":%d,"t":%d}}' % (topic.encode(), seq, t)

    def is_tick(self, data: bytes) -> bool:
        return data.startswith(b'{"type":"TICK"')

    def control(self, data: bytes) -> bytes | None:
        """A protocol-level answer to ``data`` (socket.io pings), or None."""
        return None


class SocketIO(Dialect):
    """The same workload as socket.io events over Engine.IO v4 (``42``: event, ``43``: ack)."""

    path = "/socket.io/?EIO=4&transport=websocket"
    ready_on_open = False
    ping_frame = masked(b'42["PING",{"text":"hello"}]')
    pong_prefix = b'42["PONG"'

    def echo(self, n: int) -> bytes:
        return b'42%d["ECHO",{"text":"hello"}]' % n

    def echo_ok(self, data: bytes, n: int) -> bool:
        return data.startswith(b"43%d[" % n)

    def sub(self, topic: str, n: int) -> bytes:
        return b'42%d["SUB",{"topic":"%s"}]' % (n, topic.encode())

    def subbed(self, data: bytes) -> bool:
        return data.startswith(b"43")

    def pub(self, topic: str, seq: int) -> bytes:
        t = time.perf_counter_ns()
        return b'42["PUB",{"topic":"%s","seq":%d,"t":%d}]' % (topic.encode(), seq, t)

    def is_tick(self, data: bytes) -> bool:
        return data.startswith(b'42["TICK"')

    def control(self, data: bytes) -> bytes | None:
        if data == b"2":
            return b"3"  # Engine.IO ping -> pong
        if data[:1] == b"0":
            return b"40"  # Engine.IO open -> socket.io CONNECT to "/"
        return None


# -- one connection -----------------------------------------------------------------------------------


class Conn(WSListener):  # type: ignore[misc]
    """One client connection; ``handler(conn, data, last_in_buffer)`` gets every application message."""

    def __init__(self, dialect: Dialect, handler: Callable[[Conn, bytes, bool], None]) -> None:
        self.dialect = dialect
        self.handler = handler
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reply: asyncio.Future[bytes] | None = None
        self.sent_ns = 0
        self.n = 0
        self.pending = 0
        self.errors = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.dialect.ready_on_open:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            data = frame.get_payload_as_bytes()
            if not self.ready.done() and data.startswith(b"40"):
                self.ready.set_result(None)
                return
            answer = self.dialect.control(data)
            if answer is not None:
                transport.send(WSMsgType.TEXT, answer)
                return
            if self.reply is not None and not self.reply.done():
                self.reply.set_result(data)
                return
            self.handler(self, data, frame.last_in_buffer)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before it was ready"))

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, data)

    def write_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.underlying_transport.write(data)

    async def request(self, data: bytes, timeout: float = 10.0) -> bytes:
        self.reply = asyncio.get_running_loop().create_future()
        self.send(data)
        async with asyncio.timeout(timeout):
            return await self.reply


async def open_conns(
    port: int, dialect: Dialect, handler: Callable[[Conn, bytes, bool], None], count: int, *, concurrency: int = 100
) -> list[Conn]:
    """``count`` ready connections, ``concurrency`` handshakes at a time (each bounded)."""
    gate = asyncio.Semaphore(concurrency)
    url = f"ws://{HOST}:{port}{dialect.path}"

    async def one(i: int) -> Conn:
        # one source address holds ~28,000 connections to one port (the ephemeral port range):
        # past PER_SOURCE, the next loopback addresses (127.0.0.2, ...) are the sources (an
        # explicit bind draws from half the range: PER_SOURCE each)
        extra = i // PER_SOURCE
        source = {"local_addr": (f"127.0.0.{1 + extra}", 0)} if extra else {}
        async with gate:
            for attempt in range(3):
                try:
                    _t, conn = await ws_connect(
                        lambda: Conn(dialect, handler),
                        url,
                        websocket_handshake_timeout=10,
                        read_buffer_init_size=4096,
                        **source,
                    )
                    async with asyncio.timeout(10):
                        await conn.ready
                    return conn
                except (OSError, TimeoutError, ConnectionError):
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2)
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def close_conns(conns: list[Conn]) -> None:
    for conn in conns:
        if conn.transport is not None:
            conn.transport.disconnect(graceful=False)
    await asyncio.sleep(0)


# -- scenarios -------------------------------------------------------------------------------------------


async def echo(args: argparse.Namespace, dialect: Dialect, window: Window) -> dict[str, Any]:
    latencies: list[int] = []
    state = {"recording": False, "stopping": False, "count": 0, "errors": 0, "inflight": 0}

    def on_message(conn: Conn, data: bytes, _last: bool) -> None:
        now = time.perf_counter_ns()
        if not dialect.echo_ok(data, conn.n):
            state["errors"] += 1
            return
        state["inflight"] -= 1
        if state["recording"]:
            state["count"] += 1
            latencies.append(now - conn.sent_ns)
        if state["stopping"]:
            return
        conn.n += 1
        conn.sent_ns = time.perf_counter_ns()
        state["inflight"] += 1
        conn.send(dialect.echo(conn.n))

    conns = await open_conns(args.port, dialect, on_message, args.conns)
    try:
        for conn in conns:
            conn.sent_ns = time.perf_counter_ns()
            state["inflight"] += 1
            conn.send(dialect.echo(conn.n))
        await asyncio.sleep(args.warmup)
        window.start()
        state["recording"] = True
        await asyncio.sleep(args.seconds)
        state["recording"] = False
        figures = window.stop()
        state["stopping"] = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while state["inflight"] > 0:  # noqa: ASYNC110 - polls a counter the callbacks update
                    await asyncio.sleep(0.01)
    finally:
        await close_conns(conns)
    return {"rate": state["count"] / figures["seconds"], "count": state["count"], "errors": state["errors"]} | (
        percentiles(latencies)
    )


async def pipelined(args: argparse.Namespace, dialect: Dialect, window: Window) -> dict[str, Any]:
    state = {"recording": False, "stopping": False, "count": 0, "errors": 0}
    frame = dialect.ping_frame
    prefix = dialect.pong_prefix

    def on_message(conn: Conn, data: bytes, last: bool) -> None:
        if not data.startswith(prefix):
            state["errors"] += 1
            return
        if state["recording"]:
            state["count"] += 1
        if state["stopping"]:
            return
        conn.pending += 1
        if last:  # the last frame of this read: answer them all in one write
            conn.write_raw(frame * conn.pending)
            conn.pending = 0

    conns = await open_conns(args.port, dialect, on_message, args.conns)
    try:
        for conn in conns:
            conn.write_raw(frame * args.inflight)
        await asyncio.sleep(args.warmup)
        window.start()
        state["recording"] = True
        await asyncio.sleep(args.seconds)
        state["recording"] = False
        figures = window.stop()
        state["stopping"] = True
        await asyncio.sleep(0.2)
    finally:
        await close_conns(conns)
    return {"rate": state["count"] / figures["seconds"], "count": state["count"], "errors": state["errors"]}


async def fanout(args: argparse.Namespace, dialect: Dialect, window: Window) -> dict[str, Any]:
    topic = "fan"
    latencies: list[int] = []
    state = {"remaining": 0, "last_ns": 0, "ticks": 0}
    done = asyncio.Event()

    def on_message(_conn: Conn, data: bytes, _last: bool) -> None:
        now = time.perf_counter_ns()
        found = _T_FIELD.search(data)
        if found is None or not dialect.is_tick(data):
            return
        latencies.append(now - int(found.group(1)))
        state["ticks"] += 1
        state["remaining"] -= 1
        if state["remaining"] == 0:
            state["last_ns"] = now
            done.set()

    started = time.perf_counter()
    subs = await open_conns(args.port, dialect, on_message, args.subscribers)
    publisher = (await open_conns(args.port, dialect, on_message, 1))[0]
    out: dict[str, Any] = {}
    try:

        async def subscribe(i: int, conn: Conn) -> None:
            answer = await conn.request(dialect.sub(topic, i))
            if not dialect.subbed(answer):
                raise RuntimeError(f"SUB answered {answer[:200]!r}")

        for start in range(0, len(subs), 200):
            await asyncio.gather(*(subscribe(start + i, c) for i, c in enumerate(subs[start : start + 200])))
        out["connect_seconds"] = time.perf_counter() - started
        await asyncio.sleep(0.2)
        seq = 0
        # (1) bursts: deliveries per second, the whole burst written at once
        delivered = expected = 0
        burst_ns = 0
        window.start()
        for _ in range(args.rounds):
            latencies.clear()
            state["remaining"] = args.subscribers * args.burst
            expected += state["remaining"]
            done.clear()
            first = time.perf_counter_ns()
            publisher.write_raw(b"".join(masked(dialect.pub(topic, seq + i)) for i in range(args.burst)))
            seq += args.burst
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.round_timeout):
                    await done.wait()
            got = args.subscribers * args.burst - state["remaining"]
            delivered += got
            burst_ns += (state["last_ns"] if done.is_set() else time.perf_counter_ns()) - first
            if not done.is_set():
                break
            await asyncio.sleep(0.1)
        figures = window.stop()
        burst = percentiles(latencies)
        out |= {
            "rate": delivered / max(burst_ns / 1e9, 1e-9),
            "delivered": delivered,
            "expected": expected,
            "burst_p50_ms": burst["p50_ms"],
            "burst_p99_ms": burst["p99_ms"],
        }
        # (2) paced single publishes: publish-to-receive latency with nothing queued ahead
        latencies.clear()
        for _ in range(args.publishes):
            state["remaining"] = args.subscribers
            done.clear()
            publisher.write_raw(masked(dialect.pub(topic, seq)))
            seq += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.round_timeout):
                    await done.wait()
            if not done.is_set():
                out["lost"] = True
                break
            await asyncio.sleep(0.02)
        out |= percentiles(latencies)
        out["window"] = figures
    finally:
        await close_conns([*subs, publisher])
    return out


async def idle(args: argparse.Namespace, dialect: Dialect, window: Window) -> dict[str, Any]:
    await asyncio.sleep(0.3)
    before = proc_rss_kib(args.server_pid)
    window.start()
    conns = await open_conns(args.port, dialect, lambda c, d, last: None, args.conns)
    try:
        await asyncio.sleep(args.seconds)
        after = proc_rss_kib(args.server_pid)
        window.stop()
    finally:
        await close_conns(conns)
    per_conn = (after - before) * 1024 / max(len(conns), 1)
    return {"rate": per_conn, "rss_before_kib": before, "rss_after_kib": after, "conns": len(conns)}


async def redis(args: argparse.Namespace, _dialect: Dialect, window: Window) -> dict[str, Any]:
    """Cross-instance latency through ``bench/redis_scaleout.py`` (its cluster and its measurement)."""
    import shutil
    import tempfile

    sys.path.insert(0, str(HERE))
    import redis_scaleout as rs

    cfg = rs.Config(
        latency_seconds=args.seconds, rate=args.rate, warmup=args.warmup_messages, subscribers=0, burst=0, rounds=0
    )
    logdir = Path(tempfile.mkdtemp(prefix="wskit-bench-redis-"))
    try:
        with rs.cluster(logdir, pin=True) as (port_a, port_b, processes, _pinning):
            window.server_pid = processes[1].pid
            window.start()
            lat = await rs.measure_latency(cfg, port_a, port_b, rs.CpuMeter(processes))
            figures = window.stop()
            cpu = dict(lat.cpu.share)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    cross = lat.latencies["A → Redis → B (cross-instance)"]
    achieved = len(cross) / lat.seconds if lat.seconds > 0 else 0.0
    out: dict[str, Any] = percentiles(cross) | {"rate": achieved, "sent": lat.sent, "received": lat.received}
    out["window"] = figures | {"server_cpu": (cpu.get("wskit A") or 0.0) + (cpu.get("wskit B") or 0.0)}
    return out


SCENARIOS = {"echo": echo, "pipelined": pipelined, "fanout": fanout, "idle": idle, "redis": redis}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    dialect: Dialect = SocketIO() if args.protocol == "socketio" else Dialect()
    window = Window(args.server_pid)
    async with asyncio.timeout(args.deadline):
        out = await SCENARIOS[args.scenario](args, dialect, window)
    figures = out.pop("window", None) or window.result
    return out | figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--protocol", choices=("wskit", "socketio"), default="wskit")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishes", type=int, default=20)
    parser.add_argument("--round-timeout", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=1000, help="redis: publishes per second")
    parser.add_argument("--warmup-messages", type=int, default=500, help="redis: unmeasured first publishes")
    parser.add_argument("--deadline", type=float, default=300.0, help="hard bound of the whole run, seconds")
    args = parser.parse_args()
    raise_fd_limit()
    import uvloop

    try:
        result = uvloop.run(main_async(args))
    except Exception as exc:  # noqa: BLE001 - reported to the runner as data
        print(orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}).decode())
        return 1
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
