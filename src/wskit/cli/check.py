"""``wskit check MODULE:ROUTER``: is this router servable under these settings, and what does it serve?

It does what serving does up to the point where a socket would open: resolve the settings
(flags, environment, defaults), build the runtime (the decoder of every routed type, the
pipelines, admission, the guards the settings ask for) and an encoder for every message the
server may send. No broker is started and no port is bound, so it runs in CI or a build step.

It prints the route table on stdout and exits 0; each problem is one line on stderr and the
exit code is 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from wskit.cli import settings as flags
from wskit.cli.exits import FAILED, one_line
from wskit.cli.target import load_router
from wskit.config import ConfigError, Settings, load_settings
from wskit.router import Route, Router

__all__ = ["check", "route_table"]


def check(args: argparse.Namespace) -> int:
    """Run ``wskit check``; returns the exit code (problems are printed, not raised)."""
    router = load_router(args.target, factory=args.factory)
    overrides = flags.overrides(args)
    problems: list[str] = []
    settings: Settings | None = None
    served: Router[Any] = router
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        problems.append(str(exc))
    if settings is not None:
        served, found = _build(router, overrides)
        problems += found
    print(route_table(args.target, served))
    if settings is not None and not problems:
        print(f"settings: ok ({_summary(settings)})")
    if not router.routes and not router.outbound:
        print("note: the router declares no message: nothing to serve")
    for problem in problems:
        print(f"wskit check: problem: {one_line(problem)}", file=sys.stderr)
    return FAILED if problems else 0


def _build(router: Router[Any], overrides: dict[str, Any]) -> tuple[Router[Any], list[str]]:
    """The router as served (with the settings' own routes) and the problems building it found."""
    from wskit.runtime import build_runtime  # the runtime layer, only for this command

    try:
        runtime = build_runtime(router, **overrides)
    except Exception as exc:  # noqa: BLE001 - whatever stops serving is a problem to report
        return router, [f"{type(exc).__name__}: {exc}"]
    problems = []
    for type_name, schema in sorted(runtime.routes.outbound.items()):
        try:
            runtime.codec.encoder_for(schema)
        except Exception as exc:  # noqa: BLE001 - as above, for one outbound type
            problems.append(f"{type_name}: cannot encode it: {type(exc).__name__}: {exc}")
    return runtime.routes, problems


def route_table(target: str, router: Router[Any]) -> str:
    """The routes, the server's own messages and the topic policy, as aligned text."""
    lines = [f"{target}: {len(router.routes)} route(s), schema backend {_backend(router)}", ""]
    rows = [["TYPE", "KIND", "REQUEST", "RESPONSE", "MIDDLEWARE"]]
    for name, route in sorted(router.routes.items()):
        response = (
            "-" if route.rpc is None else f"{route.rpc.response.type}({_model(route.rpc.response.payload_model)})"
        )
        kind = "event" if route.rpc is None else "rpc"
        rows.append([name, kind, _model(route.schema.payload_model), response, str(_middleware(router, route))])
    lines += _aligned(rows)
    outbound = router.outbound
    if outbound:
        lines += ["", "sent by the server:"]
        rows = [["TYPE", "PAYLOAD", "TOPICS"]]
        for name, schema in sorted(outbound.items()):
            topics = ", ".join(router.emitted_topics.get(name, ())) or "-"
            rows.append([name, _model(schema.payload_model), topics])
        lines += _aligned(rows)
    lines += ["", "topics:"]
    lines.append(f"  clients may subscribe to: {', '.join(router.subscribe_patterns) or 'none'}")
    history = [f"{p.pattern} (max_len {p.max_len}, ttl {p.ttl_s:g} s)" for p in router.history]
    lines.append(f"  history: {', '.join(history) or 'none'}")
    lines.append(f"  presence events: {', '.join(router.presence_patterns) or 'none'}")
    return "\n".join(lines)


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _middleware(router: Router[Any], route: Route) -> int:
    """What runs before the handler: global, the included router's, the route's own."""
    return len(router.middleware) + len(route.inherited) + len(route.middleware)


def _model(model: type | None) -> str:
    return "-" if model is None else model.__qualname__


def _backend(router: Router[Any]) -> str:
    try:
        return str(getattr(router.validator, "name", type(router.validator).__name__))
    except Exception as exc:  # noqa: BLE001 - reported by the build as well; the table still prints
        return f"unknown ({type(exc).__name__})"


def _summary(s: Settings) -> str:
    where = f"[{s.host}]" if ":" in s.host else s.host
    path = s.path or "any path"
    broker = "redis broker" if s.redis_url else "memory broker"
    auth = "JWT" if s.jwt_secret else "no JWT"
    scheme = "wss" if s.tls_cert_file else "ws"
    workers = f"{s.workers} worker{'s' if s.workers != 1 else ''}"
    return f"{scheme}://{where}:{s.port}, {path}, {workers}, {broker}, {auth}, transport {s.transport}"
