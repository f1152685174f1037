"""What each layer of wskit costs per message, with no socket: the figures behind the suite's
ratios, so a change to one layer shows where it went.

For the bench's messages (``bench/servers/_wskit_app.py``), pydantic and msgspec, written as
users write them (``default``: dict replies, a topic joined on open) and as the bench's tuned
path writes them (payload instances passed back):

- ``decode``: one inbound frame to ``(type, meta, payload)`` (envelope and payload checks);
- ``encode``: one outbound frame from the reply a handler gives (dict or instance);
- ``event``/``rpc``: one ``PING`` event / ``ECHO`` RPC through ``Dispatcher.receive`` to the
  frame handed to the socket (decode, context, middleware, the handler, encode, the send
  queue), on a socket that takes every frame at once.

    python bench/layers.py                 # a few seconds; microseconds per message
    python bench/layers.py --json out.json # also written as JSON (for before/after)

Timings are the best of ``--rounds`` rounds of ``--n`` messages (noise on a shared machine
only adds): compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))

from _wskit_app import build
from wskit_msgspec import Text as MsgspecText
from wskit_msgspec import Tick as MsgspecTick
from wskit_msgspec import Topic as MsgspecTopic
from wskit_pydantic import Text as PydanticText
from wskit_pydantic import Tick as PydanticTick
from wskit_pydantic import Topic as PydanticTopic

from wskit import message
from wskit.connection import Connection
from wskit.runtime import build_runtime

PING = b'{"type":"PING","meta":{},"payload":{"text":"hello"}}'
ECHO = b'{"type":"ECHO","meta":{"correlationId":"c1"},"payload":{"text":"hello"}}'
BACKENDS = {
    "pydantic": (PydanticText, PydanticTopic, PydanticTick),
    "msgspec": (MsgspecText, MsgspecTopic, MsgspecTick),
}


class NullSocket:
    """Takes every frame at once and counts it."""

    def __init__(self) -> None:
        self.frames = 0

    def send_frame(self, data: bytes) -> None:
        self.frames += 1

    async def close(self, code: int, reason: str) -> None:
        return None


def best_of(rounds: int, n: int, one_round: Callable[[int], float]) -> float:
    return min(one_round(n) for _ in range(rounds)) / n * 1e6


async def best_of_async(rounds: int, n: int, one_round: Callable[[int], Awaitable[float]]) -> float:
    results = [await one_round(n) for _ in range(rounds)]
    return min(results) / n * 1e6


async def measure(backend: str, style: str, n: int, rounds: int) -> dict[str, float]:
    text_cls, topic_cls, tick_cls = BACKENDS[backend]
    router, _ = build(text_cls, topic_cls, tick_cls, style=style)
    runtime = build_runtime(router, env={})
    await runtime.start()
    try:
        decoder = runtime.dispatcher.decoder
        codec = runtime.codec
        pong = message("PONG", text_cls)
        reply: Any = {"text": "hello"} if style == "default" else text_cls(text="hello")

        def decode_round(count: int) -> float:
            decode = decoder.decode
            start = time.perf_counter()
            for _ in range(count):
                decode(PING)
            return time.perf_counter() - start

        def encode_round(count: int) -> float:
            encode = codec.encode
            start = time.perf_counter()
            for _ in range(count):
                encode(pong, reply, meta=None)
            return time.perf_counter() - start

        sock = NullSocket()
        conn = Connection("bench", sock, limits=runtime.queue_limits)
        conn.spawn_reader = lambda: None  # as a host's session sets it: RPCs are stepped inline
        runtime.connections[conn] = None
        await runtime.dispatcher.open(conn)

        async def dispatch_round(frame: bytes, count: int) -> float:
            receive = runtime.dispatcher.receive
            before = sock.frames
            start = time.perf_counter()
            for _ in range(count):
                pending = receive(conn, frame)
                if pending is not None:
                    await pending
            await asyncio.sleep(0)  # a frame queued behind the last one goes out on the next tick
            elapsed = time.perf_counter() - start
            assert sock.frames - before == count, f"{count} frames in, {sock.frames - before} answers out"
            return elapsed

        return {
            "decode": best_of(rounds, n, decode_round),
            "encode": best_of(rounds, n, encode_round),
            "event": await best_of_async(rounds, n, lambda c: dispatch_round(PING, c)),
            "rpc": await best_of_async(rounds, n, lambda c: dispatch_round(ECHO, c)),
        }
    finally:
        await runtime.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for style in ("default", "tuned"):
        for backend in BACKENDS:
            results[f"{backend}/{style}"] = await measure(backend, style, args.n, args.rounds)
    layers = ["decode", "encode", "event", "rpc"]
    print("| path | " + " | ".join(f"{layer} us" for layer in layers) + " |")
    print("|---|" + "---|" * len(layers))
    for name, figures in results.items():
        print(f"| {name} | " + " | ".join(f"{figures[layer]:.2f}" for layer in layers) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
