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
from typing import Any

from wskit.cli import settings as flags
from wskit.cli.target import load_router
from wskit.errors import UsageError

__all__ = ["asyncapi", "types", "write_out"]


def asyncapi(args: argparse.Namespace) -> int:
    """Write the AsyncAPI 3 document of the router: JSON, keys sorted, indented by 2.

    The server's URL, path and security schemes come from the settings as ``run`` resolves
    them (flags, environment, defaults) unless ``--server-url`` names the server."""
    settings = flags.resolve(args)
    router = load_router(args.target, factory=args.factory)
    exporter = _exporter("asyncapi", "wskit.export.asyncapi")
    options: dict[str, Any] = {"settings": settings}
    if args.server_url:
        options["servers"] = args.server_url
    if args.title:
        options["title"] = args.title
    if args.auth:
        options["auth"] = True
    # a payload JSON Schema cannot state, a bad server URL: UsageError, reported by main()
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
            raise UsageError(f"wskit {command} is not available in this version ({module} is missing)") from exc
        raise


def write_out(text: str, output: str | None) -> None:
    """``text`` to stdout, or to the file ``output`` (made whole first, then written at once)."""
    if output is None or output == "-":
        print(text, end="", flush=True)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
