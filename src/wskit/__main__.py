"""``python -m wskit``: the ``wskit`` command line (see :mod:`wskit.cli`)."""

from __future__ import annotations

from wskit.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
