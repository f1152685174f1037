"""Topic rules: which names are valid, how they are normalised, who may use which topic.

The default policy accepts ``^[A-Za-z0-9:_./-]{1,128}$`` (PROTOCOL.md) and lets everyone
subscribe and publish; an application installs its own :class:`TopicPolicy` on the router.
Refusals are wire errors: a bad name is ``INVALID_ARGUMENT``, a refused identity
``PERMISSION_DENIED``, too many topics on one connection ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from wskit.errors import ErrorCode, WsKitError

if TYPE_CHECKING:
    from wskit.context import Context

__all__ = ["DEFAULT_TOPIC_PATTERN", "HistoryPolicy", "TopicAction", "TopicPolicy", "topic_matches"]

DEFAULT_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9:_./-]{1,128}$")

TopicAction = Literal["subscribe", "publish"]
#: ``authorize(ctx, topic, action)`` -> allowed? (sync or async)
Authorize = Callable[["Context[Any, Any]", str, TopicAction], "bool | Awaitable[bool]"]


def topic_matches(topic: str, pattern: str) -> bool:
    """Whether ``topic`` matches the glob ``pattern`` (``fnmatch``, case-sensitive: ``"room:*"``).

    The one matcher of every per-pattern declaration of the router (history, presence events,
    client subscriptions), so a pattern means the same wherever it is given.
    """
    return fnmatch.fnmatchcase(topic, pattern)


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much history a topic keeps: at most ``max_len`` messages, none older than ``ttl_s``
    (declared with ``router.enable_history(pattern, ...)``; kept by the broker)."""

    pattern: str
    max_len: int = 1000
    ttl_s: float = 600.0

    def matches(self, topic: str) -> bool:
        return topic_matches(topic, self.pattern)


@dataclass(frozen=True, slots=True)
class TopicPolicy:
    """Name pattern, normalisation, per-connection limit and authorisation for topics.

    ``normalize`` runs before the pattern check (e.g. ``str.lower``); the pattern must match
    the whole name (``fullmatch``, whatever anchors it has). ``authorize`` decides
    for a connection's own subscribe/publish; server-side ``router.publish`` is not asked.
    """

    pattern: re.Pattern[str] = DEFAULT_TOPIC_PATTERN
    normalize: Callable[[str], str] | None = None
    authorize: Authorize | None = None
    max_topics_per_connection: int = 1000

    def check_name(self, topic: object) -> str:
        """The normalised topic name, or ``INVALID_ARGUMENT``."""
        if not isinstance(topic, str):
            raise WsKitError(ErrorCode.INVALID_ARGUMENT, "Topic must be a string")
        name = self.normalize(topic) if self.normalize is not None else topic
        # fullmatch: with match(), a pattern ending in ``$`` also accepts a trailing newline
        # ("lobby\n" would be a topic of its own)
        if not self.pattern.fullmatch(name):
            raise WsKitError(
                ErrorCode.INVALID_ARGUMENT,
                "Invalid topic name",
                details={"topic": topic[:200], "pattern": self.pattern.pattern},
            )
        return name

    async def check_access(self, ctx: Context[Any, Any], topic: str, action: TopicAction) -> None:
        """Raise ``PERMISSION_DENIED`` unless ``authorize`` allows ``action`` on ``topic``."""
        if self.authorize is None:
            return
        allowed = self.authorize(ctx, topic, action)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise WsKitError(
                ErrorCode.PERMISSION_DENIED,
                f"Not allowed to {action} to this topic",
                details={"topic": topic, "action": action},
            )
