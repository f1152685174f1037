"""``serve()``'s settings as command-line flags, generated from the one table (``wskit.config.OPTIONS``).

Each option becomes ``--option-name`` (``max_payload_bytes`` -> ``--max-payload-bytes``), with
the table's help, its environment variable and its default in the help text. A flag is what
the keyword argument is to ``serve()``: it wins over the environment variable, and an option
given neither way falls back to the variable, then to the default. The flag's value is
checked by the option's own parser when the command line is read, so a bad value is a usage
error naming the flag, with the same "must be ..." the variable would get.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from wskit.config import OPTIONS, Option, Settings, load_settings

__all__ = ["add_settings_flags", "flag_of", "overrides", "resolve"]

#: the attribute prefix of the flags' values on the parsed namespace
_DEST = "setting_"


def flag_of(option: Option) -> str:
    """``--max-payload-bytes`` for ``max_payload_bytes``."""
    return "--" + option.name.replace("_", "-")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per option of ``serve()``; on/off options are ``--metrics``/``--no-metrics``."""
    group = parser.add_argument_group(
        "settings", "every serve() option; each also read from its environment variable (a flag wins)"
    )
    for option in OPTIONS:
        help_text = _help(option).replace("%", "%%")  # argparse formats help with %
        if isinstance(option.default, bool):
            group.add_argument(
                flag_of(option),
                dest=_DEST + option.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        group.add_argument(
            flag_of(option),
            dest=_DEST + option.name,
            type=_checked(option),
            default=None,
            metavar=option.env,
            help=help_text,
        )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, by keyword name, as ``serve(**overrides)`` takes them."""
    found: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, _DEST + option.name, None)
        if value is not None:
            found[option.name] = value
    return found


def resolve(args: argparse.Namespace) -> Settings:
    """Flags, then environment variables, then defaults, as ``serve()`` resolves them; raises
    :class:`~wskit.errors.ConfigError` for a bad variable or a pair that does not go together."""
    return load_settings(overrides(args))


def _checked(option: Option) -> Callable[[str], str]:
    """An argparse ``type`` that checks the flag with the option's parser and keeps the text,
    so that ``serve()`` parses the flag exactly as it would parse the variable."""

    def check(text: str) -> str:
        try:
            option.parse(text)
        except (ValueError, TypeError, OverflowError) as exc:
            shown = "" if "secret" in option.name else f" (got {text!r})"
            raise argparse.ArgumentTypeError(f"{exc}{shown}") from None
        return text

    check.__name__ = option.name  # argparse names the type in some messages
    return check


def _help(option: Option) -> str:
    names = " or ".join((option.env, *option.aliases))
    default = option.default
    if isinstance(default, tuple):
        default = ",".join(str(item) for item in default) or "none"
    elif isinstance(default, bool):
        default = "on" if default else "off"
    shown = "unset" if default is None else default
    extra = "; a flag shows in ps, prefer the variable" if "secret" in option.name else ""
    return f"{option.help} [env {names}; default {shown}{extra}]"
