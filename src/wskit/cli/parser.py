"""The ``wskit`` argument parser: the subcommands, their arguments, and one-line usage errors.

argparse prints the whole usage block before a usage error; here an error is one line that
names the argument and says what is accepted (``wskit run: error: argument --port: must be
between 0 and 65535 (got '70000')``), with a pointer to ``--help``, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from wskit.cli import export, remote
from wskit.cli.check import check
from wskit.cli.exits import USAGE, one_line
from wskit.cli.run import run
from wskit.cli.settings import add_settings_flags
from wskit.cli.target import split_target
from wskit.errors import ConfigError

__all__ = ["build_parser"]

#: the variable ``--token`` falls back to (a token on the command line shows in ``ps``)
TOKEN_ENV = "WSKIT_TOKEN"


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr, flush=True)
        raise SystemExit(USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``handler``, the function that runs it."""
    from wskit import __version__

    parser = OneLineParser(
        prog="wskit",
        description="wskit: serve, check, export and talk to schema-first WebSocket routers.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"wskit {__version__}")
    parser.add_argument("--debug", dest="debug_anywhere", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = OneLineParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    builders = (_run, _check, _asyncapi, _types, _send, _request, _listen)
    for builder in builders:
        name = builder.__name__.lstrip("_")
        doc = (builder.__doc__ or "").strip()
        command = sub.add_parser(name, help=doc.splitlines()[0], description=doc, parents=[common], allow_abbrev=False)
        builder(command)
    return parser


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODULE:ROUTER", type=_target_text, help="the router, e.g. app.chat:router")
    parser.add_argument(
        "--factory", action="store_true", help="MODULE:ROUTER is a function of no arguments that returns the Router"
    )


def _run(parser: argparse.ArgumentParser) -> None:
    """Serve a router with serve(): every setting a flag (a flag wins over its variable).

    Ends on SIGINT or SIGTERM with serve()'s graceful shutdown."""
    _target(parser)
    parser.add_argument(
        "--reload",
        action="store_true",
        help="development: restart the server when a .py file of the application changes (polled each second)",
    )
    parser.add_argument(
        "--reload-dir", action="append", metavar="DIR", help="with --reload: also watch the .py files under DIR"
    )
    add_settings_flags(parser)
    parser.set_defaults(handler=run)


def _check(parser: argparse.ArgumentParser) -> None:
    """Check a router and the settings without serving: print the route table.

    Exit 0 when it would serve; each problem is one line on stderr, and the exit code 1."""
    _target(parser)
    add_settings_flags(parser)
    parser.set_defaults(handler=check)


def _asyncapi(parser: argparse.ArgumentParser) -> None:
    """Write the router's AsyncAPI 3 document (JSON)."""
    _target(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--server-url", metavar="URL", help="the server's URL in the document, e.g. wss://chat.example.com"
    )
    parser.add_argument("--title", help="the document's title [wskit application]")
    parser.add_argument(
        "--auth", action="store_true", help="document the bearer JWT schemes even without JWT_SECRET (authenticate=)"
    )
    add_settings_flags(parser)
    parser.set_defaults(handler=export.asyncapi)


def _types(parser: argparse.ArgumentParser) -> None:
    """Write TypeScript declarations of the router's messages (--zod: zod schemas)."""
    _target(parser)
    parser.add_argument("--zod", action="store_true", help="zod schemas in the shape WS-Kit's message()/rpc() take")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=export.types)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", type=_url, help="the server, e.g. ws://127.0.0.1:8000/")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"sent as the access_token query parameter [env {TOKEN_ENV}]",
    )
    parser.add_argument(
        "--timeout", type=_positive(float), default=10.0, metavar="S", help="seconds to connect and to be answered [10]"
    )


def _message(parser: argparse.ArgumentParser) -> None:
    _connection(parser)
    parser.add_argument("type", metavar="TYPE", type=_type_name, help="the message type, e.g. SAY")
    parser.add_argument(
        "payload", metavar="JSON", nargs="?", type=_json("JSON"), help="the payload (omit for a message without one)"
    )
    parser.add_argument("--meta", type=_json("--meta", obj=True), metavar="JSON", help="meta keys (a JSON object)")


def _send(parser: argparse.ArgumentParser) -> None:
    """Send one message; exit 1 when the server answers ERROR (it is confirmed handled first)."""
    _message(parser)
    parser.set_defaults(handler=remote.send)


def _request(parser: argparse.ArgumentParser) -> None:
    """Call an RPC; print its answer as one line of JSON (RPC_ERROR: CODE: message on stderr, exit 1)."""
    _message(parser)
    parser.set_defaults(handler=remote.request)


def _listen(parser: argparse.ArgumentParser) -> None:
    """Print every frame the server sends, one JSON line each, until --count, --duration or Ctrl-C."""
    _connection(parser)
    parser.add_argument("--subscribe", action="append", metavar="TOPIC", help="subscribe to TOPIC first (repeatable)")
    parser.add_argument("--count", type=_positive(int), metavar="N", help="stop after N frames")
    parser.add_argument("--duration", type=_positive(float), metavar="S", help="stop after S seconds")
    parser.set_defaults(handler=remote.listen)


def _target_text(text: str) -> str:
    try:
        split_target(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _url(text: str) -> str:
    from yarl import URL

    url = URL(text)
    if url.scheme not in ("ws", "wss") or not url.host:
        raise argparse.ArgumentTypeError(f"must be ws://host[:port]/path or wss://..., got {text!r}")
    return text


def _type_name(text: str) -> str:
    if not text or len(text) > 128:
        raise argparse.ArgumentTypeError(f"a message type is 1-128 characters, got {text!r}")
    return text


def _json(name: str, *, obj: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} of {text[:60]!r}"
            ) from None
        if obj and not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"must be a JSON object, got {text[:60]!r}")
        return value

    parse.__name__ = name
    return parse


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
        return value

    return parse
