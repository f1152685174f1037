"""The benchmark suite: wskit against its peers, same workload, same load generator.

    python bench/run.py                       # the full run (minutes); writes bench/results/
    python bench/run.py --smoke               # ~1 s per scenario, few connections (make test)
    python bench/run.py --peers wskit_msgspec,raw_aiohttp --scenarios echo_c50,pipelined --repeats 5

Each repeat starts every selected server (``bench/servers/``) as its own process pinned to
CPU 0, then runs each scenario against each server in turn (the servers interleaved inside
the repeat, the order rotated between repeats); every sample is one run of
``bench/loadgen.py`` pinned to CPU 1. A sample records messages/s, latencies, the CPU of
both sides and the hypervisor steal over its window; one spoiled by steal above
``--max-steal`` is run again (at most ``--retries`` times). Figures are medians over the
repeats; ratios are against WS-Kit on Bun and raw aiohttp. Results: ``results.md``,
``results.json`` and ``chart.png`` in ``bench/results/`` (``--output-dir``). The targets of
the performance issue are checked and printed PASS/FAIL; a miss does not fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
from _common import raise_fd_limit  # bench/servers: shared with the servers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = HERE / "servers"
SCRATCH = HERE / ".scratch"
BUN = SCRATCH / "node_modules" / ".bin" / "bun"
HOST = "127.0.0.1"

# -- peers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A server under test: how to start it and which dialect the load generator speaks to it."""

    name: str
    label: str
    script: str
    runtime: str = "python"  # or "bun"
    protocol: str = "wskit"
    needs: tuple[str, ...] = ()  # Python modules it imports
    #: another checkout to run the script from (``--baseline REV``): its servers/ and src/
    tree: Path | None = None
    #: environment variables of its own (the same script under other settings)
    extra_env: tuple[tuple[str, str], ...] = ()

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        if self.runtime == "bun":
            if not BUN.exists():
                return "bun is not installed in bench/.scratch (bash bench/setup_peers.sh)"
            if self.name == "wskit_bun" and not (SCRATCH / "node_modules" / "@ws-kit" / "bun").exists():
                return "@ws-kit packages are not installed in bench/.scratch"
            return None
        import importlib.util

        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        return f"missing Python packages: {', '.join(missing)}" if missing else None

    def command(self, port: int) -> list[str]:
        if self.runtime == "bun":
            # bun resolves packages next to the script: run a copy inside the scratch folder
            shutil.copy(SERVERS / self.script, SCRATCH / self.script)
            return [str(BUN), str(SCRATCH / self.script), "--port", str(port)]
        servers = SERVERS if self.tree is None else self.tree / "bench" / "servers"
        return [sys.executable, str(servers / self.script), "--port", str(port)]

    def env(self) -> dict[str, str]:
        """The server's environment: a baseline tree's wskit comes first on the path."""
        env = {**os.environ, **dict(self.extra_env)}
        if self.tree is None:
            return env
        return {**env, "PYTHONPATH": f"{self.tree / 'src'}{os.pathsep}{self.tree}"}


PEERS = {
    p.name: p
    for p in (
        # what users write first: pydantic, dict replies, a topic joined on open, default settings
        # serve()'s host with wskit[fast] installed (picows); the base install's (aiohttp) below
        Peer(
            "wskit_default",
            "wskit (pydantic, dicts, defaults)",
            "wskit_default.py",
            needs=("wskit", "pydantic", "picows", "uvloop"),
        ),
        # the headline with METRICS=0: what counting for /metrics costs (target: within 3%)
        Peer(
            "wskit_default_nometrics",
            "wskit (pydantic, dicts, defaults) with METRICS=0",
            "wskit_default.py",
            needs=("wskit", "pydantic", "picows", "uvloop"),
            extra_env=(("METRICS", "0"),),
        ),
        Peer(
            "wskit_default_msgspec",
            "wskit (msgspec, dicts, defaults)",
            "wskit_default_msgspec.py",
            needs=("wskit", "msgspec", "picows", "uvloop"),
        ),
        Peer(
            "wskit_default_aiohttp",
            "wskit without wskit[fast]: aiohttp (pydantic, dicts, defaults)",
            "wskit_default_aiohttp.py",
            needs=("wskit", "pydantic", "uvloop"),
        ),
        # the bench's own tuned path: payload instances passed back, heartbeat and guards off
        Peer(
            "wskit_msgspec",
            "wskit tuned (msgspec, guards off)",
            "wskit_msgspec.py",
            needs=("wskit", "msgspec", "uvloop"),
        ),
        Peer(
            "wskit_pydantic",
            "wskit tuned (pydantic, guards off)",
            "wskit_pydantic.py",
            needs=("wskit", "pydantic", "uvloop"),
        ),
        Peer("wskit_bun", "WS-Kit 0.10 on Bun", "wskit_bun.ts", runtime="bun"),
        Peer("raw_bun", "raw Bun", "raw_bun.ts", runtime="bun"),
        Peer("raw_aiohttp", "raw aiohttp", "raw_aiohttp.py", needs=("aiohttp", "orjson", "uvloop")),
        Peer("raw_picows", "raw picows", "raw_picows.py", needs=("picows", "orjson", "uvloop")),
        Peer("raw_websockets", "raw websockets", "raw_websockets.py", needs=("websockets", "orjson", "uvloop")),
        Peer(
            "socketio",
            "python-socketio on uvicorn",
            "socketio_uvicorn.py",
            protocol="socketio",
            needs=("socketio", "uvicorn", "uvloop"),
        ),
        Peer("starlette", "Starlette on uvicorn", "starlette_uvicorn.py", needs=("starlette", "uvicorn", "uvloop")),
        Peer(
            "wskit_asgi",
            "wskit asgi_app on uvicorn (pydantic)",
            "wskit_asgi.py",
            needs=("wskit", "starlette", "uvicorn", "uvloop"),
        ),
    )
}
#: the headline: wskit as users write it (pydantic, dicts, defaults)
WSKIT = "wskit_default"
#: the same user code on the msgspec backend
WSKIT_MSGSPEC = "wskit_default_msgspec"
#: the headline with metrics off
WSKIT_NO_METRICS = "wskit_default_nometrics"
BUN_PEER = "wskit_bun"
RAW = "raw_aiohttp"

# -- scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One workload: the load generator's arguments (full and smoke), its unit and what it reports."""

    name: str
    title: str
    unit: str
    full: tuple[str, ...]
    smoke: tuple[str, ...]
    latency: bool = True
    higher_is_better: bool = True
    wskit_only: bool = False
    #: measured for these peers only (empty: every peer); the 50,000-connection scenarios take
    #: a minute each, so they run for the headline and its references
    only: tuple[str, ...] = ()

    def loadgen_args(self, smoke: bool) -> list[str]:
        return ["--scenario", *(self.smoke if smoke else self.full)]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "echo_c1",
            "echo RPC, C=1, sequential",
            "msg/s",
            ("echo", "--conns", "1", "--seconds", "2", "--warmup", "0.5"),
            ("echo", "--conns", "1", "--seconds", "0.5", "--warmup", "0.2"),
        ),
        Scenario(
            "echo_c50",
            "echo RPC, C=50, sequential",
            "msg/s",
            ("echo", "--conns", "50", "--seconds", "2", "--warmup", "0.5"),
            ("echo", "--conns", "5", "--seconds", "0.5", "--warmup", "0.2"),
        ),
        Scenario(
            "pipelined",
            "pipelined events, C=50 x 20 in flight",
            "msg/s",
            ("pipelined", "--conns", "50", "--inflight", "20", "--seconds", "2", "--warmup", "0.5"),
            ("pipelined", "--conns", "5", "--inflight", "5", "--seconds", "0.5", "--warmup", "0.2"),
            latency=False,
        ),
        Scenario(
            "fanout_1000",
            "fan-out, 1 publisher, 1,000 subscribers",
            "deliveries/s",
            ("fanout", "--subscribers", "1000", "--burst", "20", "--rounds", "3", "--publishes", "20"),
            ("fanout", "--subscribers", "20", "--burst", "5", "--rounds", "1", "--publishes", "3"),
        ),
        Scenario(
            "fanout_5000",
            "fan-out, 1 publisher, 5,000 subscribers",
            "deliveries/s",
            ("fanout", "--subscribers", "5000", "--burst", "10", "--rounds", "3", "--publishes", "20"),
            ("fanout", "--subscribers", "40", "--burst", "5", "--rounds", "1", "--publishes", "3"),
        ),
        Scenario(
            "idle_50000",
            "idle connections held open, 50,000 (the headline peer)",
            "bytes RSS/conn",
            ("idle", "--conns", "50000", "--seconds", "2"),
            ("idle", "--conns", "200", "--seconds", "0.3"),
            latency=False,
            higher_is_better=False,
            only=(WSKIT, "raw_aiohttp", "wskit_bun"),
        ),
        Scenario(
            "fanout_50000",
            "fan-out, 1 publisher, 50,000 subscribers (the headline peer)",
            "deliveries/s",
            (
                "fanout",
                "--subscribers",
                "50000",
                "--burst",
                "2",
                "--rounds",
                "2",
                "--publishes",
                "10",
                "--round-timeout",
                "120",
            ),
            ("fanout", "--subscribers", "200", "--burst", "2", "--rounds", "1", "--publishes", "3"),
            only=(WSKIT,),
        ),
        Scenario(
            "idle_5000",
            "idle connections held open, 5,000",
            "bytes RSS/conn",
            ("idle", "--conns", "5000", "--seconds", "1.5"),
            ("idle", "--conns", "50", "--seconds", "0.3"),
            latency=False,
            higher_is_better=False,
        ),
        Scenario(
            "redis",
            "cross-instance via Redis, 2 wskit processes, 1,000 msg/s",
            "msg/s",
            ("redis", "--seconds", "5", "--rate", "1000", "--warmup-messages", "500"),
            ("redis", "--seconds", "0.5", "--rate", "1000", "--warmup-messages", "50"),
            wskit_only=True,
        ),
    )
}
# idle first: its baseline RSS is taken before the server has served anything else
ORDER = [
    "idle_5000",
    "idle_50000",
    "echo_c1",
    "echo_c50",
    "pipelined",
    "fanout_1000",
    "fanout_5000",
    "fanout_50000",
    "redis",
]

# -- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinner(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and every thread it starts) to ``cpu``."""
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


class Server:
    """One peer's server process (its log in ``logdir``), stopped with SIGTERM then SIGKILL."""

    def __init__(self, peer: Peer, logdir: Path, cpu: int | None) -> None:
        self.peer = peer
        self.port = free_port()
        self.log = logdir / f"{peer.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                peer.command(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=pinner(cpu),
                cwd=SCRATCH if peer.runtime == "bun" else (peer.tree or ROOT),
                env=peer.env(),
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.peer.name} exited:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.peer.name} did not listen on {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stats(self) -> dict[str, int] | None:
        """wskit servers' counters (their ``BENCH_STATS`` RPC), None for the others."""
        if not self.peer.name.startswith("wskit_") or self.peer.runtime != "python":
            return None
        ask = b'{"type":"BENCH_STATS","meta":{"correlationId":"s"},"payload":{}}'
        with contextlib.suppress(OSError, ValueError, WebSocketException), connect(f"ws://{HOST}:{self.port}/") as ws:
            ws.send(ask.decode())
            answer = orjson.loads(ws.recv(timeout=5))
            data: dict[str, int] = answer["payload"]
            return data
        return None


#: the scenarios the native load generator (``loadgen_bun.ts``) runs; the rest stay Python's
BUN_SCENARIOS = ("echo", "pipelined")


def run_loadgen(args: list[str], cpu: int | None, timeout: float, *, native: bool = False) -> dict[str, Any]:
    """One sample from the Python load generator, or from Bun's when ``native`` (and the
    scenario is one it has, over the WS-Kit dialect)."""
    scenario = args[args.index("--scenario") + 1] if "--scenario" in args else ""
    if native and scenario in BUN_SCENARIOS and "--protocol" not in args:
        cmd = [str(BUN), str(HERE / "loadgen_bun.ts"), *args, "--deadline", str(timeout - 5)]
    else:
        cmd = [sys.executable, str(HERE / "loadgen.py"), *args, "--deadline", str(timeout - 5)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=pinner(cpu), cwd=ROOT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"load generator timed out after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"load generator exited {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


@contextlib.contextmanager
def servers(peers: list[Peer], logdir: Path, cpu: int | None) -> Iterator[dict[str, Server]]:
    running: dict[str, Server] = {}
    try:
        for peer in peers:
            running[peer.name] = Server(peer, logdir, cpu)
        for server in running.values():
            server.wait_ready()
        yield running
    finally:
        for server in running.values():
            server.stop()


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Options:
    peers: list[Peer]
    scenarios: list[Scenario]
    repeats: int
    smoke: bool
    max_steal: float
    retries: int
    server_cpu: int | None
    loadgen_cpu: int | None
    #: echo and pipelined from Bun's native client (``--loadgen bun``)
    native_loadgen: bool = False


Samples = dict[str, dict[str, list[dict[str, Any]]]]  # scenario -> peer -> samples


def sample(opts: Options, scenario: Scenario, server: Server | None) -> dict[str, Any]:
    args = scenario.loadgen_args(opts.smoke)
    if server is not None:
        args += ["--port", str(server.port), "--server-pid", str(server.pid)]
        if server.peer.protocol == "socketio":
            args += ["--protocol", "socketio"]
    timeout = 60.0 if opts.smoke else 240.0
    before = server.stats() if server is not None else None
    result: dict[str, Any] = {}
    for attempt in range(opts.retries + 1):
        result = run_loadgen(args, opts.loadgen_cpu, timeout, native=opts.native_loadgen)
        result["attempts"] = attempt + 1
        if "error" in result or result.get("steal", 0.0) <= opts.max_steal:
            break
        print(f"    steal {result['steal']:.1%} > {opts.max_steal:.0%}: sample repeated", file=sys.stderr)
    after = server.stats() if server is not None else None
    if before is not None and after is not None and after["publishes"] > before["publishes"]:
        result["encodes_per_publish"] = (after["tick_encodes"] - before["tick_encodes"]) / (
            after["publishes"] - before["publishes"]
        )
    return result


def describe(result: dict[str, Any], scenario: Scenario) -> str:
    if "error" in result:
        return f"ERROR {result['error'][:300]}"
    text = f"{result['rate']:>12,.0f} {scenario.unit}"
    if scenario.latency:
        text += f"  p50 {result.get('p50_ms', float('nan')):.2f} ms  p99 {result.get('p99_ms', float('nan')):.2f} ms"
    return text + (
        f"  cpu server {result.get('server_cpu', 0):.0%} loadgen {result.get('loadgen_cpu', 0):.0%}"
        f"  steal {result.get('steal', 0):.1%}"
    )


def run(opts: Options, logdir: Path) -> Samples:
    samples: Samples = {s.name: {p.name: [] for p in opts.peers} for s in opts.scenarios}
    shared = [s for s in opts.scenarios if not s.wskit_only]
    for repeat in range(opts.repeats):
        shift = repeat % max(len(opts.peers), 1)
        order = opts.peers[shift:] + opts.peers[:shift]
        print(f"repeat {repeat + 1}/{opts.repeats}: starting {len(order)} servers", file=sys.stderr)
        if shared:
            with servers(order, logdir, opts.server_cpu) as running:
                for scenario in shared:
                    for peer in order:
                        if scenario.only and peer.name not in scenario.only:
                            continue
                        server = running[peer.name]
                        if not server.alive():
                            result: dict[str, Any] = {"error": f"server exited:\n{server.tail()}"}
                        else:
                            result = sample(opts, scenario, server)
                        samples[scenario.name][peer.name].append(result)
                        print(f"  {scenario.name:<12} {peer.name:<15} {describe(result, scenario)}", file=sys.stderr)
        for scenario in opts.scenarios:
            if scenario.wskit_only and WSKIT in samples[scenario.name]:
                result = sample(opts, scenario, None)
                samples[scenario.name][WSKIT].append(result)
                print(f"  {scenario.name:<12} {WSKIT:<15} {describe(result, scenario)}", file=sys.stderr)
    return samples


# -- figures --------------------------------------------------------------------------------------


def median(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if "error" not in s and isinstance(s.get(key), int | float)]
    return statistics.median(values) if values else None


def summarise(samples: Samples) -> dict[str, dict[str, dict[str, float | None]]]:
    keys = ("rate", "p50_ms", "p99_ms", "server_cpu", "loadgen_cpu", "steal", "encodes_per_publish")
    return {
        scenario: {peer: {k: median(runs, k) for k in keys} for peer, runs in by_peer.items()}
        for scenario, by_peer in samples.items()
    }


def ratio(summary: dict[str, dict[str, dict[str, float | None]]], scenario: str, a: str, b: str) -> float | None:
    by_peer = summary.get(scenario, {})
    x = by_peer.get(a, {}).get("rate")
    y = by_peer.get(b, {}).get("rate")
    if x is None or y is None or y == 0:
        return None
    return x / y


@dataclass
class Target:
    text: str
    value: float | None
    shown: str
    ok: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "FAIL")


def targets(summary: dict[str, dict[str, dict[str, float | None]]]) -> list[Target]:
    out: list[Target] = []

    def at_least(text: str, value: float | None, goal: float, unit: str = "x") -> None:
        shown = "not measured" if value is None else f"{value:.2f}{unit}"
        out.append(Target(text, value, shown, None if value is None else value >= goal))

    at_least("default path >= 1.5x WS-Kit on Bun, echo C=50", ratio(summary, "echo_c50", WSKIT, BUN_PEER), 1.5)
    at_least("default path >= 2x WS-Kit on Bun, pipelined", ratio(summary, "pipelined", WSKIT, BUN_PEER), 2.0)
    at_least("default path >= 1x WS-Kit on Bun, fanout_1000 burst", ratio(summary, "fanout_1000", WSKIT, BUN_PEER), 1.0)
    at_least("msgspec path >= 2x WS-Kit on Bun, echo C=50", ratio(summary, "echo_c50", WSKIT_MSGSPEC, BUN_PEER), 2.0)
    # framework cost over its own raw transport (serve() runs on aiohttp): <= 20% / 35% slower
    at_least("msgspec path >= 0.8x raw aiohttp, echo C=50", ratio(summary, "echo_c50", WSKIT_MSGSPEC, RAW), 0.8)
    at_least("default path >= 0.65x raw aiohttp, echo C=50", ratio(summary, "echo_c50", WSKIT, RAW), 0.65)
    at_least("default path >= 10x python-socketio, echo C=50", ratio(summary, "echo_c50", WSKIT, "socketio"), 10.0)
    at_least(
        "default path ahead of Starlette's WebSocket route, echo C=50",
        ratio(summary, "echo_c50", WSKIT, "starlette"),
        1.0,
    )
    at_least(
        "metrics on within 3% of METRICS=0 (default path), echo C=50",
        ratio(summary, "echo_c50", WSKIT, WSKIT_NO_METRICS),
        0.97,
    )
    at_least(
        "wskit's asgi_app on uvicorn >= 1.2x Starlette's route, echo C=50",
        ratio(summary, "echo_c50", "wskit_asgi", "starlette"),
        1.2,
    )
    fan = summary.get("fanout_5000", {}).get(WSKIT, {})
    encodes = fan.get("encodes_per_publish")
    out.append(
        Target(
            "fan-out to 5,000: one serialisation per publish",
            encodes,
            "not measured" if encodes is None else f"{encodes:.2f} per publish",
            None if encodes is None else 0 < encodes <= 1.0,
        )
    )
    p99 = fan.get("p99_ms")
    out.append(
        Target(
            "fan-out to 5,000: publish-to-receive p99 < 50 ms",
            p99,
            "not measured" if p99 is None else f"{p99:.1f} ms",
            None if p99 is None else p99 < 50.0,
        )
    )
    rss = summary.get("idle_5000", {}).get(WSKIT, {}).get("rate")
    out.append(
        Target(
            "<= 8 KiB server RSS per idle connection (default app: a topic joined on open)",
            rss,
            "not measured" if rss is None else f"{rss / 1024:.1f} KiB",
            None if rss is None else rss <= 8 * 1024,
        )
    )
    rss50 = summary.get("idle_50000", {}).get(WSKIT, {}).get("rate")
    out.append(
        Target(
            "50,000 idle connections on one process (RSS per connection reported)",
            rss50,
            "not measured" if rss50 is None else f"{rss50 / 1024:.1f} KiB",
            None if rss50 is None else True,
        )
    )
    p99_50 = summary.get("fanout_50000", {}).get(WSKIT, {}).get("p99_ms")
    out.append(
        Target(
            "fan-out to 50,000 subscribers on one process (publish-to-receive p99 reported)",
            p99_50,
            "not measured" if p99_50 is None else f"{p99_50:.1f} ms",
            None if p99_50 is None else True,
        )
    )
    for scenario in ("echo_c50", "pipelined"):
        value = ratio(summary, scenario, WSKIT_MSGSPEC, WSKIT)
        at_least(f"msgspec path faster than pydantic (same user code), {scenario}", value, 1.0)
    return out


# -- report ---------------------------------------------------------------------------------------


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def npm_version(package: str) -> str:
    manifest = SCRATCH / "node_modules" / package / "package.json"
    with contextlib.suppress(OSError, ValueError):
        return str(orjson.loads(manifest.read_bytes())["version"])
    return "not installed"


def machine_facts() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    load = "unknown"
    with contextlib.suppress(OSError), open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    nproc = subprocess.run(["nproc", "--all"], capture_output=True, text=True, check=False).stdout.strip()
    bun = "not installed"
    if BUN.exists():
        bun = subprocess.run([str(BUN), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import wskit

    return [
        f"- Machine: {model}, nproc {nproc}, {mem} memory, Linux {platform.release()}; load average before: {load}",
        f"- wskit {wskit.__version__} (git {commit or 'unknown'}{' + uncommitted changes in src/' if dirty else ''})",
        f"- Python {platform.python_version()}: aiohttp {version('aiohttp')}, uvloop {version('uvloop')}, "
        f"orjson {version('orjson')}, msgspec {version('msgspec')}, pydantic {version('pydantic')}, "
        f"picows {version('picows')}, websockets {version('websockets')}, python-socketio "
        f"{version('python-socketio')}, uvicorn {version('uvicorn')}, starlette {version('starlette')}",
        f"- Bun {bun}: @ws-kit/zod {npm_version('@ws-kit/zod')}, @ws-kit/bun {npm_version('@ws-kit/bun')}, "
        f"@ws-kit/memory {npm_version('@ws-kit/memory')}, @ws-kit/core {npm_version('@ws-kit/core')}, "
        f"zod {npm_version('zod')}",
    ]


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(
    opts: Options,
    samples: Samples,
    summary: dict[str, dict[str, dict[str, float | None]]],
    checks: list[Target],
    skipped: dict[str, str],
    command: str,
    started: float,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    peers = [p.name for p in opts.peers]
    out = [
        "# wskit benchmark suite",
        "",
        f"- Date: {now}; took {time.monotonic() - started:.0f} s",
        f"- Command: `{command}`",
        *machine_facts(),
        f"- Pinning: servers on CPU {opts.server_cpu}, load generator ("
        + (
            "`bench/loadgen_bun.ts`, Bun's native client, for echo and pipelined; `bench/loadgen.py` for the rest"
            if opts.native_loadgen
            else "`bench/loadgen.py`, picows on uvloop"
        )
        + f") on CPU "
        f"{opts.loadgen_cpu}; every figure is the median of {opts.repeats} sample(s), the servers interleaved inside "
        f"each repeat; a sample with hypervisor steal above {opts.max_steal:.0%} is run again (at most "
        f"{opts.retries} times).",
        "- Absolute figures on this shared machine drift by up to 1.6x between runs: "
        "compare the ratios inside one run.",
    ]
    if opts.smoke:
        out.append("- **Smoke run**: ~1 s per scenario with few connections; the figures mean nothing.")
    if skipped:
        out.append("- Not measured: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    out += ["", "## Headline: ratios", ""]
    head = ["peer", *(s.name for s in opts.scenarios if not s.wskit_only and s.higher_is_better)]
    rows = []
    for base, base_label in ((BUN_PEER, "vs WS-Kit on Bun"), (RAW, "vs raw aiohttp")):
        for peer in peers:
            if peer == base:
                continue
            cells = [fmt(ratio(summary, s, peer, base), ".2f") + "x" for s in head[1:]]
            rows.append([f"{PEERS[peer].label} {base_label}", *cells])
    for peer in peers:
        current, _, rev = peer.partition("@")
        if rev and current in peers:
            cells = [fmt(ratio(summary, s, current, peer), ".2f") + "x" for s in head[1:]]
            rows.append([f"{PEERS[current].label} vs itself at {rev}", *cells])
    out.append(table(head, rows))
    out += ["", "## Load generator headroom", ""]
    out.append(
        "The busiest the load generator's core got in each scenario (median sample), and for which server: "
        "below ~90%, the client was not what set the pace."
    )
    out.append("")
    headroom = []
    for scenario in opts.scenarios:
        if scenario.wskit_only or not scenario.higher_is_better:
            continue
        shares = {
            peer: summary[scenario.name][peer].get("loadgen_cpu")
            for peer in peers
            if summary[scenario.name].get(peer, {}).get("loadgen_cpu") is not None
        }
        if shares:
            busiest = max(shares, key=lambda p: shares[p] or 0.0)
            share = shares[busiest] or 0.0
            headroom.append([scenario.name, f"{share:.0%}", PEERS[busiest].label])
    out.append(table(["scenario", "load generator CPU, at most", "while serving"], headroom))
    out += ["", "## Targets", ""]
    out.append(table(["target", "measured", "verdict"], [[t.text, t.shown, f"**{t.verdict}**"] for t in checks]))
    for scenario in opts.scenarios:
        out += ["", f"## {scenario.title} ({scenario.name})", ""]
        head = ["peer", scenario.unit]
        if scenario.latency:
            head += ["p50 ms", "p99 ms"]
        head += ["vs Bun WS-Kit", "vs aiohttp", "server CPU", "loadgen CPU", "steal", "samples"]
        rows = []
        for peer in peers:
            runs = samples[scenario.name].get(peer, [])
            if not runs:
                continue
            s = summary[scenario.name][peer]
            errors = [r["error"] for r in runs if "error" in r]
            row = [PEERS[peer].label, fmt(s["rate"], ",.0f")]
            if scenario.latency:
                row += [fmt(s["p50_ms"], ".2f"), fmt(s["p99_ms"], ".2f")]
            row += [
                fmt(ratio(summary, scenario.name, peer, BUN_PEER), ".2f") + "x",
                fmt(ratio(summary, scenario.name, peer, RAW), ".2f") + "x",
                fmt(None if s["server_cpu"] is None else s["server_cpu"] * 100, ".0f") + "%",
                fmt(None if s["loadgen_cpu"] is None else s["loadgen_cpu"] * 100, ".0f") + "%",
                fmt(None if s["steal"] is None else s["steal"] * 100, ".1f") + "%",
                f"{len(runs) - len(errors)}/{len(runs)}" + (f" ({errors[0][:80]})" if errors else ""),
            ]
            rows.append(row)
        out.append(table(head, rows))
    out += [
        "",
        "## Reading the numbers",
        "",
        "- echo: each connection has one `ECHO` RPC in flight; latency is the round trip. pipelined: 20 `PING`s in "
        "flight per connection, the `PONG`s of one read answered in one write. Messages counted are replies.",
        "- fan-out: deliveries/s over bursts written at once (first send to last delivery); p50/p99 are "
        "publish-to-receive over single publishes with nothing queued ahead (paced, one at a time).",
        "- idle: (server RSS with N idle connections - RSS before) / N, in bytes.",
        "- redis: two wskit instances (`bench/scaleout_app.py`, msgspec) on one redis-server; p50/p99 of "
        "publish on A to receive on B at a steady 1,000 msg/s (`bench/redis_scaleout.py`). Its CPU columns are "
        "both instances together.",
        "- CPU columns: share of one core over the measured window. A load generator near 100% means the client, "
        "not the server, set the pace. Steal: share of all CPU time the hypervisor took during the window.",
    ]
    return "\n".join(out) + "\n"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def chart(opts: Options, summary: dict[str, dict[str, dict[str, float | None]]], path: Path, smoke: bool) -> bool:
    """Throughput per scenario and idle RSS per connection, one panel each (False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = [s for s in opts.scenarios if s.name in summary]
    cols = 3
    rows = (len(scenarios) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(16, 4.2 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        names = [p.name for p in opts.peers if summary[scenario.name].get(p.name, {}).get("rate") is not None]
        values = [summary[scenario.name][n]["rate"] or 0.0 for n in names]
        if scenario.name == "idle_5000":
            values = [v / 1024 for v in values]
        colors = ["#1f77b4" if "bun" in n else "#d62728" if n.startswith("wskit_") else "#7f7f7f" for n in names]
        ax.barh([PEERS[n].label for n in names], values, color=colors)
        ax.invert_yaxis()
        unit = "KiB RSS per connection (lower is better)" if scenario.name == "idle_5000" else scenario.unit
        if scenario.name == "redis":
            p99 = summary["redis"].get(WSKIT, {}).get("p99_ms")
            unit = f"msg/s achieved (p99 {fmt(p99, '.1f')} ms)"
        ax.set_title(scenario.title, fontsize=10)
        ax.set_xlabel(unit, fontsize=9)
        ax.tick_params(labelsize=8)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.1f}" if scenario.name == "idle_5000" else f" {v:,.0f}", va="center", fontsize=7)
    for ax in list(axes.flat)[len(scenarios) :]:
        ax.axis("off")
    title = f"wskit vs peers, same load generator (median of {opts.repeats})"
    fig.suptitle(title + (" — SMOKE RUN, figures meaningless" if smoke else ""), fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# -- main -----------------------------------------------------------------------------------------


def pick(names: str | None, known: dict[str, Any], what: str) -> list[str]:
    if not names:
        return list(known)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def baseline_peers(rev: str, peers: list[Peer]) -> list[Peer]:
    """``peers`` again, each run from a checkout of ``rev`` (its own server script and wskit),
    registered as ``<name>@<rev>`` so the report shows before and after side by side."""
    tree = Path(tempfile.mkdtemp(prefix="wskit-baseline-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    out = []
    for peer in peers:
        name = f"{peer.name}@{rev[:10]}"
        PEERS[name] = Peer(
            name, f"{peer.label} at {rev[:10]}", peer.script, needs=peer.needs, tree=tree, extra_env=peer.extra_env
        )
        out.append(PEERS[name])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit benchmark suite (see the module docstring).")
    parser.add_argument("--smoke", action="store_true", help="~1 s per scenario, few connections")
    parser.add_argument("--peers", help=f"comma list (default: all available): {','.join(PEERS)}")
    parser.add_argument("--scenarios", help=f"comma list (default: all): {','.join(ORDER)}")
    parser.add_argument("--repeats", type=int, help="samples per figure (default 3; 1 with --smoke)")
    parser.add_argument("--max-steal", type=float, default=0.05, help="steal share that spoils a sample (0.05)")
    parser.add_argument("--retries", type=int, help="re-runs of a spoiled sample (default 2; 0 with --smoke)")
    parser.add_argument("--output-dir", type=Path, default=HERE / "results")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU affinity alone")
    parser.add_argument(
        "--loadgen",
        choices=("python", "bun"),
        default="python",
        help="load generator of echo and pipelined: bench/loadgen.py (picows), or bench/loadgen_bun.ts (Bun's "
        "native client, which outruns every server here; needs bench/setup_peers.sh)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the wskit peers of git revision REV (e.g. the commit before a redesign), in the same run",
    )
    args = parser.parse_args()
    started = time.monotonic()
    command = " ".join(["python bench/run.py", *sys.argv[1:]])
    raise_fd_limit()
    skipped: dict[str, str] = {}
    peers: list[Peer] = []
    for name in pick(args.peers, PEERS, "peers"):
        why = PEERS[name].available()
        if why is None:
            peers.append(PEERS[name])
        else:
            skipped[name] = why
            print(f"skipping {name}: {why}", file=sys.stderr)
    if args.baseline:
        peers += baseline_peers(
            args.baseline, [p for p in peers if p.name.startswith("wskit_") and p.runtime == "python"]
        )
    chosen = pick(args.scenarios, SCENARIOS, "scenarios")
    scenarios = [SCENARIOS[n] for n in ORDER if n in chosen]
    fds = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for big in ("idle_50000", "fanout_50000"):
        too_few = not args.smoke and fds != resource.RLIM_INFINITY and fds < 50_500
        if too_few and any(s.name == big for s in scenarios):
            skipped[big] = (
                f"this machine caps a process at {fds} open files (hard RLIMIT_NOFILE, which an unprivileged "
                "process cannot raise): 50,000 sockets do not fit in one process"
            )
            scenarios = [s for s in scenarios if s.name != big]
    if any(s.name == "redis" for s in scenarios) and shutil.which("redis-server") is None:
        skipped["redis"] = "redis-server is not on PATH (make system-deps)"
        scenarios = [s for s in scenarios if s.name != "redis"]
    if not any(p.name == WSKIT for p in peers):
        scenarios = [s for s in scenarios if not s.wskit_only]
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    opts = Options(
        peers=peers,
        scenarios=scenarios,
        repeats=args.repeats or (1 if args.smoke else 3),
        smoke=args.smoke,
        max_steal=args.max_steal,
        retries=args.retries if args.retries is not None else (0 if args.smoke else 2),
        server_cpu=cpus[0] if pin else None,
        loadgen_cpu=cpus[1] if pin else None,
        native_loadgen=args.loadgen == "bun",
    )
    if opts.native_loadgen and not BUN.exists():
        parser.error("--loadgen bun needs Bun: run bash bench/setup_peers.sh")
    if pin:
        os.sched_setaffinity(0, {cpus[1]})
    logdir = Path(tempfile.mkdtemp(prefix="wskit-suite-"))
    try:
        samples = run(opts, logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    summary = summarise(samples)
    checks = targets(summary)
    text = report(opts, samples, summary, checks, skipped, command, started)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.md").write_text(text)
    (args.output_dir / "results.json").write_bytes(
        orjson.dumps(
            {"command": command, "smoke": opts.smoke, "summary": summary, "samples": samples, "skipped": skipped},
            option=orjson.OPT_INDENT_2,
        )
    )
    drew = chart(opts, summary, args.output_dir / "chart.png", opts.smoke)
    print(text)
    for check in checks:
        print(f"{check.verdict:<5} {check.text}: {check.shown}")
    print(f"written to {args.output_dir}/results.md{', chart.png' if drew else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
