"""What the aiohttp host's RFC 6455 checks cost per message: ``python bench/mask_check.py``.

Two checks aiohttp does not make, added in the host: the client-mask check (a header scan in
front of aiohttp's frame parser, :class:`wskit.transports.aiohttp_internals.MaskCheck`) and
UTF-8 validity of text frames (``bytes.isascii()``, then a decode only for frames that are not
ASCII). Each is timed against aiohttp's own (Cython) parser fed the same bytes, one frame per
read (the usual case) and 20 frames per read (a pipelining client). Prints a table; writes
nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import timeit
from typing import Any

from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

from wskit.transports.aiohttp_internals import MaskCheck


class _Protocol:
    _reading_paused = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    head = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _parser(loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
    queue = WebSocketDataQueue(_Protocol(), 2**30, loop=loop)  # type: ignore[arg-type]
    return WebSocketReader(queue, 2**30, compress=False, decode_text=False), queue


def main() -> None:
    loop = asyncio.new_event_loop()
    message = json.dumps({"type": "SAY", "meta": {}, "payload": {"room": "lobby", "text": "hello there"}}).encode()
    chunks = {"1 frame / read": (_frame(message), 1), "20 frames / read": (_frame(message) * 20, 20)}
    number = 100_000
    print(f"message: {len(message)} bytes of JSON; times per frame, best of 5 runs of {number:,} frames")
    for label, (chunk, frames) in chunks.items():
        reads = number // frames

        def best(checked: bool, data: bytes = chunk, reads: int = reads, frames: int = frames) -> float:
            times = []
            for _ in range(5):  # a fresh parser each time: its queue counts every byte it took
                parser, queue = _parser(loop)
                feed = (MaskCheck(parser, queue) if checked else parser).feed_data
                clear = queue._buffer.clear

                def run(feed: Any = feed, clear: Any = clear) -> None:
                    feed(data)
                    clear()

                times.append(timeit.timeit(run, number=reads))
            return min(times) / reads / frames

        base, with_check = best(False), best(True)
        print(
            f"  {label:17s} aiohttp parser {base * 1e9:6.0f} ns, with mask check {with_check * 1e9:6.0f} ns "
            f"(+{(with_check - base) * 1e9:.0f} ns per frame)"
        )
    text = json.dumps({"type": "SAY", "meta": {}, "payload": {"text": "héllo ✓"}}, ensure_ascii=False).encode()
    ascii_check = min(timeit.repeat(lambda: message.isascii(), number=number, repeat=5)) / number
    decode = min(timeit.repeat(lambda: text.decode("utf-8"), number=number, repeat=5)) / number
    print(
        f"UTF-8 check of a text frame: isascii() {ascii_check * 1e9:.0f} ns; "
        f"decode of a non-ASCII one {decode * 1e9:.0f} ns"
    )
    loop.close()


if __name__ == "__main__":
    main()
