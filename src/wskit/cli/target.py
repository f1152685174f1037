"""``MODULE:ROUTER``: find the application's router the way uvicorn finds an app.

The module is imported with the current directory first on ``sys.path`` (so ``wskit run
app.chat:router`` works from the project directory, console script or ``python -m``), the
attribute may be a dotted path (``app.chat:api.router``), and the object must be a
:class:`~wskit.Router`, or, with ``--factory``, a function of no arguments that returns one.
The factory is opt-in so that the command line never calls an arbitrary object by surprise.

Each way this can go wrong is one :class:`~wskit.errors.UsageError` naming the module, the
attribute or the object, and what to do about it (a malformed ``MODULE:ROUTER`` is a
:class:`~wskit.errors.ConfigError`, a usage error of the command).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from wskit.errors import ConfigError, UsageError
from wskit.router import Router

__all__ = ["describe", "load_router", "project_on_path", "split_target"]

#: frames of these directories are not where the user's mistake is
_OURS = str(Path(__file__).resolve().parent.parent)


def split_target(text: str) -> tuple[str, str]:
    """``"app.chat:router"`` -> ``("app.chat", "router")``; :class:`ConfigError` for anything else."""
    module, sep, attr = text.partition(":")
    names_ok = all(part.isidentifier() for part in module.split(".")) and all(
        part.isidentifier() for part in attr.split(".")
    )
    if not sep or not names_ok:
        raise ConfigError(f"expected MODULE:ROUTER such as app.chat:router, got {text!r}")
    return module, attr


def load_router(text: str, *, factory: bool = False) -> Router[Any]:
    """The router named by ``text`` (``MODULE:ROUTER``); raises :class:`UsageError` saying why not."""
    module_name, attr = split_target(text)
    module = _import(module_name)
    obj: Any = module
    for depth, part in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = ".".join([module_name, *attr.split(".")[:depth]])
            raise UsageError(
                f"{owner} has no attribute {part!r}{_routers_hint(module) if depth == 0 else ''}"
            ) from None
    if isinstance(obj, Router):
        return obj
    if factory:
        return _call_factory(text, obj)
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        raise UsageError(
            f"{text} is a function, not a Router: pass --factory to call it (with no arguments) and use "
            "the Router it returns"
        )
    raise UsageError(f"{text} is {describe(obj)}, not a wskit Router")


def project_on_path() -> None:
    """Put the current directory first on ``sys.path`` unless it is there: ``python -m`` does
    it, a console script does not, and the application must import the same way under both."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _import(name: str) -> types.ModuleType:
    project_on_path()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise UsageError(
                f"cannot import {name}: No module named {missing!r} (run from the project directory or set PYTHONPATH)"
            ) from exc
        raise UsageError(f"cannot import {name}: {exc}{_where(exc)}: install it, or fix the import") from exc
    except SyntaxError as exc:
        raise UsageError(f"cannot import {name}: {exc.msg} ({_shown(exc.filename or '?')}, line {exc.lineno})") from exc
    except Exception as exc:  # the application's module may raise anything
        raise UsageError(f"cannot import {name}: {type(exc).__name__}: {exc}{_where(exc)}") from exc


def _call_factory(text: str, obj: Any) -> Router[Any]:
    if not callable(obj):
        raise UsageError(f"{text} is {describe(obj)}, not a function (--factory calls it with no arguments)")
    try:
        result = obj()
    except Exception as exc:  # the application's factory may raise anything
        raise UsageError(f"{text}() raised {type(exc).__name__}: {exc}{_where(exc)}") from exc
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never awaited: closed, so no "coroutine was never awaited" warning
        raise UsageError(f"{text}() returned an awaitable: the factory must be a plain function that returns a Router")
    if not isinstance(result, Router):
        raise UsageError(f"{text}() returned {describe(result)}, not a wskit Router")
    return result


def describe(obj: object) -> str:
    """What ``obj`` is, in a few words for an error message ("a dict", "the class Foo")."""
    if obj is None:
        return "None"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"the function {obj.__qualname__}"
    kind = type(obj)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _routers_hint(module: types.ModuleType) -> str:
    found = sorted(name for name, value in vars(module).items() if isinstance(value, Router))
    if found:
        return f" (its Routers: {', '.join(found)})"
    return " (it has no Router at module level; pass --factory for a function that builds one)"


def _where(exc: BaseException) -> str:
    """`` (at app/chat.py:12)``: the last frame of the traceback that is the application's."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_OURS) and not f.filename.startswith("<frozen")
    ]
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {_shown(last.filename)}:{last.lineno})"


def _shown(filename: str) -> str:
    """A path relative to the current directory when it is below it."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename
