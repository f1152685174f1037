"""An independent oracle: what PROTOCOL.md says the server must answer to one frame.

It shares no code with wskit: it parses the frame with the standard library (strict JSON: no
NaN or Infinity literals, UTF-8 only), applies the errors table of PROTOCOL.md and the
declared models of :mod:`tests.fuzz.app`, and returns the answers as canonical strings.

An :class:`Expectation` is a list of slots, one per answer frame; each slot is the set of
answers acceptable there (almost always exactly one). Leeway exists only where PROTOCOL.md
leaves room: frames nested deeper than :data:`DEEP` may be refused by a nesting limit
(``INVALID_ARGUMENT``), strings holding a lone surrogate escape (RFC 8259 section 8.2 calls
their meaning unpredictable) may be refused the same way, and a text frame that is not UTF-8
may be answered ``INVALID_ARGUMENT`` or closed with 1007 (RFC 6455 section 8.1).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEEP", "Expectation", "canonical", "expect"]

#: Nesting beyond which a frame may be refused by a depth limit instead of being read.
DEEP = 64
#: What ``close`` may be expected instead of answers (None: the connection must stay open).
CLOSE_1007 = 1007

#: unpaired surrogates can only come from \u escapes (the frame is valid UTF-8 by then)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_META_KEYS = {"timestamp", "correlationId", "timeoutMs", "traceparent", "tracestate"}
_MISSING = object()


class Invalid(Exception):
    """The payload or meta fails its declaration (the oracle's own validation)."""


@dataclass
class Expectation:
    """The answers one frame must get: ``slots`` in any order, or a close with ``close_code``."""

    slots: list[frozenset[str]] = field(default_factory=list)
    #: correlationId of an RPC this frame starts (the runner keeps them unique per batch)
    rpc_cid: str | None = None
    #: ``$ws:rpc-cancel`` naming this correlationId
    cancel_cid: str | None = None
    #: handler failures the app raises on purpose (each reaches ``on_error`` once)
    deliberate: int = 0
    #: a close code that is an acceptable outcome instead of the slots
    may_close: int | None = None
    #: one of these may come instead of all the slots (the runner checks such frames alone)
    refusals: frozenset[str] | None = None
    #: the server may refuse this frame instead (deep nesting, lone surrogates): then its
    #: handler never ran, so its deliberate failures may or may not be reported
    refusable: bool = False

    @property
    def solo(self) -> bool:
        """Whether the frame must be checked alone, behind a barrier (its answer count varies)."""
        return self.refusals is not None or self.may_close is not None


def canonical(message: Any) -> str:
    """One answer frame as a comparable string (numbers as floats, errors by code and details)."""
    if not isinstance(message, dict):
        return "NOT-AN-OBJECT " + json.dumps(message, sort_keys=True)
    kind = message.get("type")
    meta = message.get("meta")
    if kind in ("ERROR", "RPC_ERROR"):
        payload = message.get("payload") or {}
        details = payload.get("details")
        if isinstance(details, dict) and isinstance(details.get("issues"), list):
            shown: Any = "ISSUES"
        else:
            shown = details
        cid = meta.get("correlationId", "<none>") if isinstance(meta, dict) else "<no meta>"
        return json.dumps([kind, cid, payload.get("code"), _norm(shown)], sort_keys=True)
    if kind == "__heartbeat_ack":
        return json.dumps([kind])
    return json.dumps([kind, _norm(meta), _norm(message.get("payload", "<none>"))], sort_keys=True)


def _norm(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _error(cid: str | None, code: str, details: Any = None) -> str:
    kind = "RPC_ERROR" if cid is not None else "ERROR"
    return canonical(
        {
            "type": kind,
            "meta": {"correlationId": cid} if cid is not None else {},
            "payload": {"code": code, "details": details},
        }
    )


def _issues(cid: str | None) -> str:
    return _error(cid, "INVALID_ARGUMENT", {"issues": []})


#: a frame that is not a JSON object with a string type: ERROR INVALID_ARGUMENT (PROTOCOL.md gives
#: it no details; ``details.issues`` saying why is fine too)
_NOT_JSON = frozenset([_error(None, "INVALID_ARGUMENT"), _issues(None)])


def _reply(kind: str, cid: str | None, payload: Any = "<none>") -> str:
    meta = {"correlationId": cid} if cid is not None else {}
    message: dict[str, Any] = {"type": kind, "meta": meta}
    if payload != "<none>":
        message["payload"] = payload
    return canonical(message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes) -> tuple[bool, Any]:
    """(True, value) for a strict JSON text, (False, None) otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False, None
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return False, None
    finally:
        sys.setrecursionlimit(limit)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# -- the declared models, checked the way PROTOCOL.md and pydantic's strict mode read them --


def _int(v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid
    return v


def _float(v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid
    try:
        number = float(v)
    except OverflowError:
        raise Invalid from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise Invalid
    return number


def _str(v: Any, lo: int = 0, hi: int = 10**9) -> str:
    if not isinstance(v, str) or not lo <= len(v) <= hi:
        raise Invalid
    return v


def _list(v: Any, hi: int, item: Callable[[Any], Any]) -> list[Any]:
    if not isinstance(v, list) or len(v) > hi:
        raise Invalid
    return [item(x) for x in v]


def _obj(v: Any, fields: dict[str, tuple[Callable[[Any], Any], Any]]) -> dict[str, Any]:
    """Strict object: unknown keys refused, required fields (default _MISSING) present."""
    if not isinstance(v, dict) or set(v) - set(fields):
        raise Invalid
    out: dict[str, Any] = {}
    for name, (check, default) in fields.items():
        if name in v:
            out[name] = check(v[name])
        elif default is _MISSING:
            raise Invalid
        else:
            out[name] = default() if callable(default) else default
    return out


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _point(v: Any) -> dict[str, Any]:
    return _obj(v, {"x": (lambda x: _int(x, -1000, 1000), _MISSING), "y": (lambda y: _float(y, -1e6, 1e6), 0.0)})


def _shape(v: Any) -> dict[str, Any]:
    return _obj(
        v,
        {
            "name": (lambda s: _str(s, 1, 32), _MISSING),
            "points": (lambda p: _list(p, 8, _point), _MISSING),
            "label": (_optional(_str), None),
            "closed": (_bool, False),
        },
    )


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid
    return v


def _note(v: Any) -> dict[str, Any]:
    return _obj(v, {"text": (lambda s: _str(s, 0, 200), _MISSING)})


def _echo(v: Any) -> dict[str, Any]:
    return _obj(
        v,
        {
            "text": (lambda s: _str(s, 0, 200), _MISSING),
            "n": (_optional(lambda n: _int(n, -(10**9), 10**9)), None),
            "tags": (lambda t: _list(t, 4, _str), list),
        },
    )


def _num(v: Any) -> dict[str, Any]:
    return _obj(v, {"n": (lambda n: _int(n, 0, 1000), _MISSING)})


def _number(v: Any) -> Any:
    # PROTOCOL.md: timestamp and timeoutMs are numbers (1e400 is a JSON number, "5" is not)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid
    return v


def _meta(v: Any) -> dict[str, Any]:
    if v is _MISSING:
        return {}
    if not isinstance(v, dict) or set(v) - _META_KEYS:
        raise Invalid
    if "timestamp" in v:
        _number(v["timestamp"])
    if "timeoutMs" in v:
        _number(v["timeoutMs"])
    if "correlationId" in v:
        _str(v["correlationId"], hi=MAX_CORRELATION_ID)
    if "traceparent" in v:
        _str(v["traceparent"], hi=55)
    if "tracestate" in v:
        _str(v["tracestate"], hi=512)
    return v


#: the server's bounds on client input quoted back or kept (wskit.schema.validator)
MAX_CORRELATION_ID = 128
_MAX_QUOTED = 64


def _quoted(text: str) -> str:
    """A type name as an answer quotes it: clipped, with an ellipsis."""
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 1] + "\u2026"


#: type -> (payload check or None for "no payload", is_rpc)
ROUTES: dict[str, tuple[Callable[[Any], Any] | None, bool]] = {
    "DRAW": (_shape, False),
    "NOTE": (_note, False),
    "PING": (None, False),
    "ECHO": (_echo, True),
    "FLAKY": (_num, True),
    "TWICE": (_num, True),
}


def _handled(kind: str, cid: str | None, payload: Any, out: Expectation) -> None:
    """The answers of a valid message: what the app's handler sends."""
    one = out.slots.append
    if kind == "DRAW":
        one(frozenset([_reply("DRAWN", None, {"name": payload["name"], "count": len(payload["points"])})]))
    elif kind == "NOTE":
        if payload["text"].startswith("boom"):
            out.deliberate += 1
            one(frozenset([_error(cid, "INTERNAL")]))
        else:
            one(frozenset([_reply("NOTED", None, payload)]))
    elif kind == "PING":
        one(frozenset([_reply("PONG", None)]))
    elif kind == "ECHO":
        one(frozenset([_reply("ECHO_OK", cid, payload)]))
    elif kind == "FLAKY":
        n = payload["n"]
        if n % 4 == 0:
            out.deliberate += 1
            one(frozenset([_error(cid, "INTERNAL")]))
        elif n % 4 == 1:
            one(frozenset([_error(cid, "NOT_FOUND", {"n": n})]))
        elif n % 4 == 2:
            one(frozenset([_error(cid, "ROOM_FULL")]))
        else:
            one(frozenset([_reply("FLAKY_OK", cid, {"n": n})]))
    elif kind == "TWICE":
        progress = {"type": "$ws:rpc-progress", "meta": {"correlationId": cid} if cid is not None else {}}
        progress["payload"] = {"stage": 1}
        one(frozenset([canonical(progress)]))
        one(frozenset([_reply("TWICE_OK", cid, {"n": payload["n"]})]))


def expect(data: bytes, *, binary: bool) -> Expectation:
    """What the server must answer to ``data`` sent as a binary (or text) frame."""
    out = Expectation()
    ok, obj = _parse(data)
    if not ok:
        out.slots.append(_NOT_JSON)
        if not binary and _not_utf8(data):
            out.may_close = CLOSE_1007
        return out
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        out.slots.append(_NOT_JSON)
        return out
    kind = obj["type"]
    meta = obj.get("meta", _MISSING)
    cid = meta.get("correlationId") if isinstance(meta, dict) else None
    cid = cid if isinstance(cid, str) else None
    _classify(obj, kind, meta, cid, out)
    deep = data.count(b"[") + data.count(b"{") > DEEP and _depth(obj) > DEEP
    if deep or (_SURROGATE_ESCAPE.search(data) is not None and _lone_surrogate(obj)):
        # a nesting limit, or a parser refusing unpaired surrogates, may refuse the frame
        out.refusable = True
        refusals = {_error(None, "INVALID_ARGUMENT"), _error(None, "INVALID_ARGUMENT", {"issues": []})}
        if cid is not None:
            refusals |= {_error(cid, "INVALID_ARGUMENT"), _issues(cid)}
        if len(out.slots) == 1:
            out.slots[0] = out.slots[0] | refusals
        else:
            out.refusals = frozenset(refusals)  # one refusal instead of all the slots
    return out


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _classify(obj: dict[str, Any], kind: str, meta: Any, cid: str | None, out: Expectation) -> None:
    payload = obj.get("payload", _MISSING)
    if kind in ("__heartbeat", "$ws:rpc-cancel"):
        # the framework's own types take any meta object and an optional (or null) payload object
        if (meta is not _MISSING and not isinstance(meta, dict)) or (
            payload is not _MISSING and payload is not None and not isinstance(payload, dict)
        ):
            out.slots.append(frozenset([_issues(cid)]))
        elif kind == "__heartbeat":
            out.slots.append(frozenset([canonical({"type": "__heartbeat_ack"})]))
        elif cid is None:
            out.slots.append(frozenset([_error(None, "INVALID_ARGUMENT")]))
        else:
            out.cancel_cid = cid  # nothing to answer when no RPC of that id is in flight
        return
    if cid is not None and len(cid) > MAX_CORRELATION_ID:
        cid = None  # too long to be echoed: answered with ERROR (and invalid meta, if routed)
    if kind.startswith(("__", "$")):
        out.slots.append(frozenset([_error(cid, "INVALID_ARGUMENT", {"type": _quoted(kind)})]))
        return
    route = ROUTES.get(kind)
    if route is None:
        out.slots.append(frozenset([_error(cid, "UNIMPLEMENTED", {"type": _quoted(kind)})]))
        return
    check, is_rpc = route
    try:
        _meta(meta)
        if check is None:
            if payload is not _MISSING and payload != {}:
                raise Invalid
            value = None
        else:
            if payload is _MISSING:
                raise Invalid
            value = check(payload)
    except Invalid:
        out.slots.append(frozenset([_issues(cid)]))
        return
    if is_rpc:
        out.rpc_cid = cid
    _handled(kind, cid, value, out)
