"""``wskit run MODULE:ROUTER``: serve a router with ``serve()``, every setting a flag.

The flags are ``serve()``'s keyword arguments (:mod:`wskit.cli.settings`), so ``wskit run
app:router --port 9000`` is ``serve(router, port="9000")`` and an unset flag falls back to
the environment variable, as the keyword does. Settings are checked before the application
is imported: a bad ``PORT`` fails in a moment, whatever the application does at import.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wskit.cli import settings as flags
from wskit.cli.target import load_router, split_target
from wskit.errors import ConfigError

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (then shut down gracefully); with ``--reload``, supervise a
    child that serves, given the same arguments again (``args.argv``)."""
    resolved = flags.resolve(args)
    if args.reload:
        from wskit.cli.reload import Reloader, directories_of

        module, _ = split_target(args.target)
        directories = directories_of(module) + [_directory(d) for d in args.reload_dir or ()]
        command = [sys.executable, "-m", "wskit", *(arg for arg in args.argv if arg != "--reload")]
        return Reloader(command, directories, stop_timeout_s=resolved.shutdown_grace_ms / 1000).run()
    router = load_router(args.target, factory=args.factory)
    from wskit.cli.reload import watch_parent
    from wskit.server import serve

    watch_parent()
    serve(router, **flags.overrides(args))
    return 0


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise ConfigError(f"--reload-dir {text}: no such directory")
    return path.resolve()
