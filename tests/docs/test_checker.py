"""The docs checker can fail: small pages written here, each with one thing wrong (or right).

The page runs of test_pages.py pass on today's pages; these tests show that a stale block, a
block of the wrong kind or a helper without its import path would fail them, naming the page
and the line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from tests.docs.names import Import, import_problems, imports_in_block, imports_in_prose, mentioned, shown
from tests.docs.pages import PageRun, run_page
from tests.support.docblocks import DocError, blocks


def _run(tmp_path: Path, text: str) -> PageRun:
    """``text`` as ``page.md`` in a directory of its own, run."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    page = directory / "page.md"
    page.write_text(text, encoding="utf-8")
    scratch = directory / "scratch"
    scratch.mkdir()
    return run_page(page, scratch)


def test_a_failing_python_block_names_its_line(tmp_path: Path) -> None:
    """An unmarked block that raises fails the page at the block's line, with the traceback
    pointing at the page's own line."""
    run = _run(tmp_path, "# T\n\ntext\n\n```python\nx = 1\nraise ValueError(x)\n```\n")
    assert len(run.failures) == 1
    assert run.failures[0].startswith("page.md:5: exited 1")
    assert 'page.md", line 7' in run.failures[0]


def test_a_missing_import_fails(tmp_path: Path) -> None:
    """A block that uses a wskit name without importing it fails as written."""
    run = _run(tmp_path, "```python\nrouter = Router()\n```\n")
    assert len(run.failures) == 1 and "NameError" in run.failures[0]


def test_blocks_marked_with_previous_share_a_namespace(tmp_path: Path) -> None:
    """``run: with-previous`` continues the previous block's interpreter; without it a block starts afresh."""
    chained = "```python\nx = 1\n```\n\n<!-- run: with-previous -->\n```python\nassert x == 1\n```\n"
    assert _run(tmp_path, chained).failures == []
    fresh = "```python\nx = 1\n```\n\n```python\nassert x == 1\n```\n"
    failures = _run(tmp_path, fresh).failures
    assert len(failures) == 1 and failures[0].startswith("page.md:5:")


def test_with_previous_needs_a_previous_block(tmp_path: Path) -> None:
    """A chain cannot start with ``run: with-previous``."""
    run = _run(tmp_path, "<!-- run: with-previous -->\n```python\npass\n```\n")
    assert run.failures == [
        "page.md:2: <!-- run: with-previous --> needs a Python block before it that runs as a script"
    ]


def test_file_blocks_are_importable_and_test_files_run_under_pytest(tmp_path: Path) -> None:
    """A ``# NAME.py`` block is written beside the page's later blocks; ``test_*.py`` runs under
    pytest, so a failing assertion in a documented test fails the page."""
    text = (
        "```python\n# shapes.py\nSIDES = 4\n```\n\n"
        "```python\n# test_shapes.py\nfrom shapes import SIDES\n\n"
        "def test_sides() -> None:\n    assert SIDES == 5\n```\n"
    )
    run = _run(tmp_path, text)
    assert len(run.failures) == 1
    assert run.failures[0].startswith("page.md:6: exited 1") and "assert 4 == 5" in run.failures[0]


def test_a_serve_block_must_listen(tmp_path: Path) -> None:
    """A ``run: serve`` file block that exits instead of listening fails the page."""
    run = _run(tmp_path, "<!-- run: serve -->\n```python\n# app.py\nprint('no server here')\n```\n")
    assert len(run.failures) >= 1 and "did not listen" in run.failures[0]


def test_other_languages_must_be_fragments(tmp_path: Path) -> None:
    """An unmarked js block fails; marked, it passes (and is counted as a fragment)."""
    assert _run(tmp_path, "```js\nf()\n```\n").failures == [
        "page.md:1: a 'js' block must run or be marked <!-- fragment: why -->"
    ]
    run = _run(tmp_path, "<!-- fragment: browser code -->\n```js\nf()\n```\n")
    assert run.failures == [] and run.counts["fragment"] == 1


def test_a_python_fragment_must_be_python(tmp_path: Path) -> None:
    """A fragment is not run but still parsed (top-level await allowed)."""
    good = "<!-- fragment -->\n```python\nawait ctx.send(Msg, {})\n```\n"
    assert _run(tmp_path, good).failures == []
    bad = "<!-- fragment -->\n```python\nmax_bytes=4 MiB\n```\n"
    failures = _run(tmp_path, bad).failures
    assert len(failures) == 1 and "must be Python" in failures[0]


def test_shell_blocks_run_only_safe_commands(tmp_path: Path) -> None:
    """``wskit --version`` runs and its output is compared; ``pip install`` unmarked fails."""
    from wskit import __version__

    assert _run(tmp_path, f"```console\n$ python -m wskit --version\n...{__version__}...\n```\n").failures == []
    wrong = _run(tmp_path, "```console\n$ wskit --version\nwskit 0.0.0-never\n```\n").failures
    assert len(wrong) == 1 and wrong[0].startswith("page.md:2: `wskit --version` exited 0 and printed")
    unsafe = _run(tmp_path, "```sh\npip install wskit\nwskit --version\n```\n").failures
    assert len(unsafe) == 1 and "`pip install wskit` is not a command this test runs" in unsafe[0]


def test_json_blocks_must_parse(tmp_path: Path) -> None:
    """One document or one per line parses; an ellipsis in place of a value does not."""
    assert _run(tmp_path, '```json\n{"a": 1}\n{"b": [2]}\n```\n').failures == []
    failures = _run(tmp_path, '```json\n{"a": 1}\n{"b": {…}}\n```\n').failures
    assert len(failures) == 1 and failures[0].startswith("page.md:3: not JSON")


def test_markers_that_mark_nothing_are_errors() -> None:
    """A marker followed by prose, an unknown run mode or an unclosed fence is refused."""
    with pytest.raises(DocError, match="page:1: the marker is not followed"):
        blocks("<!-- fragment -->\nsome prose\n```python\n```\n")
    with pytest.raises(DocError, match="unknown marker"):
        blocks("<!-- run: sometimes -->\n```python\n```\n")
    with pytest.raises(DocError, match="page:1: the block is not closed"):
        blocks("```python\nx = 1\n")


def test_indented_blocks_and_reasons() -> None:
    """A block in a list item loses the item's indentation; a fragment keeps its reason."""
    [block] = blocks("1. Step:\n\n   <!-- fragment: needs root -->\n   ```sh\n   apt-get install x\n   ```\n")
    assert (block.lang, block.lines, block.fragment, block.detail, block.line) == (
        "sh",
        ["apt-get install x"],
        True,
        "needs root",
        4,
    )


def test_import_paths_are_checked() -> None:
    """An import of a name its module does not export is reported where the page writes it."""
    [block] = blocks("```python\nfrom wskit.guards import require_auth, no_such_guard\n```\n")
    problems = import_problems(imports_in_block(block))
    assert problems == ["page:2: `from wskit.guards import no_such_guard`: wskit.guards does not export it"]
    assert import_problems([Import("wskit.nowhere", "x", "page:9")])[0].startswith("page:9: `wskit.nowhere` does not")


def test_a_mention_needs_its_path_on_the_page() -> None:
    """``require_auth`` in prose is shown by an import, a dotted path or its module in the same paragraph."""
    bare = "Install `require_auth` on every route.\n"
    assert "require_auth" in mentioned(bare) and "require_auth" not in shown(bare, [])
    dotted = "Install `wskit.guards.require_auth` on every route.\n"
    assert "require_auth" in shown(dotted, [])
    nearby = "Install `require_auth` (from `wskit.guards`) on every route.\n"
    assert "require_auth" in shown(nearby, [])
    elsewhere = "Install `require_auth` on every route.\n\nSee `wskit.guards`.\n"
    assert "require_auth" not in shown(elsewhere, [])
    imported = "Use `from wskit.guards import require_auth`.\n\nInstall `require_auth`.\n"
    assert "require_auth" in shown(imported, imports_in_prose(imported, "page"))
    keyword = "Pass `require_auth=True`, or `router.require_auth`.\n"
    assert "require_auth" not in mentioned(keyword)
