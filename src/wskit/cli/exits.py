"""How a command's errors become one line and an exit code.

The CLI raises wskit's own exceptions (``errors.py``'s tree) and :func:`wskit.cli.main` turns
them into ``wskit <command>: error: <message>`` and an exit code:

- :class:`~wskit.errors.ConfigError`: a bad argument, flag or setting: :data:`USAGE` (2);
- :class:`~wskit.errors.UsageError`: the application cannot be used as given (the module does
  not import, the attribute is not a router, a declaration cannot be exported): :data:`FAILED` (1);
- :class:`~wskit.errors.WsKitError` (the client's ``ClientError``): the server could not be
  reached, refused, closed the connection, answered an error or did not answer: :data:`FAILED`.
"""

from __future__ import annotations

__all__ = ["FAILED", "USAGE", "one_line"]

#: the command ran and failed
FAILED = 1
#: the command line or a setting is wrong (argparse's own code for usage errors)
USAGE = 2


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded (some libraries' messages span
    lines; a command's error is one line)."""
    return " ".join(text.split())
