"""docs/production.md's settings table matches ``wskit.config.OPTIONS`` exactly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wskit.config import OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "production.md"
_ROW = re.compile(r"^\| `(?P<env>[A-Z_]+)` \| `(?P<name>[a-z_]+)` \| `(?P<default>[^`]*)`")


def _shown(default: Any) -> str:
    """How the table writes a default: unset (None), none (empty), a comma list, or the value."""
    if default is None:
        return "unset"
    if isinstance(default, tuple):
        return ", ".join(map(str, default)) if default else "none"
    return str(default)


def _rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is not None:
            assert match["env"] not in rows, f"{match['env']} has two rows"
            rows[match["env"]] = (match["name"], match["default"])
    return rows


def test_every_option_has_a_row_with_its_keyword_and_default() -> None:
    """Each OPTIONS entry appears once, with its environment variable, keyword and default."""
    rows = _rows()
    for option in OPTIONS:
        assert option.env in rows, f"{option.env} is missing from the settings table of {DOC.name}"
        name, default = rows[option.env]
        assert name == option.name, f"{option.env}: keyword {name!r}, the code says {option.name!r}"
        assert default == _shown(option.default), f"{option.env}: default {default!r}, the code says {option.default!r}"


def test_the_table_lists_no_setting_the_code_lacks() -> None:
    """No stale rows: every variable in the table is an option (aliases are named in the text)."""
    known = {option.env for option in OPTIONS}
    assert set(_rows()) == known


def test_aliases_are_documented() -> None:
    """Alternative variable names (CORS_ORIGIN) are mentioned in the page."""
    text = DOC.read_text(encoding="utf-8")
    for option in OPTIONS:
        for alias in option.aliases:
            assert f"`{alias}`" in text, f"alias {alias} of {option.env} is not documented"
