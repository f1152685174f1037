"""The fenced code blocks of a Markdown page, and the markers that say how a docs test treats them.

Every docs test reads pages through :func:`blocks` (``tests/docs``, ``tests/cli/test_docs.py``,
``tests/export/test_docs.py``), so one set of conventions holds on every page. A marker is an
HTML comment (invisible on the rendered page) on the last non-blank line before the fence:

- ``<!-- fragment -->`` or ``<!-- fragment: why -->``: the block is not run (an excerpt, a
  sketch that needs a live server, a command that changes the machine...). A Python fragment
  must still be Python, and its ``from wskit... import`` lines must import.
- ``<!-- run: with-previous -->``: the block runs after the page's previous Python block, in
  the same interpreter and namespace (a page telling one story across several blocks).
- ``<!-- run: serve -->``: a file block (below) that serves: run as ``python NAME.py`` in the
  background, on a free port standing in for 8000, until the page is done.
- ``<!-- run: uses PAGE FILE -->``: before the block runs, the file block ``FILE`` of the page
  ``PAGE`` (a path from the repository root) is written beside it.

A Python block whose first line is ``# NAME.py`` is a file block: it is written to ``NAME.py``
in the page's scratch directory, so later blocks can import it. Fences may be indented (a
block inside a list item); the indentation is removed from the block's lines.

A console block is a list of :class:`Step`: a ``$ command`` line and the lines it prints,
compared with :func:`matches` (``...`` stands for any text within a line, or alone on a line
for any lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "DocError", "Step", "blocks", "matches", "read_blocks", "steps"]

#: a marker line: ``<!-- fragment -->``, ``<!-- fragment: why -->``, ``<!-- run: how -->``
_MARKER = re.compile(r"<!--\s*(fragment|run)\s*(?::\s*(.*?))?\s*-->")
#: the first line of a file block
_FILE_LINE = re.compile(r"#\s+([\w.-]+\.py)\b.*")
#: what ``<!-- run: ... -->`` may say
_RUN_MODES = re.compile(r"with-previous|serve|uses \S+\.md \S+\.py")


class DocError(AssertionError):
    """A page that breaks the conventions (an unclosed fence, a marker that marks nothing...)."""


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its lines (indentation removed) and its marker."""

    #: the page's name in messages (a path from the repository root, or a file name)
    page: str
    lang: str
    lines: list[str]
    #: the line number of the opening fence (1-based); the block's first line is ``line + 1``
    line: int
    #: ``"fragment"``, ``"run"`` or None, and what the marker says after its colon
    marker: str | None = None
    detail: str = ""

    @property
    def fragment(self) -> bool:
        """Whether the block is marked as not run."""
        return self.marker == "fragment"

    @property
    def run(self) -> str:
        """What ``<!-- run: ... -->`` says ("" without one)."""
        return self.detail if self.marker == "run" else ""

    @property
    def text(self) -> str:
        """The block's source, one string."""
        return "\n".join(self.lines) + "\n"

    @property
    def where(self) -> str:
        """``page:line`` of the opening fence, for messages."""
        return f"{self.page}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """``NAME.py`` when the block's first line is ``# NAME.py``, else None."""
        if not self.lines:
            return None
        found = _FILE_LINE.fullmatch(self.lines[0])
        return found[1] if found else None


def _marker(line: str, page: str, number: int) -> tuple[str, str] | None:
    found = _MARKER.fullmatch(line)
    if found is None:
        return None
    kind, detail = found[1], found[2] or ""
    if kind == "run" and not _RUN_MODES.fullmatch(detail):
        raise DocError(f"{page}:{number}: unknown marker {line!r} (run: with-previous, serve, uses PAGE FILE)")
    return kind, detail


def blocks(text: str, page: str = "page") -> list[Block]:
    """The fenced blocks of ``text`` in order, each with the marker that precedes it.

    Raises :class:`DocError` for a fence that is not closed, a marker with nothing to mark
    (prose between it and the next fence) or a ``run`` marker this module does not know."""
    found: list[Block] = []
    pending: tuple[str, str, int] | None = None  # a marker waiting for its fence
    opened: tuple[int, str, int, list[str]] | None = None  # fence line, lang, indent, lines
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if opened is not None:
            start, lang, indent, lines = opened
            if stripped == "```":
                kind, detail = (pending[0], pending[1]) if pending else (None, "")
                found.append(Block(page, lang, lines, start, kind, detail))
                opened, pending = None, None
            else:
                # the fence's indentation is the list item's, not the code's
                lines.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            continue
        if stripped.startswith("```"):
            opened = (number, stripped[3:].strip(), len(line) - len(line.lstrip()), [])
            continue
        if not stripped:
            continue
        if pending is not None:
            raise DocError(f"{page}:{pending[2]}: the marker is not followed by a code block")
        marker = _marker(stripped, page, number)
        if marker is not None:
            pending = (marker[0], marker[1], number)
    if opened is not None:
        raise DocError(f"{page}:{opened[0]}: the block is not closed")
    if pending is not None:
        raise DocError(f"{page}:{pending[2]}: the marker is not followed by a code block")
    return found


def read_blocks(path: Path, root: Path | None = None) -> list[Block]:
    """The blocks of the page at ``path``, named by its path from ``root`` (else its name)."""
    page = str(path.relative_to(root)) if root is not None else path.name
    return blocks(path.read_text(encoding="utf-8"), page)


@dataclass
class Step:
    """A ``$`` line of a console block and the lines printed under it."""

    command: str
    expected: list[str]
    line: int


def steps(block: Block) -> list[Step]:
    """The ``$`` lines of a console block, each with the lines printed under it."""
    out: list[Step] = []
    for offset, line in enumerate(block.lines, start=1):
        if line.startswith("$ "):
            out.append(Step(line[2:], [], block.line + offset))
        elif not out:
            raise DocError(f"{block.page}:{block.line + offset}: output before any command")
        else:
            out[-1].expected.append(line)
    return out


def _line_matches(pattern: str, line: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, line.rstrip()) is not None


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected`` (``...`` within a line, or alone for any lines)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[at:]) for at in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and matches(rest, actual[1:])
