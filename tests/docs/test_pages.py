"""Every code block of the README and docs/*.md runs as written, or is marked as a fragment.

One test per page (tests/docs/pages.py says how each kind of block is run). Pages with a docs
test of their own (docs/cli.md, docs/contract.md) are run there, with the same markers; here
they are only checked to have that test. A failure names the page and the line of the block.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
from tests.docs.pages import OWN_TESTS, PAGES, ROOT, run_page
from tests.support.docblocks import Block, read_blocks

_IDS = [str(page.relative_to(ROOT)) for page in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=_IDS)
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    """Each block of the page runs (or parses) as written, or is marked as a fragment."""
    name = str(page.relative_to(ROOT))
    if name in OWN_TESTS:
        assert (ROOT / OWN_TESTS[name]).is_file(), f"{name}: its own docs test {OWN_TESTS[name]} is gone"
        pytest.skip(f"run by {OWN_TESTS[name]}")
    run = run_page(page, tmp_path)
    assert not run.failures, "\n\n".join(run.failures)


def test_every_page_is_covered() -> None:
    """The pages walked are the README and every docs/*.md, and pages with their own test exist."""
    assert ROOT / "README.md" in PAGES
    assert set(PAGES) >= set((ROOT / "docs").glob("*.md"))
    assert {ROOT / name for name in OWN_TESTS} <= set(PAGES)


_YAML = [(page, block) for page in PAGES for block in read_blocks(page, ROOT) if block.lang == "yaml"]


@pytest.mark.parametrize(("page", "block"), _YAML, ids=[block.where for _, block in _YAML])
def test_yaml_blocks_parse(page: Path, block: Block) -> None:
    """A ``yaml`` block (Prometheus alert rules, say) that is not a fragment is valid YAML."""
    if block.fragment:
        pytest.skip("a fragment")
    if importlib.util.find_spec("yaml") is None:
        pytest.skip("PyYAML is not installed: add it to the test dependency group to check YAML blocks")
    yaml = importlib.import_module("yaml")  # no type stubs needed for one call
    documents = list(yaml.safe_load_all(block.text))
    assert documents and all(doc is not None for doc in documents), f"{block.where}: no YAML document"
