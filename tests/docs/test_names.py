"""Every wskit name a page uses or mentions shows where to import it from, and imports as shown.

- Each ``from wskit... import X`` on a page (in any block, fragments included, or in an inline
  code span) imports, and ``X`` is in that module's ``__all__``.
- A public name a Python block uses without importing it (a fragment's ``Context``, say) is
  imported elsewhere on the page, or its import path is shown (tests/docs/names.py says how).
- A helper the prose mentions (``require_auth``, ``rate_limit(...)``, ``jwt_authenticate``,
  ``TestClient``...) shows its import path at least once on the page. The package's own names
  (``wskit.__all__``: ``serve``, ``Router``, ``WsKitError``...) are left out of this one: every
  page's examples import them from ``wskit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.docs.names import (
    MODULES,
    Import,
    import_problems,
    imports_in_block,
    imports_in_prose,
    mentioned,
    public_names,
    shown,
    used_in_block,
)
from tests.docs.pages import PAGES, ROOT
from tests.support.docblocks import read_blocks

import wskit

_IDS = [str(page.relative_to(ROOT)) for page in PAGES]
#: names a page mentions without their path, on pages this test may not edit (none today).
#: Each entry must still be a gap (test below).
KNOWN_GAPS: dict[str, set[str]] = {}


def _page(page: Path) -> tuple[str, str, list[Import]]:
    name = str(page.relative_to(ROOT))
    text = page.read_text(encoding="utf-8")
    imports = [item for block in read_blocks(page, ROOT) for item in imports_in_block(block)]
    return name, text, imports + imports_in_prose(text, name)


def unshown_in_code(page: Path) -> list[str]:
    """Public names the page's Python blocks use, with no import path for them on the page."""
    _, text, imports = _page(page)
    known = shown(text, imports)
    return [
        f"{block.where}: `{name}` is used but the page never shows where it comes from (add its import)"
        for block in read_blocks(page, ROOT)
        for name in sorted(used_in_block(block) - known)
    ]


def unshown_in_prose(page: Path) -> dict[str, str]:
    """Helpers the prose mentions without their import path anywhere on the page: name -> where."""
    name, text, imports = _page(page)
    known = shown(text, imports) | set(wskit.__all__)
    return {ident: f"{name}:{line}" for ident, line in mentioned(text).items() if ident not in known}


@pytest.mark.parametrize("page", PAGES, ids=_IDS)
def test_imports_on_the_page_import(page: Path) -> None:
    """Each ``from wskit... import X`` a page writes imports, and X is exported there."""
    _, _, imports = _page(page)
    assert import_problems(imports) == []


@pytest.mark.parametrize("page", PAGES, ids=_IDS)
def test_names_used_in_code_are_imported_on_the_page(page: Path) -> None:
    """A block (a fragment too) that uses a wskit name it does not import finds it imported on the page."""
    assert unshown_in_code(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_IDS)
def test_mentioned_helpers_show_their_import_path(page: Path) -> None:
    """Each helper the prose names in code (``require_auth``, ``rate_limit(...)``...) has its
    import path on the page at least once."""
    name = str(page.relative_to(ROOT))
    missing = {ident: where for ident, where in unshown_in_prose(page).items() if ident not in KNOWN_GAPS.get(name, ())}
    assert not missing, "\n".join(
        f"{where}: `{ident}` without its import path on the page (one of {', '.join(sorted(public_names()[ident]))})"
        for ident, where in missing.items()
    )


def test_known_gaps_are_still_gaps() -> None:
    """An entry of KNOWN_GAPS that its page has since fixed is removed from the list."""
    for name, idents in KNOWN_GAPS.items():
        assert idents <= unshown_in_prose(ROOT / name).keys(), f"{name} now shows {idents}: drop it from KNOWN_GAPS"


def test_the_table_comes_from_the_modules() -> None:
    """The table maps guards and helpers to the modules that export them, from their ``__all__``."""
    table = public_names()
    assert {"wskit.guards", "wskit.guards.auth"} <= table["require_auth"]
    assert "wskit.guards.jwt" in table["jwt_authenticate"]
    assert "wskit.guards.ratelimit" in table["rate_limit"]
    assert "wskit.testing" in table["TestClient"]
    assert table["serve"] == {"wskit"}
    assert all(set(table[name]) <= set(MODULES) for name in table)
