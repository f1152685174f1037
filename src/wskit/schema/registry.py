"""Choosing a schema backend: by name, by instance, or from the models a router declares."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from wskit.errors import UsageError
from wskit.schema.validator import Validator

__all__ = ["select_validator"]


def _is_msgspec_struct(model: Any) -> bool:
    mro = getattr(model, "__mro__", ())
    return any(base.__module__.startswith("msgspec") and base.__name__ == "Struct" for base in mro)


def _by_name(name: str) -> Validator:
    if name == "pydantic":
        from wskit.schema.pydantic_backend import PydanticValidator

        return PydanticValidator()
    if name == "msgspec":
        try:
            from wskit.schema.msgspec_backend import MsgspecValidator
        except ImportError as exc:
            raise UsageError(str(exc)) from exc
        return MsgspecValidator()
    raise UsageError(f"unknown validator {name!r}: use 'pydantic', 'msgspec' or a Validator instance")


def select_validator(choice: Validator | str | None, models: Sequence[type]) -> Validator:
    """The backend for ``models``: ``choice`` when given, else msgspec for Structs, else pydantic.

    Raises :class:`UsageError` when the chosen backend cannot validate one of the models.
    """
    if choice is None:
        structs = [m for m in models if _is_msgspec_struct(m)]
        others = [m for m in models if not _is_msgspec_struct(m) and not dataclasses.is_dataclass(m)]
        if structs and others:
            raise UsageError(
                "a router validates with one backend, but it declares both msgspec Structs "
                f"({structs[0].__name__}) and other models ({others[0].__name__}); "
                "use one kind, or dataclasses, which both backends accept"
            )
        choice = "msgspec" if structs else "pydantic"
    validator = _by_name(choice) if isinstance(choice, str) else choice
    for model in models:
        if not validator.accepts(model):
            raise UsageError(f"the {validator.name} backend cannot validate {model.__name__}")
    return validator
