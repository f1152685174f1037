"""Memory a server keeps per closed connection: waves of connections held, then closed.

One command from the repository root::

    python bench/churn_memory.py                   # 10 waves x 1,000 connections held 1.5 s
    python bench/churn_memory.py --waves 5 --size 300 --hold 0.5

It starts ``serve()`` with its defaults (uvloop when installed, ``GC_FREEZE_INTERVAL_S=1``) in a
process of its own, opens ``--size`` connections (each sends one message and reads the
answer), holds them ``--hold`` seconds (past a GC freeze, so they are frozen while open),
closes them all cleanly, waits for the server to settle, and reads the server's ``VmRSS``
from ``/proc``. The first wave is warm-up (allocator arenas, caches); the figure reported is
the growth after it, divided by the connections closed after it. Prints one line per wave
and a summary; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastws import WsClient, connect

SERVER = """
import sys
from pydantic import BaseModel
from wskit import Context, Router, rpc, serve

class Text(BaseModel):
    text: str

Echo = rpc("ECHO", Text, "ECHO_OK", Text)
router = Router()

@router.rpc(Echo)
async def echo(ctx: Context[Text]) -> None:
    await ctx.reply(ctx.payload)

serve(router, port=int(sys.argv[1]), log_level="WARNING", max_connections=0)
"""

ECHO = b'{"type":"ECHO","meta":{"correlationId":"c"},"payload":{"text":"hi"}}'


def rss_kib(pid: int) -> int:
    """The process's resident set, in KiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env={**os.environ, **env})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


async def wave(port: int, size: int, hold_s: float) -> None:
    """Open ``size`` connections, one ECHO each, hold them, close them all."""
    answered = asyncio.get_running_loop().create_future()
    count = 0

    def on_message(_data: bytes) -> None:
        nonlocal count
        count += 1
        if count == size and not answered.done():
            answered.set_result(None)

    clients: list[WsClient] = []
    for start in range(0, size, 100):
        batch = [connect("127.0.0.1", port, on_message) for _ in range(min(100, size - start))]
        clients += await asyncio.gather(*batch)
    for client in clients:
        client.send_text(ECHO)
    await asyncio.wait_for(answered, 30)
    await asyncio.sleep(hold_s)
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def settle(pid: int, timeout_s: float = 10.0) -> int:
    """RSS once it stops moving (the server has finished closing), in KiB."""
    last = rss_kib(pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    env = {"GC_FREEZE_INTERVAL_S": str(args.freeze)} if args.freeze is not None else {}
    proc = start_server(port, env)
    try:
        base = await settle(proc.pid)
        print(f"server pid {proc.pid}: RSS at start {base / 1024:.1f} MiB")
        rows: list[int] = []
        for n in range(args.waves):
            started = time.monotonic()
            await wave(port, args.size, args.hold)
            rows.append(await settle(proc.pid))
            print(
                f"wave {n + 1:2d}: {args.size} connections held {args.hold:.1f} s, closed: "
                f"RSS {rows[-1] / 1024:.1f} MiB ({time.monotonic() - started:.1f} s)"
            )
        if len(rows) > 1:
            per = (rows[-1] - rows[0]) * 1024 / (args.size * (len(rows) - 1))
            print(
                f"RSS per closed connection after the warm-up wave: {per:.0f} bytes "
                f"({(rows[-1] - rows[0]) / 1024:.1f} MiB over {args.size * (len(rows) - 1)} connections; "
                f"{args.size * len(rows)} connections in all)"
            )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000, help="connections per wave")
    parser.add_argument("--hold", type=float, default=1.5, help="seconds each wave is held open")
    parser.add_argument("--freeze", type=float, default=None, help="GC_FREEZE_INTERVAL_S (default: serve()'s)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
