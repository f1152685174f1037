"""``wskit send``, ``wskit request`` and ``wskit listen``: talk to a live server from a shell.

- ``send URL TYPE [JSON]``: one message; then a ``__heartbeat``, whose answer proves the
  server has handled the message (a connection's events are handled in order), so an
  ``ERROR`` it answered (unknown type, invalid payload) is reported and the exit code is 1.
- ``request URL TYPE [JSON]``: one RPC; its answer (the whole frame) is printed as one line of
  JSON; progress goes to stderr; an ``RPC_ERROR`` prints ``CODE: message`` on stderr, exit 1.
- ``listen URL [--subscribe TOPIC ...]``: every frame the server sends, one JSON line each,
  until ``--count`` frames, ``--duration`` seconds, or Ctrl-C.

Each opens one connection and never reconnects: a connection that ends early is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from wskit.errors import ErrorCode
from wskit.protocol import (
    CANCEL_TYPE,
    ERROR_TYPE,
    HEARTBEAT_ACK_TYPE,
    HEARTBEAT_TYPE,
    PROGRESS_TYPE,
    RPC_ERROR_TYPE,
    SUBSCRIBE_TYPE,
    SUBSCRIBED_TYPE,
    dumps,
    frame,
    type_prefix,
)

if TYPE_CHECKING:
    from wskit.cli.link import Link

__all__ = ["listen", "request", "send"]

#: the frames that answer with an error
_ERROR_TYPES = frozenset({ERROR_TYPE, RPC_ERROR_TYPE})
#: the correlation id of the command's own request (unless --meta gives one)
_CORRELATION_ID = "cli-1"


def send(args: argparse.Namespace) -> int:
    """Run ``wskit send``."""
    return asyncio.run(_send(args))


def request(args: argparse.Namespace) -> int:
    """Run ``wskit request``."""
    return asyncio.run(_request(args))


def listen(args: argparse.Namespace) -> int:
    """Run ``wskit listen``; Ctrl-C ends it like ``--count`` or ``--duration`` would (exit 0)."""
    try:
        return asyncio.run(_listen(args))
    except KeyboardInterrupt:
        return 0


async def _open(args: argparse.Namespace) -> Link:
    # the client's transport (aiohttp) is loaded by the commands that connect, not by `wskit`
    from wskit.cli.link import Link

    return await Link.open(args.url, token=args.token, timeout=args.timeout)


def _late(message: str) -> Exception:
    """``DEADLINE_EXCEEDED``: the server did not answer in time (the message is the line to print)."""
    from wskit.client.errors import ClientError

    return ClientError(ErrorCode.DEADLINE_EXCEEDED, message)


def _message(type_name: str, meta: dict[str, Any], payload: Any) -> bytes:
    return frame(type_prefix(type_name), dumps(meta), None if payload is None else dumps(payload))


async def _send(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    async with await _open(args) as link:
        deadline = loop.time() + args.timeout
        await link.send(_message(args.type, args.meta or {}, args.payload))
        await link.send(frame(type_prefix(HEARTBEAT_TYPE), None, None))
        while True:
            found = await link.receive(max(0.0, deadline - loop.time()))
            if found is None:
                raise _late(f"the server did not confirm the message within {args.timeout:g} s (--timeout)")
            if found.type == HEARTBEAT_ACK_TYPE:
                return 0
            if found.type in _ERROR_TYPES:
                raise found.refusal(f"the server refused {args.type}: ")


async def _request(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    meta: dict[str, Any] = dict(args.meta or {})
    cid = meta.get("correlationId")
    if not isinstance(cid, str):
        cid = meta["correlationId"] = _CORRELATION_ID
    meta.setdefault("timeoutMs", max(1, int(args.timeout * 1000)))
    async with await _open(args) as link:
        deadline = loop.time() + args.timeout
        await link.send(_message(args.type, meta, args.payload))
        while True:
            found = await link.receive(max(0.0, deadline - loop.time()))
            if found is None:
                await link.send(_message(CANCEL_TYPE, {"correlationId": cid}, None))
                raise _late(f"no answer to {args.type} within {args.timeout:g} s (--timeout); request cancelled")
            answers = found.meta.get("correlationId") == cid
            if found.type in _ERROR_TYPES and (answers or "correlationId" not in found.meta):
                raise found.refusal()
            if not answers:
                continue  # a publication or another message meanwhile: not the answer
            if found.type == PROGRESS_TYPE:
                payload = found.envelope.payload if found.envelope is not None else None
                print(f"progress: {json.dumps(payload, ensure_ascii=False)}", file=sys.stderr, flush=True)
                continue
            print(found.line(), flush=True)
            return 0


async def _listen(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    async with await _open(args) as link:
        started = loop.time()
        deadline = None if args.duration is None else started + args.duration
        printed = 0
        for number, topic in enumerate(args.subscribe or (), start=1):
            printed += await _subscribe(link, topic, f"cli-sub-{number}", args.timeout, args.count)
        print(f"listening on {args.url}", file=sys.stderr, flush=True)
        while args.count is None or printed < args.count:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            found = await link.receive(remaining)
            if found is None:
                break  # --duration is over
            print(found.line(), flush=True)
            printed += 1
    return 0


async def _subscribe(link: Link, topic: str, cid: str, timeout: float, count: int | None) -> int:
    """Subscribe to ``topic``; frames that arrive before the answer are printed (how many)."""
    await link.send(_message(SUBSCRIBE_TYPE, {"correlationId": cid}, {"topic": topic}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    printed = 0
    while True:
        found = await link.receive(max(0.0, deadline - loop.time()))
        if found is None:
            raise _late(f"no answer to the subscription to {topic!r} within {timeout:g} s (--timeout)")
        if found.meta.get("correlationId") == cid:
            if found.type == SUBSCRIBED_TYPE:
                print(f"subscribed to {topic}", file=sys.stderr, flush=True)
                return printed
            raise found.refusal(f"cannot subscribe to {topic!r}: ")
        if count is None or printed < count:
            print(found.line(), flush=True)
            printed += 1
