"""Settings of ``serve()``: keyword arguments first, then environment variables, then defaults.

Every option has one row in :data:`OPTIONS`: its environment variable, parser and default,
so documentation, validation and the error message for a bad value come from one place.
A bad value fails at start with an error naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from wskit.errors import UsageError

__all__ = ["OPTIONS", "ConfigError", "Option", "Settings", "load_settings"]


class ConfigError(UsageError, ValueError):
    """A setting (keyword or environment variable) has a value wskit cannot use."""


def _int(minimum: int = 0) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip().replace("_", ""))
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return parse


def _port(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _seconds(text: str) -> float:
    value = float(text.strip())
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _text(text: str) -> str:
    return text.strip()


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: keyword name, environment variable, parser, default and meaning."""

    name: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("host", "HOST", _text, "127.0.0.1", "interface to listen on (0.0.0.0 for all)"),
    Option("port", "PORT", _port, 8000, "TCP port (0 picks a free one)"),
    Option("max_payload_bytes", "MAX_PAYLOAD_BYTES", _int(1), 1024 * 1024, "largest inbound frame; larger closes 1009"),
    Option("ping_interval", "PING_INTERVAL", _seconds, 20.0, "seconds between transport pings (0: off)"),
    Option("log_level", "LOG_LEVEL", _level, "INFO", "logging level of the wskit loggers"),
    Option("redis_url", "REDIS_URL", _text, None, "Redis for pub/sub across processes (unset: in-memory broker)"),
    Option("workers", "WORKERS", _int(1), 1, "server processes sharing the port (SO_REUSEPORT); > 1 needs Redis"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one server."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_payload_bytes: int = 1024 * 1024
    ping_interval: float = 20.0
    log_level: str = "INFO"
    redis_url: str | None = None
    workers: int = 1


def load_settings(overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every option: a non-None keyword wins over its environment variable.

    Raises :class:`ConfigError` naming the variable (or keyword) whose value is unusable.
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
                values[option.name] = option.parse(str(given))
            except ValueError as exc:
                raise ConfigError(f"{option.name}={given!r}: {exc}") from None
            continue
        raw = env.get(option.env)
        if raw is None or raw.strip() == "":
            values[option.name] = option.default
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"environment variable {option.env}={raw!r} is invalid: {exc} ({option.help})") from None
    return Settings(**values)
