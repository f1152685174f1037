"""Strict msgspec types: unknown keys rejected at every depth, yet the declared classes returned.

msgspec rejects unknown keys only in Structs declared with ``forbid_unknown_fields=True`` and
never in dataclasses, while the protocol rejects them everywhere in a payload. The user's
classes are not ours to change, so :class:`StrictTypes` builds a stand-in for each type:

- a Struct becomes a subclass that forbids unknown fields (same layout, so a decoded instance
  is handed back by switching its ``__class__``; a frozen one is rebuilt);
- a dataclass becomes a strict Struct mirror of its init fields, then the dataclass is built;
- lists, tuples, sets, dicts, ``Optional``/``Union`` and ``Annotated`` around those are
  rebuilt with strict arguments.

Each stand-in comes with a converter that turns what msgspec decoded into instances of the
declared classes, nested too, or None when nothing needs converting (a Struct that already
forbids unknown fields and holds no model that does not): that common case costs nothing.
The nested field types of a stand-in are set once all stand-ins exist, which is what lets
recursive models (a tree of nodes) work; msgspec reads annotations only when the first
decoder of a type is built, and reads a subclass's own before its parents'.

Not rebuilt (left as declared): generic Structs or dataclasses (``Box[int]``) and types msgspec
itself treats as opaque.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

__all__ = ["Convert", "StrictTypes"]

#: Turns one decoded value into what the handler is owed (instances of the declared classes).
Convert = Callable[[Any], Any]

#: generic origins whose arguments are rebuilt; the decoded value is of the origin's runtime type
_SEQUENCES = frozenset(
    {
        list,
        set,
        frozenset,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
        collections.abc.Collection,
        collections.abc.Iterable,
    }
)
_MAPPINGS = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})
_UNIONS = (Union, types.UnionType)
#: what msgspec decodes an abstract container as
_DECODED_AS: dict[Any, type] = {
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Collection: list,
    collections.abc.Iterable: list,
    collections.abc.Set: set,
    collections.abc.MutableSet: set,
    collections.abc.Mapping: dict,
    collections.abc.MutableMapping: dict,
}


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _is_model(tp: Any) -> bool:
    return _is_struct(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def _field_types(cls: type[Any]) -> dict[str, Any]:
    """Field name -> resolved type (Annotated constraints kept), init fields only for dataclasses."""
    if _is_struct(cls):
        return {f.name: f.type for f in msgspec.structs.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


def _models_in(tp: Any) -> Iterator[type]:
    """The Struct and dataclass classes a type mentions directly (not through their fields)."""
    if _is_model(tp):
        yield tp
        return
    if get_origin(tp) is Literal:
        return
    for arg in get_args(tp):
        yield from _models_in(arg)


class StrictTypes:
    """Builds strict stand-ins, memoised per class (one instance per decoder or encoder)."""

    def __init__(self) -> None:
        self._classes: dict[type, tuple[Any, Convert | None]] = {}

    def strict(self, tp: Any) -> tuple[Any, Convert | None]:
        """``(stand-in, converter)`` for ``tp``; ``(tp, None)`` when it is strict already."""
        if _is_model(tp):
            return self._model(tp)
        origin, args = get_origin(tp), get_args(tp)
        if origin is None or not args or origin is Literal:
            return tp, None
        if origin is Annotated:
            inner, convert = self.strict(args[0])
            return (tp if inner is args[0] else Annotated[(inner, *tp.__metadata__)]), convert
        if origin not in _SEQUENCES and origin not in _MAPPINGS and origin is not tuple and origin not in _UNIONS:
            return tp, None  # a generic model or an opaque type: left as declared
        pairs = [self.strict(arg) for arg in args]
        if all(new is old for (new, _), old in zip(pairs, args, strict=True)):
            return tp, None
        new_args = tuple(new for new, _ in pairs)
        converts = [convert for _, convert in pairs]
        if origin in _UNIONS:
            return Union[new_args], _union_convert(new_args, converts)
        strict_tp = origin[new_args]
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            return strict_tp, _fixed_tuple_convert(converts)
        item = converts[-1]  # dict: the values' converter; sequences and tuple[X, ...]: the items'
        if item is None:  # a converter below is needed only for keys, which are never models
            return strict_tp, None
        if origin in _MAPPINGS:
            return strict_tp, lambda value: {key: item(v) for key, v in value.items()}
        return strict_tp, lambda value: type(value)(map(item, value))

    def _model(self, cls: type[Any]) -> tuple[Any, Convert | None]:
        known = self._classes.get(cls)
        if known is not None:
            return known
        if not self._needs_stand_in(cls):
            self._classes[cls] = (cls, None)
            return cls, None
        fields = _field_types(cls)
        plan: list[tuple[str, Convert]] = []  # filled below: recursion may reach this class first
        stand_in: Any
        if _is_struct(cls):
            stand_in = type(cls.__name__, (cls,), {"__module__": cls.__module__}, forbid_unknown_fields=True)
            stand_in.__qualname__ = cls.__qualname__
            convert = _struct_convert(cls, plan)
        else:
            stand_in = _mirror(cls)
            convert = _dataclass_convert(cls, list(fields), plan)
        self._classes[cls] = (stand_in, convert)
        overrides: dict[str, Any] = {}
        for name, tp in fields.items():
            strict_tp, field_convert = self.strict(tp)
            if strict_tp is not tp:
                overrides[name] = strict_tp
            if field_convert is not None:
                plan.append((name, field_convert))
        if overrides:
            # read when the first decoder of the stand-in is built, which is after this
            stand_in.__annotations__ = {**inspect.get_annotations(stand_in), **overrides}
        if not plan:
            # nothing below needs converting, so nothing can have captured ``convert`` (a
            # recursive field would need it): swap in the converter without a field loop
            convert = _struct_convert(cls, None) if _is_struct(cls) else _dataclass_convert(cls, list(fields), None)
            self._classes[cls] = (stand_in, convert)
        return stand_in, convert

    def _needs_stand_in(self, cls: type) -> bool:
        """Whether ``cls``, or a model reachable through its fields, would take unknown keys."""
        seen: set[type] = set()
        todo: list[type[Any]] = [cls]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if not _is_struct(current) or not current.__struct_config__.forbid_unknown_fields:
                return True
            for tp in _field_types(current).values():
                todo.extend(_models_in(tp))
        return False


def _mirror(cls: type[Any]) -> type[Any]:
    """A strict Struct with the init fields (types and defaults) of dataclass ``cls``."""
    types_ = _field_types(cls)
    fields: list[Any] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            fields.append((f.name, types_[f.name], f.default))
        elif f.default_factory is not dataclasses.MISSING:
            fields.append((f.name, types_[f.name], msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, types_[f.name]))
    return msgspec.defstruct(cls.__name__, fields, forbid_unknown_fields=True, module=cls.__module__)


def _struct_convert(cls: type[Any], plan: list[tuple[str, Convert]] | None) -> Convert:
    """Stand-in instance -> instance of ``cls``; ``plan``: the fields to convert (None: none)."""
    if cls.__struct_config__.frozen:
        names = cls.__struct_fields__

        def rebuild(value: Any) -> Any:
            # a frozen Struct's class cannot be switched: build the declared class from the fields
            fields = {name: getattr(value, name) for name in names}
            for name, convert in plan or ():
                fields[name] = convert(fields[name])
            return cls(**fields)

        return rebuild

    if plan is None:

        def swap(value: Any) -> Any:
            # same layout (the stand-in only adds config), so this is a plain pointer swap
            value.__class__ = cls
            return value

        return swap

    def restore(value: Any) -> Any:
        # same layout (the stand-in only adds config), so this is a plain pointer swap
        value.__class__ = cls
        for name, convert in plan:
            setattr(value, name, convert(getattr(value, name)))
        return value

    return restore


def _dataclass_convert(cls: type[Any], names: list[str], plan: list[tuple[str, Convert]] | None) -> Convert:
    """Mirror instance -> instance of dataclass ``cls``; ``plan`` as for :func:`_struct_convert`."""
    if plan is None:
        return lambda mirror: cls(**{name: getattr(mirror, name) for name in names})

    def build(mirror: Any) -> Any:
        fields = {name: getattr(mirror, name) for name in names}
        for name, convert in plan:
            fields[name] = convert(fields[name])
        return cls(**fields)

    return build


def _runtime_type(tp: Any) -> Any:
    """The class of what msgspec decodes for ``tp`` (a stand-in, list, dict ...)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _runtime_type(get_args(tp)[0])
    if origin is None:
        return tp
    return _DECODED_AS.get(origin, origin)


def _union_convert(members: tuple[Any, ...], converts: list[Convert | None]) -> Convert | None:
    # msgspec admits one member per JSON kind (and tagged Structs), so the decoded value's
    # class names the member it was decoded as
    table = {_runtime_type(tp): c for tp, c in zip(members, converts, strict=True) if c is not None}
    if not table:
        return None

    def convert(value: Any) -> Any:
        member = table.get(type(value))
        return value if member is None else member(value)

    return convert


def _fixed_tuple_convert(converts: list[Convert | None]) -> Convert | None:
    if all(c is None for c in converts):
        return None
    return lambda value: tuple(v if c is None else c(v) for c, v in zip(converts, value, strict=True))
