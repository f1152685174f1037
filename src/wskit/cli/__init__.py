"""The ``wskit`` command line (``python -m wskit`` is the same program).

::

    wskit --version
    wskit run MODULE:ROUTER [--reload] [every serve() option as a flag]
    wskit check MODULE:ROUTER            the route table; problems one line each, exit 1
    wskit asyncapi MODULE:ROUTER         the AsyncAPI 3 document (JSON)
    wskit types MODULE:ROUTER [--zod]    TypeScript declarations (or zod schemas)
    wskit send URL TYPE [JSON]           one message to a live server
    wskit request URL TYPE [JSON]        one RPC; prints the answer
    wskit listen URL [--subscribe TOPIC] every frame the server sends, one JSON line each

An error is one line on stderr that says what to fix (``--debug`` adds the traceback); the
exit code is 0 for success, 1 for a failure, 2 for a usage error (argument, flag, setting).
The server and client libraries are imported by the commands that use them, so ``wskit
--version`` or ``wskit check`` loads neither. See ``docs/cli.md``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from wskit.cli.exits import FAILED, USAGE, one_line
from wskit.cli.parser import build_parser
from wskit.errors import ConfigError, UsageError, WsKitError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args.argv = arguments  # what `run --reload` gives its child again
    debug = bool(args.debug or args.debug_anywhere)
    prefix = f"wskit {args.command}: error:"
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:  # a bad argument, flag or setting (see wskit.cli.exits)
        _report(prefix, str(exc), exc if debug else None)
        return USAGE
    except UsageError as exc:  # the application cannot be used as given
        _report(prefix, str(exc), exc if debug else None)
        return FAILED
    except WsKitError as exc:  # the server: unreachable, refused, closed, late
        _report(prefix, exc.message, exc if debug else None)
        return FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``| head``): not an error; stdout is replaced so
        # that the interpreter's last flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        if isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
        else:
            text = f"{type(exc).__name__}: {exc}"
        hint = "" if debug else " (--debug shows the traceback)"
        _report(prefix, text + hint, exc if debug else None)
        return FAILED


def _report(prefix: str, text: str, traced: BaseException | None) -> None:
    if traced is not None:
        traceback.print_exception(traced)
    print(f"{prefix} {one_line(text)}", file=sys.stderr, flush=True)
