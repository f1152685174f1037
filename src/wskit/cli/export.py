"""``wskit asyncapi`` and ``wskit types``: the router's contract, written by ``wskit.export``.

The exporters live in :mod:`wskit.export` and are imported only by these commands. A
document goes to stdout, or with ``-o FILE`` to that file (made whole in memory first, so a
failing export leaves no half-written file). A declaration the exporter cannot express fails
with its message, one line.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from types import ModuleType

from wskit.cli.failure import Failure
from wskit.cli.target import load_router

__all__ = ["asyncapi", "types", "write_out"]


def asyncapi(args: argparse.Namespace) -> int:
    """Write the AsyncAPI 3 document of the router: JSON, keys sorted, indented by 2."""
    router = load_router(args.target, factory=args.factory)
    exporter = _exporter("asyncapi", "wskit.export.asyncapi")
    options = {"server_url": args.server_url} if args.server_url else {}
    document = exporter.asyncapi_document(router, **options)
    write_out(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", args.output)
    return 0


def types(args: argparse.Namespace) -> int:
    """Write the TypeScript declarations (``--zod``: zod schemas) of the router's messages."""
    router = load_router(args.target, factory=args.factory)
    exporter = _exporter("types", "wskit.export.typescript")
    text = exporter.typescript_declarations(router, zod=args.zod)
    write_out(text if text.endswith("\n") else text + "\n", args.output)
    return 0


def _exporter(command: str, module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise Failure(f"wskit {command} is not available in this install: {module} is missing") from exc
        raise


def write_out(text: str, output: str | None) -> None:
    """``text`` to stdout, or to the file ``output`` (made whole first, then written at once)."""
    if output is None or output == "-":
        print(text, end="", flush=True)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise Failure(f"cannot write {output}: {exc.strerror or exc}") from exc
