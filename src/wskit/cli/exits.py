"""What a command reports instead of a traceback: one line that says what to fix, and an exit code.

Every subcommand turns the errors it expects (an import that fails, a bad setting, a server that
cannot be reached) into a :class:`Failure`; :func:`wskit.cli.main` prints it as
``wskit <command>: error: <message>`` and exits with its code. The codes are the usual ones:
1 for a failure, 2 for a usage error (a bad argument, flag or setting).
"""

from __future__ import annotations

__all__ = ["FAILED", "USAGE", "Failure", "one_line"]

#: the command ran and failed (the module did not import, the server refused, no answer)
FAILED = 1
#: the command line or a setting is wrong (argparse's own code for usage errors)
USAGE = 2


class Failure(Exception):
    """A command failed for a reason the user can fix; ``str()`` is the one line to print.

    Raised inside :mod:`wskit.cli` only and caught by :func:`wskit.cli.main`: it never leaves
    the command line.
    """

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded (some libraries' messages span
    lines; a command's error is one line)."""
    return " ".join(text.split())
