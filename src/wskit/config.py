"""Settings of ``serve()``: keyword arguments first, then environment variables, then defaults.

Every option has one row in :data:`OPTIONS`: its environment variable, parser, default and
meaning, so documentation, validation and the error message for a bad value come from one
place. A bad value fails at start with an error naming the variable; so does a setting that
needs another one (``workers > 1`` without Redis, a TLS certificate without its key).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wskit.errors import ConfigError

__all__ = ["OPTIONS", "ConfigError", "Option", "Settings", "explicit_settings", "load_settings"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _int(minimum: int = 0) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        # int(2.7) would silently truncate and int(inf) raises OverflowError: refuse both here
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValueError("must be a whole number")
        try:
            number = int(value.strip().replace("_", "")) if isinstance(value, str) else int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if number < minimum:
            raise ValueError(f"must be >= {minimum}")
        return number

    return parse


def _port(value: Any) -> int:
    number = _int(0)(value)
    if number > 65535:
        raise ValueError("must be between 0 and 65535")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    # float() accepts "nan" and "inf": a NaN interval compares false with everything (a timer
    # that never fires, or fires at once), so every float setting must be finite
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _close_code(value: Any) -> int:
    code = _int(0)(value)
    if code not in (1001, 1012):
        raise ValueError("must be 1001 (going away) or 1012 (service restart)")
    return code


def _url_path(value: Any) -> str:
    path = str(value).strip()
    if not path.startswith("/") or any(c in path for c in "?# "):
        raise ValueError("must be a URL path starting with / (no query, fragment or space)")
    return path


def _level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _text(value: Any) -> str:
    return str(value).strip()


def _secret(value: Any) -> str:
    text = str(value)
    if len(text) < 32:
        raise ValueError("must be at least 32 characters (RFC 7518: as long as the HS256 hash; use a random secret)")
    return text


def _list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _origins(value: Any) -> tuple[str, ...]:
    origins = _list(value)
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port]) or *")
    return tuple(o.rstrip("/").lower() for o in origins)


def _networks(value: Any) -> tuple[Network, ...]:
    out: list[Network] = []
    for item in _list(value):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be one of 1, 0, true, false, yes, no, on, off")


def _file(value: Any) -> str:
    path = Path(str(value).strip())
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path)


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: keyword name, environment variable(s), parser, default and meaning."""

    name: str
    env: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    aliases: tuple[str, ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("host", "HOST", _text, "127.0.0.1", "interface to listen on (0.0.0.0 for all)"),
    Option("port", "PORT", _port, 8000, "TCP port (0 picks a free one)"),
    # not PATH: that variable is the shell's search path and is set in every environment
    Option("path", "WS_PATH", _url_path, None, "accept WebSocket upgrades only on this path (unset: any free path)"),
    Option("workers", "WORKERS", _int(1), 1, "server processes sharing the port (SO_REUSEPORT); > 1 needs Redis"),
    Option("redis_url", "REDIS_URL", _text, None, "Redis for pub/sub across processes (unset: in-memory broker)"),
    Option("log_level", "LOG_LEVEL", _level, "INFO", "logging level of the wskit loggers"),
    Option("log_format", "LOG_FORMAT", _choice("text", "json"), "text", "log lines as text or one JSON object each"),
    Option("max_payload_bytes", "MAX_PAYLOAD_BYTES", _int(1), 1024 * 1024, "largest inbound frame; larger closes 1009"),
    Option(
        "ping_interval",
        "PING_INTERVAL",
        _seconds,
        20.0,
        "seconds between transport pings; a pong later than half of it closes (0: off)",
    ),
    Option(
        "idle_timeout_ms",
        "IDLE_TIMEOUT_MS",
        _int(0),
        0,
        "close a connection that sent no application message for this long (0: off)",
    ),
    Option(
        "handshake_timeout_ms",
        "HANDSHAKE_TIMEOUT_MS",
        _int(0),
        10_000,
        "time a client has to send its upgrade request (slowloris guard; 0: off)",
    ),
    Option(
        "allowed_origins",
        "ALLOWED_ORIGINS",
        _origins,
        None,
        "comma list of origins allowed to connect (others get 403); * for any",
        ("CORS_ORIGIN",),
    ),
    Option(
        "max_connections", "MAX_CONNECTIONS", _int(0), 10_000, "connections this process accepts; more get 503 (0: off)"
    ),
    Option(
        "max_connections_per_ip",
        "MAX_CONNECTIONS_PER_IP",
        _int(0),
        0,
        "connections one client IP may hold; more get 429 (0: off)",
    ),
    Option(
        "trusted_proxies", "TRUSTED_PROXIES", _networks, (), "proxies whose X-Forwarded-For is believed (IPs or CIDRs)"
    ),
    Option("jwt_secret", "JWT_SECRET", _secret, None, "HMAC key for JWT auth at upgrade and by AUTH message"),
    Option("jwt_algorithms", "JWT_ALGORITHMS", _list, ("HS256",), "JWT algorithms accepted (pinned)"),
    Option("jwt_audience", "JWT_AUDIENCE", _text, None, "required JWT aud claim"),
    Option("jwt_issuer", "JWT_ISSUER", _text, None, "required JWT iss claim"),
    Option(
        "jwt_leeway_s",
        "JWT_LEEWAY_S",
        _seconds,
        30.0,
        "clock skew allowed on JWT exp/nbf/iat, at verification and for the expiry of open connections",
    ),
    Option(
        "auth_timeout_ms",
        "AUTH_TIMEOUT_MS",
        _int(0),
        0,
        "close connections still unauthenticated after this long with 1008 (0: off)",
    ),
    Option(
        "message_rate_limit",
        "MESSAGE_RATE_LIMIT",
        _int(0),
        0,
        "messages per minute per user (per connection when anonymous); over it: RESOURCE_EXHAUSTED (0: off)",
    ),
    Option(
        "send_queue_messages",
        "SEND_QUEUE_MESSAGES",
        _int(1),
        1024,
        "frames waiting for one slow client before the backpressure policy applies",
    ),
    Option(
        "send_queue_bytes",
        "SEND_QUEUE_BYTES",
        _int(1),
        4 * 1024 * 1024,
        "bytes waiting for one slow client before the backpressure policy applies",
    ),
    Option(
        "backpressure",
        "BACKPRESSURE_POLICY",
        _choice("close", "drop-oldest", "drop-new"),
        "close",
        "what a full send queue does: close 1013, drop the oldest or the newest",
    ),
    Option(
        "shutdown_grace_ms",
        "SHUTDOWN_GRACE_MS",
        _int(0),
        10_000,
        "on SIGTERM: time in-flight handlers get before connections close",
    ),
    Option(
        "shutdown_retry_after_ms",
        "SHUTDOWN_RETRY_AFTER_MS",
        _int(0),
        1000,
        "retryAfterMs of the SERVER_SHUTDOWN notice",
    ),
    Option(
        "shutdown_retry_jitter_ms",
        "SHUTDOWN_RETRY_JITTER_MS",
        _int(0),
        5000,
        "random extra delay added per connection to the SERVER_SHUTDOWN notice's retryAfterMs (0 = none)",
    ),
    Option(
        "shutdown_close_code",
        "SHUTDOWN_CLOSE_CODE",
        _close_code,
        1001,
        "close code of a graceful shutdown: 1001 (going away) or 1012 (service restart)",
    ),
    Option(
        "gc_freeze_interval_s",
        "GC_FREEZE_INTERVAL_S",
        _seconds,
        1.0,
        "freeze surviving objects this often so full GC passes skip open connections (0: CPython's default GC)",
    ),
    Option(
        "gc_unfreeze_interval_s",
        "GC_UNFREEZE_INTERVAL_S",
        _seconds,
        600.0,
        "give frozen objects back to the collector this often, for application reference cycles (0: never)",
    ),
    Option("tls_cert_file", "TLS_CERT_FILE", _file, None, "PEM certificate: serve wss:// (needs TLS_KEY_FILE)"),
    Option("tls_key_file", "TLS_KEY_FILE", _file, None, "PEM private key of TLS_CERT_FILE"),
    Option(
        "tls_reload_interval_s",
        "TLS_RELOAD_INTERVAL_S",
        _seconds,
        30.0,
        "look this often for a renewed TLS_CERT_FILE/TLS_KEY_FILE and load it for new connections "
        "(0: only on SIGHUP); open connections keep theirs",
    ),
    Option(
        "metrics",
        "METRICS",
        _flag,
        True,
        "count messages, errors, refusals and handler time and answer /metrics (needs wskit[metrics] to serve it)",
    ),
    Option(
        "metrics_dir",
        "METRICS_DIR",
        _text,
        None,
        "a directory the processes of one server share: each writes its counters there and a scrape of "
        "any one answers their sum (serve() with WORKERS > 1 makes one itself)",
    ),
    Option(
        "tracing",
        "TRACING",
        _flag,
        False,
        "an OpenTelemetry span per handled message and RPC (needs wskit[otel] and an SDK the application sets up)",
    ),
    Option(
        "transport",
        "WSKIT_TRANSPORT",
        _choice("auto", "aiohttp", "picows"),
        "auto",
        "serve()'s WebSocket host: auto (picows when installed and nothing needs aiohttp), aiohttp, or picows",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one server (see :data:`OPTIONS` for each one's meaning)."""

    host: str = "127.0.0.1"
    port: int = 8000
    path: str | None = None
    workers: int = 1
    redis_url: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    max_payload_bytes: int = 1024 * 1024
    ping_interval: float = 20.0
    idle_timeout_ms: int = 0
    handshake_timeout_ms: int = 10_000
    allowed_origins: tuple[str, ...] | None = None
    max_connections: int = 10_000
    max_connections_per_ip: int = 0
    trusted_proxies: tuple[Network, ...] = ()
    jwt_secret: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_s: float = 30.0
    auth_timeout_ms: int = 0
    message_rate_limit: int = 0
    send_queue_messages: int = 1024
    send_queue_bytes: int = 4 * 1024 * 1024
    backpressure: str = "close"
    shutdown_grace_ms: int = 10_000
    shutdown_retry_after_ms: int = 1000
    shutdown_retry_jitter_ms: int = 5000
    shutdown_close_code: int = 1001
    gc_freeze_interval_s: float = 1.0
    gc_unfreeze_interval_s: float = 600.0
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_reload_interval_s: float = 30.0
    metrics: bool = True
    metrics_dir: str | None = None
    tracing: bool = False
    transport: str = "auto"


def _from_env(option: Option, env: Mapping[str, str]) -> tuple[str, str] | None:
    for name in (option.env, *option.aliases):
        raw = env.get(name)
        if raw is not None and raw.strip() != "":
            return name, raw
    return None


def explicit_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> frozenset[str]:
    """Names of the options set by a keyword or an environment variable (not left at their default).

    The server uses it where a default of its own sits between the two (a router's
    ``send_queue``): an explicit setting wins over it, the built-in default does not.
    """
    env = os.environ if env is None else env
    overrides = overrides or {}
    return frozenset(
        option.name
        for option in OPTIONS
        if overrides.get(option.name) is not None or _from_env(option, env) is not None
    )


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    require: Sequence[str] = (),
) -> Settings:
    """Resolve every option: a non-None keyword wins over its environment variable.

    ``require`` names options that must end up set (e.g. ``jwt_secret`` when the app uses
    JWT auth). Raises :class:`ConfigError` naming the variable (or keyword) at fault.
    """
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
    unknown = set(overrides) - {f.name for f in fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = overrides.get(option.name)
        if given is not None:
            try:
                values[option.name] = option.parse(given)
            except (ValueError, TypeError, OverflowError) as exc:
                shown = "<hidden>" if "secret" in option.name else repr(given)
                raise ConfigError(f"{option.name}={shown}: {exc}") from None
            continue
        found = _from_env(option, env)
        if found is None:
            values[option.name] = option.default
            continue
        name, raw = found
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if "SECRET" in name else repr(raw)
            raise ConfigError(f"environment variable {name}={shown} is invalid: {exc} ({option.help})") from None
    settings = Settings(**values)
    for name in require:
        if getattr(settings, name) in (None, ""):
            option = next(o for o in OPTIONS if o.name == name)
            raise ConfigError(f"{option.env} is required: {option.help}")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError("TLS needs both TLS_CERT_FILE and TLS_KEY_FILE")
    return settings
