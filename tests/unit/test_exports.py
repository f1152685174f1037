"""Export lists (STYLE.md): every module has a sorted ``__all__``; the package exports API.md's names."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wskit")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


PACKAGE = _package_dir()
FILES = sorted(PACKAGE.rglob("*.py"))
IDS = [str(p.relative_to(PACKAGE)) for p in FILES]

#: Names API.md fixes at the package root.
API_NAMES = ["Context", "ErrorCode", "Router", "Server", "WsKitError", "message", "rpc", "serve", "serve_async"]


def _all_of(path: Path) -> list[str] | None:
    """The literal ``__all__`` of a module file, None when it has none."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert node.value is not None
            value = ast.literal_eval(node.value)
            assert isinstance(value, (list, tuple)), f"{path}: __all__ must be a literal list"
            return list(value)
    return None


def sort_key(name: str) -> tuple[int, str]:
    """The isort-style order ruff (RUF022) keeps: CONSTANTS, then Classes, then everything else."""
    bare = name.lstrip("_")
    if bare.isupper() and len(bare) > 1:
        return (0, name)
    if bare[:1].isupper():
        return (1, name)
    return (2, name)


def _top_level_names(path: Path) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports), TYPE_CHECKING included.

    Names a module-level ``__getattr__`` compares against (lazy imports) count as bound.
    """
    names: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                names.update(
                    n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                )
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            nodes.extend(node.body)
            nodes.extend(node.orelse)
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    nodes.extend(handler.body)
                nodes.extend(node.finalbody)
    return names


def test_package_files_are_found() -> None:
    """The walk sees the package's modules (guards against checking nothing)."""
    assert {"__init__.py", "errors.py", "router.py"} <= set(IDS)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_module_has_all(path: Path) -> None:
    """Every module declares a literal ``__all__``."""
    assert _all_of(path) is not None


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_module_all_is_sorted_and_unique(path: Path) -> None:
    """Every module's ``__all__`` is sorted (isort-style, as ruff keeps it) and has no duplicates."""
    names = _all_of(path) or []
    assert names == sorted(set(names), key=sort_key)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_module_all_names_exist(path: Path) -> None:
    """Every name in a module's ``__all__`` is bound at the module's top level."""
    names = _all_of(path) or []
    assert sorted(set(names) - _top_level_names(path)) == []


def test_package_all_is_sorted() -> None:
    """``wskit.__all__`` is sorted (isort-style, as ruff keeps it) and has no duplicates."""
    import wskit

    assert wskit.__all__ == sorted(set(wskit.__all__), key=sort_key)


def test_package_all_has_the_api_names() -> None:
    """``wskit.__all__`` includes every name API.md fixes, and each resolves."""
    import wskit

    assert [name for name in API_NAMES if name not in wskit.__all__] == []
    assert all(getattr(wskit, name, None) is not None for name in API_NAMES)


def test_package_all_names_resolve() -> None:
    """Every name in ``wskit.__all__`` is an attribute of the package."""
    import wskit

    assert [name for name in wskit.__all__ if not hasattr(wskit, name)] == []
