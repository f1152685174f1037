"""What a ``/metrics`` scrape costs a server holding 10,000 idle connections, on each host.

    python bench/scrape.py                       # picows and aiohttp, 10,000 connections, 20 scrapes
    python bench/scrape.py --quick               # 1,000 connections, 5 scrapes (a smoke run; writes nothing)
    python bench/scrape.py --hosts aiohttp --conns 5000 --scrapes 50 --output /tmp/scrape.md

For each host, the default bench app (``bench/servers/wskit_default.py``: serve()'s defaults,
a topic joined on open) runs as its own process (pinned to CPU 0 when there are two). This
process (CPU 1) scrapes ``/metrics`` ``--scrapes`` times with no WebSocket open, then opens
``--conns`` idle connections (127.0.0.1, 200 handshakes at a time, each bounded) and scrapes
as many times again. Each scrape is one HTTP/1.1 request on a new TCP connection, timed from
connect to the last byte of the body.

The event loop's stall is measured from outside, by a probe: one more connection that sends
``ECHO`` RPCs back to back and times each round trip. It runs for a quiet window first (no
scrape), then while the scrapes run; the longest round trip of each window is reported. A
scrape that blocked the loop shows as a longest round trip during the scrapes well above the
quiet one. Results: ``bench/results/scrape.md`` (``--output``), with the date, the machine,
the versions and the command. Every loop is bounded in count and time (``--deadline``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import raise_fd_limit  # bench/servers: shared with the servers
from fastws import WsClient, connect

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
#: the bench app on each host serve() has
SERVERS = {"picows": "wskit_default.py", "aiohttp": "wskit_default_aiohttp.py"}
#: handshakes in flight while the idle connections are opened
OPENING = 200


@dataclass
class HostResult:
    host: str
    conns: int
    #: seconds per scrape: with no WebSocket open, and with ``conns`` open
    empty: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    body_bytes: int = 0
    series: int = 0
    gauge: float = 0.0
    #: probe round trips (seconds): a quiet window, then while scraping
    quiet: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    open_s: float = 0.0
    error: str | None = None


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(host: str, port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(
        [sys.executable, str(HERE / "servers" / SERVERS[host]), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin,
        cwd=HERE.parent,
        env={**os.environ, "METRICS": "1"},
    )


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded: 30 s
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- the client side -----------------------------------------------------------------------------


async def scrape(port: int) -> tuple[float, bytes]:
    """One ``GET /metrics`` on a new connection: seconds from connect to the body's end, body."""
    started = time.perf_counter()
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"/metrics answered {head.splitlines()[0]!r}")
            sizes = [line.split(b":", 1)[1] for line in head.splitlines() if line.lower().startswith(b"content-length")]
            length = int(sizes[0])
            body = await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    return time.perf_counter() - started, body


def gauge(body: bytes, name: bytes) -> float:
    for line in body.splitlines():
        if line.startswith(name + b" "):
            return float(line.split(b" ")[1])
    return float("nan")


async def open_idle(port: int, count: int) -> list[WsClient]:
    """``count`` open connections, :data:`OPENING` handshakes at a time (each within 10 s)."""
    gate = asyncio.Semaphore(OPENING)

    async def one() -> WsClient:
        async with gate:
            return await connect(HOST, port, lambda _data: None, timeout=10.0)

    return list(await asyncio.gather(*(one() for _ in range(count))))


_ECHO = b'{"type":"ECHO","meta":{"correlationId":"%s"},"payload":{"text":"probe"}}'


class Probe:
    """One connection sending ECHO RPCs back to back, timing each round trip."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] | None = None
        self.client: WsClient | None = None
        self.n = 0

    def on_message(self, data: bytes) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(data)

    async def open(self, port: int) -> None:
        self.client = await connect(HOST, port, self.on_message, timeout=10.0)

    async def run(self, stop: asyncio.Event, out: list[float], limit: int = 1_000_000) -> None:
        """Round trips into ``out`` until ``stop`` is set (at most ``limit``, each within 5 s)."""
        assert self.client is not None
        loop = asyncio.get_running_loop()
        for _ in range(limit):
            if stop.is_set():
                return
            self.n += 1
            cid = f"p{self.n}"
            self.reply = loop.create_future()
            started = time.perf_counter()
            self.client.send_text(_ECHO % cid.encode())
            async with asyncio.timeout(5):
                await self.reply
            out.append(time.perf_counter() - started)


async def measure(host: str, conns: int, scrapes: int, cpu: int | None) -> HostResult:
    result = HostResult(host, conns)
    port = free_port()
    proc = start_server(host, port, cpu)
    idle: list[WsClient] = []
    probe = Probe()
    try:
        await asyncio.to_thread(wait_listening, port, proc)
        for _ in range(scrapes):
            result.empty.append((await scrape(port))[0])
        started = time.perf_counter()
        idle = await open_idle(port, conns)
        result.open_s = time.perf_counter() - started
        await probe.open(port)
        await asyncio.sleep(1.0)  # the admissions settle
        _, body = await scrape(port)
        result.gauge = gauge(body, b"wskit_connections")
        # the quiet window: as long as the scrapes will take, with no scrape
        stop = asyncio.Event()
        quiet = asyncio.ensure_future(probe.run(stop, result.quiet))
        await asyncio.sleep(max(1.0, scrapes * 0.06))
        stop.set()
        await quiet
        stop = asyncio.Event()
        during = asyncio.ensure_future(probe.run(stop, result.during))
        try:
            for _ in range(scrapes):
                took, body = await scrape(port)
                result.loaded.append(took)
                await asyncio.sleep(0.05)  # a gap, so the probe sees each scrape start and end
        finally:
            stop.set()
            await during
        result.body_bytes = len(body)
        result.series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    except Exception as exc:  # noqa: BLE001 - reported in the table; the other host still runs
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for client in [*idle, *([probe.client] if probe.client else [])]:
            client.abort()
        await asyncio.sleep(0)
        await asyncio.to_thread(stop_server, proc)
    return result


# -- the report ----------------------------------------------------------------------------------


def ms(values: list[float], how: str) -> str:
    if not values:
        return "-"
    value = statistics.median(values) if how == "median" else max(values)
    return f"{value * 1000:.2f}"


def report(results: list[HostResult], args: argparse.Namespace, command: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = []
    for package in ("wskit", "picows", "aiohttp", "prometheus-client", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
    lines = [
        "# /metrics scrape cost with idle connections open",
        "",
        f"- Date: {now}; command: `{command}`",
        f"- Machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}; "
        + ", ".join(versions),
        f"- Load average before: {os.getloadavg()[0]:.2f}"
        + (" — **quick run: figures are noisy**" if args.quick else ""),
        "",
        "| host | idle conns | gauge read | scrape ms, none open (median / max) | scrape ms, all open (median / max) "
        "| body | series | probe RTT ms quiet (median / max) | probe RTT ms during scrapes (median / max) | error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.host} | {r.conns:,} | {r.gauge:,.0f} | {ms(r.empty, 'median')} / {ms(r.empty, 'max')} "
            f"| {ms(r.loaded, 'median')} / {ms(r.loaded, 'max')} | {r.body_bytes:,} B | {r.series} "
            f"| {ms(r.quiet, 'median')} / {ms(r.quiet, 'max')} | {ms(r.during, 'median')} / {ms(r.during, 'max')} "
            f"| {r.error or ''} |"
        )
    lines += [
        "",
        "A scrape is one request on a new TCP connection, timed from connect to the body's last byte. The probe "
        "is one more connection sending ECHO RPCs back to back: its longest round trip during the scrapes, beside "
        "the longest in a quiet window of the same length, bounds how long a scrape kept the event loop from "
        "everything else. `gauge read`: `wskit_connections` in a scrape after the opening (the idle connections "
        "plus the probe).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="picows,aiohttp", help="comma list: picows, aiohttp")
    parser.add_argument("--conns", type=int, help="idle connections (default 10,000; 1,000 with --quick)")
    parser.add_argument("--scrapes", type=int, help="scrapes per phase (default 20; 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: writes nothing unless --output")
    parser.add_argument("--output", type=Path, help="the report (default bench/results/scrape.md)")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU affinity alone")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds the whole run may take")
    args = parser.parse_args()
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    unknown = [h for h in hosts if h not in SERVERS]
    if unknown:
        parser.error(f"unknown host(s): {', '.join(unknown)}")
    conns = args.conns if args.conns is not None else (1000 if args.quick else 10_000)
    scrapes = args.scrapes if args.scrapes is not None else (5 if args.quick else 20)
    raise_fd_limit()
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < conns + 100:
        parser.error(f"{conns} connections need more open files than this process may have ({soft})")
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(0, {cpus[1]})
    command = " ".join(["python bench/scrape.py", *sys.argv[1:]])

    async def run_all() -> list[HostResult]:
        out = []
        async with asyncio.timeout(args.deadline):
            for host in hosts:
                print(f"{host}: {conns:,} idle connections, {scrapes} scrapes", file=sys.stderr)
                out.append(await measure(host, conns, scrapes, cpus[0] if pin else None))
        return out

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    results = asyncio.run(run_all())
    text = report(results, args, command)
    print(text)
    output = args.output or (None if args.quick else HERE / "results" / "scrape.md")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
