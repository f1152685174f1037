"""wskit's public names, and what a page imports, uses and mentions of them.

The table is built from the ``__all__`` of the modules users import from (:data:`MODULES`),
so a name added to one of them is known here at once. A page *shows the import path* of a
name when it

- imports it: ``from M import X`` in a code block or an inline code span (any ``M``: a
  ``TestClient`` on a page about Starlette is Starlette's);
- spells it dotted: ``wskit.testing.TestClient``;
- or names, in the same paragraph, list item or table row, a module that exports it as an
  inline code span of its own: "`jwt_authenticate(...)` from `wskit.guards.jwt`".
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from tests.support.docblocks import Block

__all__ = [
    "MODULES",
    "Import",
    "chunks",
    "code_spans",
    "import_problems",
    "imports_in_block",
    "imports_in_prose",
    "mentioned",
    "public_names",
    "shown",
    "used_in_block",
]

#: the modules users import from: the package, its public subpackages and their modules
MODULES = (
    "wskit",
    "wskit.asgi",
    "wskit.client",
    "wskit.config",
    "wskit.errors",
    "wskit.export.asyncapi",
    "wskit.guards",
    "wskit.guards.auth",
    "wskit.guards.jwt",
    "wskit.guards.ratelimit",
    "wskit.pubsub",
    "wskit.schema",
    "wskit.schema.jsonschema",
    "wskit.testing",
    "wskit.testing.brokers",
    "wskit.testing.ratelimit",
)

_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_FROM = re.compile(r"from\s+([\w.]+)\s+import\s+\(?([\w\s,]+)\)?")
_IDENT = re.compile(r"(?<![\w.\"'])([A-Za-z_]\w*)(?!\w)(?!\s*=[^=])")
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
#: the start of a list item or of a table row
_ITEM = re.compile(r"[-*] |\d+\. |\|")


@dataclass(frozen=True)
class Import:
    """``from module import name``, and where the page says it."""

    module: str
    name: str
    where: str


@cache
def public_names() -> dict[str, frozenset[str]]:
    """Each public name of wskit and the modules of :data:`MODULES` that export it."""
    table: dict[str, set[str]] = {}
    for module in MODULES:
        for name in getattr(importlib.import_module(module), "__all__", ()):
            if not name.startswith("_"):
                table.setdefault(name, set()).add(module)
    return {name: frozenset(modules) for name, modules in table.items()}


def _parse(block: Block) -> ast.Module | None:
    try:
        tree = compile(block.text, block.where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return None
    assert isinstance(tree, ast.Module)
    return tree


def imports_in_block(block: Block) -> list[Import]:
    """The ``from M import X`` statements of a Python block (``import M`` gives ``M`` itself)."""
    tree = _parse(block) if block.lang == "python" else None
    if tree is None:
        return []
    found: list[Import] = []
    for node in ast.walk(tree):
        where = f"{block.page}:{block.line + getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [Import(node.module, alias.name, where) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [Import(alias.name, "", where) for alias in node.names]
    return found


def _prose(text: str) -> list[str]:
    """The page's lines with those of code blocks blanked (numbers kept)."""
    prose = []
    inside = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            prose.append("")
        else:
            prose.append("" if inside else line)
    return prose


def code_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line, content) of each inline code span of the page's prose (code blocks left out)."""
    joined = "\n".join(_prose(text))
    for found in _SPAN.finditer(joined):
        yield joined.count("\n", 0, found.start()) + 1, found[2]


def chunks(text: str) -> list[str]:
    """The prose cut into paragraphs, list items and table rows."""
    cut: list[list[str]] = [[]]
    for line in _prose(text):
        stripped = line.strip()
        if not stripped or _ITEM.match(stripped):
            cut.append([])
        cut[-1].append(line)
        if stripped.startswith("|"):
            cut.append([])
    return ["\n".join(lines) for lines in cut if any(line.strip() for line in lines)]


def imports_in_prose(text: str, page: str) -> list[Import]:
    """``from M import X, Y`` written in the prose's inline code spans."""
    found: list[Import] = []
    for line, span in code_spans(text):
        statement = _FROM.fullmatch(span.strip())
        if statement is not None:
            names = [name.strip() for name in statement[2].split(",") if name.strip()]
            found += [Import(statement[1], name, f"{page}:{line}") for name in names]
    return found


def used_in_block(block: Block) -> set[str]:
    """The public names a Python block uses without defining or importing them itself."""
    tree = _parse(block) if block.lang == "python" else None
    if tree is None:
        return set()
    bound: set[str] = set()
    loaded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return (loaded - bound) & public_names().keys()


def mentioned(text: str) -> dict[str, int]:
    """Public names the prose's code spans mention (not as ``.attribute`` nor ``keyword=``),
    each with the line of its first mention."""
    table = public_names()
    found: dict[str, int] = {}
    for line, span in code_spans(text):
        if span.strip().startswith(("from ", "import ")):
            continue
        for ident in _IDENT.finditer(_STRING.sub('""', span)):
            if ident[1] in table:
                found.setdefault(ident[1], line)
    return found


def shown(text: str, imports: list[Import]) -> set[str]:
    """The names whose import path the page shows (see the module's docstring)."""
    table = public_names()
    names = {item.name for item in imports if item.name}
    for name, modules in table.items():
        if any(f"{module}.{name}" in text for module in modules):
            names.add(name)
    for chunk in chunks(text):
        named = {span.strip() for _, span in code_spans(chunk)} & set(MODULES)
        if named:
            names |= {name for name in mentioned(chunk) if table[name] & named}
    return names


def import_problems(imports: list[Import]) -> list[str]:
    """What is wrong with the page's imports from wskit: a module that does not import, or a
    name it does not export (not in its ``__all__``)."""
    problems: list[str] = []
    for item in imports:
        if item.module.split(".")[0] != "wskit":
            continue
        try:
            module = importlib.import_module(item.module)
        except ImportError as exc:
            problems.append(f"{item.where}: `{item.module}` does not import: {exc}")
            continue
        if not item.name:
            continue
        exported = getattr(module, "__all__", None)
        if not hasattr(module, item.name) or (exported is not None and item.name not in exported):
            problems.append(f"{item.where}: `from {item.module} import {item.name}`: {item.module} does not export it")
    return problems
