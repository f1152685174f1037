"""Redis scale-out benchmark: two wskit instances, one Redis, everything on 127.0.0.1.

    python bench/redis_scaleout.py            # full run (about a minute); writes bench/results/redis-scaleout.md
    python bench/redis_scaleout.py --quick    # a ~5 s smoke run (writes a file only with --output)

It starts its own ``redis-server`` on a free port and two server processes of
``bench/scaleout_app.py`` (instances A and B, sharing one Redis namespace), then measures:

(a) **cross-instance latency**: a publisher on A publishes at a steady rate (1,000 msg/s)
    for N seconds; a subscriber on B (and, for comparison, one on A) measures
    publish-to-receive latency from the send time carried in each payload. Both clients
    live in this process, so they share one clock (``time.perf_counter_ns``).
(b) **fan-out throughput**: 1,000 subscribers of one topic, 500 on each instance; the
    publisher sends a burst of M messages, and the clock stops when every subscriber has
    every message. Reported: deliveries per second and publish-to-receive latency.

The load generator is ``bench/fastws.py`` on uvloop (frames parsed in ``data_received``, no
coroutine per message). Each measurement reports the CPU time of the load generator
(``getrusage``) and of each server and Redis (``/proc/<pid>/stat``), as a share of one
core, so a reader can tell which side was the bottleneck. When ``os.sched_setaffinity``
exists and there are two CPUs or more, both servers are pinned to the first CPU and the
load generator to the second (Redis is left unpinned). Every loop is bounded in count and
time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import itertools
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from fastws import WsClient, connect

HERE = Path(__file__).resolve().parent
APP = HERE / "scaleout_app.py"
DEFAULT_OUTPUT = HERE / "results" / "redis-scaleout.md"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Config:
    """What one run measures (``FULL`` or ``QUICK``)."""

    latency_seconds: float
    rate: int
    warmup: int
    subscribers: int
    burst: int
    rounds: int


FULL = Config(latency_seconds=10.0, rate=1000, warmup=500, subscribers=1000, burst=200, rounds=3)
QUICK = Config(latency_seconds=1.5, rate=1000, warmup=100, subscribers=100, burst=20, rounds=1)


class BenchError(Exception):
    """The benchmark could not run or lost messages (reported, exit status 1)."""


# -- processes and their CPU time --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` from ``/proc`` (None where there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Process:
    """A child process with its output in ``<logdir>/<name>.log``; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}:\n" + "\n".join(tail))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class CpuMeter:
    """CPU seconds of the load generator and the given processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self._begin: dict[str, float | None] = {}
        self._wall = 0.0
        self.share: dict[str, float | None] = {}

    def _sample(self) -> dict[str, float | None]:
        sample: dict[str, float | None] = {"load generator": self_cpu()}
        for p in self.processes:
            sample[p.name] = proc_cpu(p.pid)
        return sample

    def start(self) -> None:
        self._begin = self._sample()
        self._wall = time.perf_counter()

    def stop(self) -> None:
        end = self._sample()
        wall = time.perf_counter() - self._wall
        for name, before in self._begin.items():
            after = end[name]
            self.share[name] = None if before is None or after is None or wall <= 0 else (after - before) / wall

    def cells(self) -> list[str]:
        return [f"{v * 100:.0f}%" if v is not None else "n/a" for v in self.share.values()]

    def headers(self) -> list[str]:
        return [f"CPU {name}" for name in self.share]


def wait_ready(server: Process, port: int, timeout: float = 20.0) -> None:
    """Until the instance answers ``/readyz`` with 200 (its Redis link is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        url = f"http://{HOST}:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"{server.name} was not ready on port {port} after {timeout:.0f}s")


def wait_redis(redis: Process, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        redis.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise BenchError(f"redis-server did not answer on port {port}")


# -- the wire --------------------------------------------------------------------------------


class Meta(msgspec.Struct):
    correlationId: str | None = None


class Body(msgspec.Struct):
    topic: str = ""
    seq: int = -1
    t: int = 0


class Frame(msgspec.Struct):
    type: str
    meta: Meta | None = None
    payload: Body | None = None


DECODE = msgspec.json.Decoder(Frame).decode
ENCODE = msgspec.json.Encoder().encode


def pub_frame(topic: str, seq: int) -> bytes:
    return ENCODE({"type": "PUB", "payload": {"topic": topic, "seq": seq, "t": time.perf_counter_ns()}})


class Peer:
    """One load-generator connection: answers to ``SUB`` resolved by correlationId, ticks to ``on_tick``."""

    ids = itertools.count(1)

    def __init__(self, on_tick: Callable[[int, int], None]) -> None:
        self.on_tick = on_tick
        self.waiting: dict[str, asyncio.Future[Frame]] = {}
        self.errors: list[bytes] = []
        self.client: WsClient | None = None

    def on_message(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        frame = DECODE(data)
        if frame.type == "TICK" and frame.payload is not None:
            self.on_tick(frame.payload.seq, now - frame.payload.t)
            return
        cid = frame.meta.correlationId if frame.meta is not None else None
        future = self.waiting.pop(cid, None) if cid else None
        if future is not None and not future.done():
            future.set_result(frame)
        elif frame.type in ("ERROR", "RPC_ERROR"):
            self.errors.append(data[:300])

    async def open(self, port: int) -> None:
        self.client = await connect(HOST, port, self.on_message)

    async def subscribe(self, topic: str, timeout: float = 10.0) -> None:
        assert self.client is not None
        cid = f"s{next(self.ids)}"
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.waiting[cid] = future
        self.client.send_text(ENCODE({"type": "SUB", "meta": {"correlationId": cid}, "payload": {"topic": topic}}))
        async with asyncio.timeout(timeout):
            answer = await future
        if answer.type != "SUBBED":
            raise BenchError(f"SUB {topic} answered {answer.type}")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close(timeout=5.0)


async def open_peers(peers: list[tuple[Peer, int]], topic: str | None, *, concurrency: int = 100) -> None:
    """Connect (and subscribe) many peers, ``concurrency`` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(peer: Peer, port: int) -> None:
        async with gate:
            await peer.open(port)
            if topic is not None:
                await peer.subscribe(topic)

    await asyncio.gather(*(one(peer, port) for peer, port in peers))


async def close_peers(peers: list[Peer]) -> None:
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


def percentile(sorted_ns: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted nanoseconds, in milliseconds."""
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


# -- (a) latency at a steady rate --------------------------------------------------------------


@dataclass
class LatencyResult:
    sent: int
    received: dict[str, int]
    latencies: dict[str, list[int]]
    seconds: float
    cpu: CpuMeter


async def measure_latency(cfg: Config, port_a: int, port_b: int, cpu: CpuMeter) -> LatencyResult:
    topic = "lat"
    latencies: dict[str, list[int]] = {"A → Redis → B (cross-instance)": [], "A → Redis → A (same instance)": []}
    received = dict.fromkeys(latencies, 0)
    total = cfg.warmup + int(cfg.rate * cfg.latency_seconds)

    def recorder(path: str) -> Callable[[int, int], None]:
        lat = latencies[path]

        def on_tick(seq: int, ns: int) -> None:
            received[path] += 1
            if seq >= cfg.warmup:
                lat.append(ns)

        return on_tick

    cross, local = (Peer(recorder(path)) for path in latencies)
    publisher = Peer(lambda seq, ns: None)
    await open_peers([(cross, port_b), (local, port_a)], topic)
    await open_peers([(publisher, port_a)], None)
    assert publisher.client is not None
    try:
        interval = 1.0 / cfg.rate
        start = time.perf_counter()
        hard_stop = start + cfg.latency_seconds * 2 + 10
        sent = 0
        measured_from = start + cfg.warmup * interval
        metering = False
        while sent < total and time.perf_counter() < hard_stop:
            if not metering and sent >= cfg.warmup:
                cpu.start()
                metering = True
            now = time.perf_counter()
            while sent < total and start + sent * interval <= now:
                publisher.client.send_text(pub_frame(topic, sent))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        deadline = time.monotonic() + 10
        while min(received.values()) < sent and time.monotonic() < deadline:  # noqa: ASYNC110 - polls counters
            await asyncio.sleep(0.01)
        cpu.stop()
        elapsed = time.perf_counter() - measured_from
        errors = cross.errors + local.errors + publisher.errors
        if errors:
            raise BenchError(f"errors from the servers: {errors[:3]}")
    finally:
        await close_peers([cross, local, publisher])
    for lat in latencies.values():
        lat.sort()
    return LatencyResult(sent, received, latencies, elapsed, cpu)


# -- (b) fan-out throughput --------------------------------------------------------------------


@dataclass
class FanoutRound:
    deliveries: int
    expected: int
    seconds: float
    latencies: list[int]
    out_of_order: int
    cpu: CpuMeter


@dataclass
class FanoutState:
    """Counters shared by every subscriber's callback during one round."""

    remaining: int = 0
    last_ns: int = 0
    out_of_order: int = 0
    latencies: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def measure_fanout(cfg: Config, port_a: int, port_b: int, meter: Callable[[], CpuMeter]) -> list[FanoutRound]:
    topic = "fan"
    state = FanoutState()
    next_seq = [0] * cfg.subscribers

    def subscriber(index: int) -> Callable[[int, int], None]:
        def on_tick(seq: int, ns: int) -> None:
            if seq != next_seq[index]:
                state.out_of_order += 1
            next_seq[index] = seq + 1
            state.latencies.append(ns)
            state.remaining -= 1
            if state.remaining == 0:
                state.last_ns = time.perf_counter_ns()
                state.done.set()

        return on_tick

    subs = [Peer(subscriber(i)) for i in range(cfg.subscribers)]
    publisher = Peer(lambda seq, ns: None)
    rounds: list[FanoutRound] = []
    try:
        started = time.perf_counter()
        await open_peers([(peer, port_a if i % 2 == 0 else port_b) for i, peer in enumerate(subs)], topic)
        await open_peers([(publisher, port_a)], None)
        print(f"  {cfg.subscribers} subscribers connected in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        assert publisher.client is not None
        seq = 0
        for _ in range(cfg.rounds):
            expected = cfg.subscribers * cfg.burst
            state.remaining, state.out_of_order, state.latencies = expected, 0, []
            state.done.clear()
            cpu = meter()
            cpu.start()
            first_ns = time.perf_counter_ns()
            for _ in range(cfg.burst):
                publisher.client.send_text(pub_frame(topic, seq))
                seq += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await state.done.wait()
            cpu.stop()
            end_ns = state.last_ns if state.done.is_set() else time.perf_counter_ns()
            state.latencies.sort()
            delivered = expected - state.remaining
            rounds.append(FanoutRound(delivered, expected, (end_ns - first_ns) / 1e9, state.latencies, 0, cpu))
            rounds[-1].out_of_order = state.out_of_order
            if delivered < expected:
                break
            await asyncio.sleep(0.5)
        errors = [e for peer in [*subs, publisher] for e in peer.errors]
        if errors:
            raise BenchError(f"errors from the servers: {errors[:3]}")
    finally:
        await close_peers([*subs, publisher])
    return rounds


# -- report ----------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout
    redis_v = next((part[2:] for part in redis_version.split() if part.startswith("v=")), redis_version.strip())
    git = ["git", "-C", str(HERE)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "../src"], capture_output=True, text=True, check=False)
    revision = commit.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")
    load = "unknown"
    with contextlib.suppress(OSError), open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    import wskit

    return [
        f"- CPU: {model}, {os.cpu_count()} logical CPUs (nproc); Linux {platform.release()}; "
        f"load average before the run: {load}",
        f"- Python {platform.python_version()}, redis-server {redis_v}, wskit {wskit.__version__}"
        + (f" (git {revision})" if commit.stdout.strip() else ""),
        f"- aiohttp {_version('aiohttp')}, msgspec {_version('msgspec')}, uvloop {_version('uvloop')}, "
        f"redis-py {_version('redis')}",
    ]


def report(
    cfg: Config, facts: list[str], pinning: str, lat: LatencyResult, fan: list[FanoutRound], command: str
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# wskit Redis scale-out benchmark",
        "",
        f"- Date: {now}",
        *facts,
        f"- Command: `{command}`",
        "- Setup: one `redis-server` (no persistence) and two wskit instances (`bench/scaleout_app.py`: aiohttp "
        "server, msgspec validator, uvloop, `RedisBroker`), all on 127.0.0.1; the load generator is one process "
        "(`bench/fastws.py` on uvloop) holding every client.",
        f"- CPU pinning: {pinning}",
        "- CPU columns: CPU time used during the measurement as a share of one core (100% = one core busy). "
        "A load generator near 100% would mean the client, not wskit, set the pace; both servers share one core, "
        "so A + B near 100% means the servers are saturated.",
        "",
        f"## (a) Latency at a steady {cfg.rate:,} msg/s for {cfg.latency_seconds:g} s",
        "",
        f"A publisher connected to A publishes {cfg.rate:,} msg/s to one topic (after {cfg.warmup} warm-up "
        "messages); latency is publish (client send) to receive (client read), in milliseconds.",
        "",
    ]
    rows = []
    for path, values in lat.latencies.items():
        rows.append(
            [
                path,
                f"{lat.sent - cfg.warmup:,}",
                f"{lat.received[path] - cfg.warmup:,}",
                f"{percentile(values, 0.5):.2f}",
                f"{percentile(values, 0.99):.2f}",
                f"{percentile(values, 0.999):.2f}",
                f"{values[-1] / 1e6 if values else float('nan'):.2f}",
            ]
        )
    out.append(table(["path", "sent", "received", "p50 ms", "p99 ms", "p99.9 ms", "max ms"], rows))
    out += [
        "",
        table(
            ["achieved rate", *lat.cpu.headers()],
            [[f"{len(next(iter(lat.latencies.values()))) / lat.seconds:,.0f} msg/s", *lat.cpu.cells()]],
        ),
    ]
    out += [
        "",
        f"## (b) Fan-out: one topic, {cfg.subscribers:,} subscribers ({cfg.subscribers // 2:,} on each instance)",
        "",
        f"The publisher (on A) sends a burst of {cfg.burst} messages as fast as it can write them; the time runs "
        "from the first send to the last delivery to the last subscriber. Latency is per delivery, in milliseconds.",
        "",
    ]
    rows = []
    for n, r in enumerate(fan, 1):
        rows.append(
            [
                str(n),
                f"{r.deliveries:,} / {r.expected:,}",
                f"{r.seconds * 1000:,.0f}",
                f"{r.deliveries / r.seconds:,.0f}" if r.seconds > 0 else "n/a",
                f"{percentile(r.latencies, 0.5):.1f}",
                f"{percentile(r.latencies, 0.99):.1f}",
                str(r.out_of_order),
                *r.cpu.cells(),
            ]
        )
    headers = ["round", "delivered", "time ms", "deliveries/s", "p50 ms", "p99 ms", "out of order"]
    out.append(table(headers + (fan[0].cpu.headers() if fan else []), rows))
    out += [
        "",
        "## Reading the numbers",
        "",
        "- Every publish goes through Redis, even to subscribers on the publishing instance (it is sent to Redis "
        "and comes back on the instance's subscription), so the two latency rows of (a) differ only by scheduling.",
        "- In (b) the whole burst is written at once, so a delivery's latency is mostly time spent queued behind "
        "the earlier messages of the burst; deliveries per second is the figure to compare.",
        "- The latency tails (p99 and beyond) are sensitive to anything else running on the machine, and to the "
        "two instances taking turns on one core; the load average before the run is given above.",
    ]
    return "\n".join(out) + "\n"


# -- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(logdir: Path, *, pin: bool = True) -> Iterator[tuple[int, int, list[Process], str]]:
    """redis-server and two instances; yields their ports, the processes and the pinning used."""
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)")
    processes: list[Process] = []
    try:
        redis_port = free_port()
        redis = Process(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", HOST, "--save", "", "--dir", str(logdir)],
            logdir,
        )
        processes.append(redis)
        wait_redis(redis, redis_port)
        url, namespace = f"redis://{HOST}:{redis_port}/0", f"bench-{uuid.uuid4().hex[:8]}"
        ports = [free_port(), free_port()]
        for name, port in zip(("wskit A", "wskit B"), ports, strict=True):
            args = [sys.executable, str(APP), "--port", str(port), "--redis", url, "--namespace", namespace]
            processes.append(Process(name, args, logdir))
        pinning = "none (needs os.sched_setaffinity and 2 CPUs)" if pin else "none (--no-pin)"
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if pin and len(cpus) >= 2 and hasattr(os, "sched_setaffinity"):
            for p in processes[1:]:
                os.sched_setaffinity(p.pid, {cpus[0]})
            os.sched_setaffinity(0, {cpus[1]})
            pinning = (
                f"both wskit instances on CPU {cpus[0]}, the load generator on CPU {cpus[1]}, redis-server unpinned"
            )
        for p, port in zip(processes[1:], ports, strict=True):
            wait_ready(p, port)
        yield ports[0], ports[1], processes, pinning
    finally:
        for p in reversed(processes):
            p.stop()


async def run(
    cfg: Config, port_a: int, port_b: int, processes: list[Process]
) -> tuple[LatencyResult, list[FanoutRound]]:
    print(f"(a) latency: {cfg.rate} msg/s for {cfg.latency_seconds:g}s ...", file=sys.stderr)
    lat = await measure_latency(cfg, port_a, port_b, CpuMeter(processes))
    for p in processes:
        p.check_alive()
    print(
        f"(b) fan-out: {cfg.subscribers} subscribers x {cfg.burst} messages x {cfg.rounds} rounds ...", file=sys.stderr
    )
    fan = await measure_fanout(cfg, port_a, port_b, lambda: CpuMeter(processes))
    return lat, fan


def main() -> int:
    parser = argparse.ArgumentParser(description="Redis scale-out benchmark (two wskit instances, one Redis).")
    parser.add_argument("--quick", action="store_true", help="a ~5 s smoke run with small numbers")
    parser.add_argument(
        "--output", type=Path, help=f"Markdown results file (default without --quick: {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--no-pin", action="store_true", help="leave every process on every CPU (for comparison)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    output: Path | None = args.output or (None if args.quick else DEFAULT_OUTPUT)
    command = " ".join(["python bench/redis_scaleout.py", *sys.argv[1:]])
    try:
        import uvloop

        runner: Callable[..., tuple[LatencyResult, list[FanoutRound]]] = uvloop.run
    except ImportError:
        runner = asyncio.run
    facts = machine_facts()
    logdir = Path(tempfile.mkdtemp(prefix="wskit-bench-"))
    try:
        with cluster(logdir, pin=not args.no_pin) as (port_a, port_b, processes, pinning):
            lat, fan = runner(run(cfg, port_a, port_b, processes))
            for p in processes:
                p.check_alive()
        text = report(cfg, facts, pinning, lat, fan, command)
    except (BenchError, OSError, TimeoutError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
    lost = any(r.deliveries < r.expected for r in fan) or min(lat.received.values()) < lat.sent
    if lost:
        print("benchmark failed: messages were lost (see the tables)", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
