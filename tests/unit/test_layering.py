"""Layering (DESIGN.md, "Layers"): a lower layer never imports a higher one.

Imports are read with ``ast`` (nothing is imported), including imports inside functions;
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wskit")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


PACKAGE = _package_dir()


def _module_name(path: Path) -> str:
    parts = ["wskit", *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def imports_of(module: str) -> set[str]:
    """The wskit modules ``module`` imports at run time (relative imports resolved)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from wskit.transports import memory`` imports the submodule too
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES)
    return {name for name in found if name == "wskit" or name.startswith("wskit.")}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules_under(*prefixes: str) -> list[str]:
    return [m for m in MODULES if any(_under(m, p) for p in prefixes)]


CORE = ("wskit.router", "wskit.context", "wskit.dispatch", "wskit.inflight", "wskit.topics", "wskit.subscriptions")


def test_modules_are_found() -> None:
    """The walk sees the package (guards against checking nothing)."""
    assert {"wskit", "wskit.errors", "wskit.protocol", "wskit.router", "wskit.schema.validator"} <= set(MODULES)


def test_import_parser_sees_known_imports() -> None:
    """The parser finds imports that are known to exist, and skips TYPE_CHECKING-only ones."""
    assert "wskit.errors" in imports_of("wskit.router")
    assert "wskit.schema.declarations" in imports_of("wskit.router")
    assert "wskit.router" not in imports_of("wskit.context")  # only under TYPE_CHECKING


@pytest.mark.parametrize("module", ["wskit.errors", "wskit.protocol"])
def test_foundation_imports_nothing_of_ours(module: str) -> None:
    """errors.py and protocol.py import no wskit module."""
    assert imports_of(module) == set()


@pytest.mark.parametrize("module", _modules_under("wskit.schema"))
def test_schema_imports_only_errors_and_protocol(module: str) -> None:
    """schema/ imports only errors, protocol and schema/ itself."""
    allowed = ("wskit.errors", "wskit.protocol", "wskit.schema")
    assert sorted(m for m in imports_of(module) if not any(_under(m, a) for a in allowed)) == []


#: the runtime layer and everything above it (DESIGN.md, "Layers")
RUNTIME_AND_UP = (
    "wskit.runtime",
    "wskit.lifecycle",
    "wskit.hub",
    "wskit.pubsub",
    "wskit.admission",
    "wskit.lifetime",
    "wskit.guards",
    "wskit.gcpolicy",
    "wskit.workers",
    "wskit.transports",
    "wskit.server",
    "wskit.tls",
    "wskit.asgi",
    "wskit.client",
    "wskit.cli",
    "wskit.testing",
)


@pytest.mark.parametrize("module", _modules_under(*CORE, "wskit.codec"))
def test_core_does_not_import_transports_or_server(module: str) -> None:
    """The declaration core (router, context, dispatch, inflight, topics, codec) imports no
    runtime (runtime, lifecycle, hub, brokers, guards, admission, watchdog), no host, no
    client and no testing module: it is plain Python fed with frames."""
    forbidden = RUNTIME_AND_UP
    bad = sorted(m for m in imports_of(module) if m == "wskit" or any(_under(m, f) for f in forbidden))
    assert bad == []


@pytest.mark.parametrize("module", _modules_under("wskit.pubsub"))
def test_pubsub_does_not_import_the_core(module: str) -> None:
    """pubsub/ imports neither router, context nor dispatch (nor anything above them)."""
    forbidden = ("wskit.router", "wskit.context", "wskit.dispatch", "wskit.transports", "wskit.server")
    bad = sorted(m for m in imports_of(module) if m == "wskit" or any(_under(m, f) for f in forbidden))
    assert bad == []


@pytest.mark.parametrize("module", _modules_under("wskit.transports"))
def test_transports_do_not_import_server(module: str) -> None:
    """transports/ does not import server (the server composes transports, not the reverse)."""
    bad = sorted(m for m in imports_of(module) if m == "wskit" or _under(m, "wskit.server"))
    assert bad == []


@pytest.mark.parametrize("module", [m for m in MODULES if not _under(m, "wskit.testing")])
def test_only_testing_imports_testing(module: str) -> None:
    """The public test harness sits on top: no library module imports wskit.testing."""
    assert sorted(m for m in imports_of(module) if _under(m, "wskit.testing")) == []


def test_import_wskit_loads_no_server_library() -> None:
    """``import wskit`` (and declaring a router) loads no aiohttp, uvicorn, starlette, redis or
    PyJWT: serve() loads its host when called (API.md), an ASGI process never loads aiohttp."""
    import subprocess
    import sys

    code = (
        "import sys, wskit\n"
        "from wskit import Router, message, rpc, Context, WsKitError\n"
        "r = Router()\n"
        "loaded = [m for m in ('aiohttp', 'uvicorn', 'starlette', 'hypercorn', 'redis', 'jwt') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
        "from wskit import serve\n"
        "print('aiohttp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded, after_serve = done.stdout.split("\n")[:2]
    assert loaded == ""
    assert after_serve == "True"  # and serve is there when asked for
