"""Hostile frames: hypothesis strategies for valid envelopes, and the mutations of each.

One hypothesis example draws a valid envelope of a declared type, a few frames of pure noise,
and a :class:`random.Random` (seeded by hypothesis, so runs are reproducible); the envelope
is then mutated at every level: each key deleted, an unknown key added to each object, each
value retyped (wrong JSON types, huge numbers, NaN/Infinity literals, lone surrogates, deep
nesting, long strings), and the serialised text truncated, padded with garbage, given
duplicate keys, a BOM, another encoding or flipped bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from hypothesis import strategies as st

__all__ = ["Frame", "examples", "mutations"]

#: what a raw token becomes in the JSON text (no Python value serialises to these)
RAW_TOKENS: tuple[str, ...] = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1E-400",
    "123456789012345678901234567890123",
    "-0",
    "1.0",
    '"\\ud800"',
    '"x\\udc00"',
    '"\\ud83d\\ude00"',
    '"a\\u0000b"',
    "[" * 30 + "]" * 30,
    "[" * 100 + "]" * 100,
    "[" * 300 + "]" * 300,
    "[" * 1500 + "]" * 1500,
    '{"a":' * 300 + "1" + "}" * 300,
    '{"a":' * 1500 + "1" + "}" * 1500,
    '"' + "é" * 3000 + '"',
)
RETYPES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1001,
    1.5,
    2**63,
    -(2**64),
    1e308,
    "",
    "x",
    "5",
    "ü😀\u2028",
    [],
    [1, "a"],
    {},
    {"x": 1},
)
_RAW = "@@RAW{}@@"


class Frame(NamedTuple):
    """One frame to send: its bytes, whether it goes as a binary frame, and how it was made."""

    data: bytes
    binary: bool
    label: str


_text = st.text(max_size=24)
_numbers = st.one_of(st.integers(-(10**15), 10**15), st.floats(allow_nan=False, allow_infinity=False))
_meta = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": _numbers,
        "correlationId": st.text(max_size=16),
        "timeoutMs": st.integers(0, 10**7),
    },
)
_point = st.fixed_dictionaries({"x": st.integers(-1000, 1000)}, optional={"y": st.floats(-1e6, 1e6, allow_nan=False)})
_shape = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=32), "points": st.lists(_point, max_size=8)},
    optional={"label": st.none() | _text, "closed": st.booleans()},
)
_note = st.fixed_dictionaries({"text": st.text(max_size=200) | _text.map(lambda t: "boom" + t)})
_echo = st.fixed_dictionaries(
    {"text": st.text(max_size=200)},
    optional={
        "n": st.none() | st.integers(-(10**9), 10**9),
        "tags": st.lists(st.text(max_size=10), max_size=4),
    },
)
_num = st.fixed_dictionaries({"n": st.integers(0, 1000)})
_PAYLOADS: dict[str, st.SearchStrategy[Any] | None] = {
    "DRAW": _shape,
    "NOTE": _note,
    "PING": None,
    "ECHO": _echo,
    "FLAKY": _num,
    "TWICE": _num,
}


@st.composite
def valid_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """An envelope every reading of PROTOCOL.md accepts, of one of the app's types."""
    kind = draw(st.sampled_from(sorted(_PAYLOADS)))
    env: dict[str, Any] = {"type": kind}
    if draw(st.booleans()):
        env["meta"] = draw(_meta)
    strategy = _PAYLOADS[kind]
    if strategy is not None:
        env["payload"] = draw(strategy)
    elif draw(st.booleans()):
        env["payload"] = {}
    if draw(st.integers(0, 9)) == 0:
        env["unknownRootKey"] = draw(_text)  # ignored, PROTOCOL.md says
    return env


_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_any_cid = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    _json,
)
_types = st.one_of(
    st.sampled_from(["DRAW", "NOTE", "PING", "ECHO", "FLAKY", "TWICE", "ECHO_OK", "ERROR", "RPC_ERROR", "drop"]),
    st.sampled_from(["__heartbeat", "$ws:rpc-cancel", "$ws:rpc-progress", "__heartbeat_ack", "$x", "__", "$"]),
    st.text(max_size=12),
    _json,
)


@st.composite
def loose_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """An object shaped like an envelope, with anything in it (correlationIds of every type)."""
    env: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        env["type"] = draw(_types)
    if draw(st.booleans()):
        meta = draw(
            st.dictionaries(st.sampled_from(["timestamp", "correlationId", "timeoutMs", "clientId", "x"]), _json)
        )
        if draw(st.booleans()):
            meta["correlationId"] = draw(_any_cid)
        env["meta"] = meta if draw(st.integers(0, 9)) else draw(_json)
    if draw(st.booleans()):
        env["payload"] = draw(_json)
    return env


class Example(NamedTuple):
    """One hypothesis example: a valid envelope, noise, and a seeded random for mutations."""

    envelope: dict[str, Any]
    noise: list[Frame]
    rnd: random.Random


@st.composite
def examples(draw: st.DrawFn) -> Example:
    noise = [
        Frame(draw(st.binary(max_size=200)), True, "random bytes"),
        Frame(draw(st.text(max_size=200)).encode(), False, "random text"),
        Frame(json.dumps(draw(_json)).encode(), False, "random JSON value"),
        Frame(json.dumps(draw(loose_envelopes())).encode(), False, "loose envelope"),
        Frame(json.dumps(draw(loose_envelopes()), ensure_ascii=False).encode(), True, "loose envelope (binary)"),
    ]
    return Example(draw(valid_envelopes()), noise, random.Random(draw(st.integers(0, 2**32 - 1))))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if rest:
        copy[head] = _delete(value[head], rest)
    else:
        del copy[head]
    return copy


def _dumps(value: Any, raw: str | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if raw is not None:
        text = text.replace(json.dumps(_RAW.format(0)), raw)
    return text


def _shown(path: tuple[Any, ...]) -> str:
    return ".".join(map(str, path)) or "<root>"


def mutations(example: Example) -> Iterator[Frame]:
    """The example's frames: the valid one, its mutations at every level, and the noise."""
    env, rnd = example.envelope, example.rnd
    valid = _dumps(env)
    yield Frame(valid.encode(), False, "valid")
    yield Frame(valid.encode(), True, "valid (binary)")
    for path in _paths(env):
        shown = _shown(path)
        if path:
            yield Frame(_dumps(_delete(env, path)).encode(), False, f"delete {shown}")
        for new in rnd.sample(RETYPES, 4):
            yield Frame(_dumps(_replace(env, path, new)).encode(), False, f"retype {shown} -> {type(new).__name__}")
        for token in rnd.sample(RAW_TOKENS, 4):
            text = _dumps(_replace(env, path, _RAW.format(0)), token)
            yield Frame(text.encode("utf-8", "surrogatepass"), False, f"retype {shown} -> raw {token[:12]}")
        target = _get(env, path)
        if isinstance(target, dict):
            extra = _replace(env, path, {**target, rnd.choice(["zz", "clientId", "receivedAt", "type"]): 1})
            yield Frame(_dumps(extra).encode(), False, f"add key in {shown}")
    yield from _text_mutations(valid, rnd)
    yield from example.noise


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _text_mutations(valid: str, rnd: random.Random) -> Iterator[Frame]:
    data = valid.encode()
    for cut in sorted(rnd.sample(range(len(data)), min(3, len(data)))):
        yield Frame(data[:cut], True, "truncated")
    for garbage in (" x", "}", "]", ",", "{}", "\x00", " \n\t "):
        yield Frame((valid + garbage).encode(), False, f"trailing {garbage!r}")
    body = valid[1:]
    yield Frame(('{"type":"NOPE",' + body).encode(), False, "duplicate type (first)")
    yield Frame((valid[:-1] + ',"type":"NOPE"}').encode(), False, "duplicate type (last)")
    yield Frame((valid[:-1] + ',"meta":{"correlationId":"dup"}}').encode(), False, "duplicate meta (last)")
    yield Frame(("\ufeff" + valid).encode(), True, "BOM")
    yield Frame(valid.encode("utf-16"), True, "UTF-16")
    yield Frame(json.dumps(json.loads(valid), indent=2).encode(), False, "pretty-printed, ASCII escapes")
    yield Frame(("[" + valid + "]").encode(), False, "wrapped in an array")
    flipped = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        flipped[rnd.randrange(len(flipped))] = rnd.randrange(256)
    yield Frame(bytes(flipped), True, "flipped bytes")
    where = rnd.randrange(len(data))
    bad = data[:where] + rnd.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + data[where:]
    yield Frame(bad, True, "invalid UTF-8 (binary)")
    if rnd.randrange(4) == 0:
        yield Frame(bad, False, "invalid UTF-8 (text frame)")
