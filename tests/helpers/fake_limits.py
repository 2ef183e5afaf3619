"""The flood-limit half of the fake Bot API: Telegram's 429s when a bot sends too fast.

What Telegram does, and so what this fake does when enforcement is on (``--enforce-limits``,
``FakeBotAPI(enforce_limits=True)`` or :meth:`FakeBotAPI.set_limits`):

* only methods that post a message count (:func:`is_message_method`: ``send*`` but
  ``sendChatAction``, copy/forward);
* each message takes a token from the bot's bucket (30/s), the chat's (1/s, burst 3) and, for
  a group, supergroup or channel, the group's (20/min); one that finds a bucket empty is
  answered 429 "Too Many Requests: retry after N" with ``parameters.retry_after`` = the
  whole seconds until a token is back (at least 1), and costs no token, so a retry after
  ``retry_after`` succeeds.

The buckets run on the fake's clock (injectable, so tests move time by hand). Everything runs
on the fake's event loop; no locks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from tests.helpers.fake_text import ApiError, as_int

# Methods that post a message besides ``send*`` (sendChatAction posts none).
_MESSAGE_METHODS_OTHER = frozenset(
    {"copymessage", "copymessages", "forwardmessage", "forwardmessages"}
)
# A request finding at least 1 - slack tokens passes: a sender that paces itself exactly to the
# limit sees its requests arrive with a few milliseconds of jitter, and Telegram's limits are
# not that sharp either. 0.1 token is 100 ms at 1/s per chat, 300 ms at 20/min per group.
_FLOOD_SLACK_TOKENS = 0.1


def is_message_method(lowered: str) -> bool:
    """Whether the (lower-cased) Bot API method posts a message into its ``chat_id``."""
    return (
        lowered.startswith("send") and lowered != "sendchataction"
    ) or lowered in _MESSAGE_METHODS_OTHER


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's flood limits as the fake enforces them (when enabled).

    Each limit is a token bucket: ``*_burst`` tokens, refilled at the rate; a message takes a
    token, and a message that finds none is answered 429 with ``retry_after`` = the whole
    seconds until one is back (at least 1). So with the defaults: a 31st message within an
    instant from one bot, a 21st into one group within a minute, or a 4th into one chat within
    a second is refused, and sustained rates above 30/s, 20/min and 1/s are refused. Only
    methods that post a message count (``send*`` but ``sendChatAction``, copy/forward).

    Attributes:
        per_bot_per_s: messages per second from the bot, all chats together.
        per_bot_burst: messages the bot may send in one instant.
        per_group_per_minute: messages per minute into one group/supergroup/channel (a
            negative chat id, or ``@username``).
        per_group_burst: messages one group may get in one instant.
        per_chat_per_s: messages per second into any one chat (groups included).
        per_chat_burst: messages one chat may get in one instant.
    """

    per_bot_per_s: float = 30.0
    per_bot_burst: float = 30.0
    per_group_per_minute: float = 20.0
    per_group_burst: float = 20.0
    per_chat_per_s: float = 1.0
    per_chat_burst: float = 3.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{field.name} must be a positive number")


class _Bucket:
    """Token bucket on the fake's clock (see :class:`FloodLimits`)."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def shortfall_s(self, now: float) -> float:
        """Refill to ``now``; seconds until a token is back (0: one is available now)."""
        self.tokens = min(self.capacity, self.tokens + max(now - self.stamp, 0.0) * self.rate)
        self.stamp = max(now, self.stamp)
        missing = 1 - _FLOOD_SLACK_TOKENS - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate


class FloodGate:
    """Flood-limit state of one :class:`FakeBotAPI`: the limits, their buckets, the 429s.

    Attributes:
        enforce: whether messages are counted and refused at all (off by default).
        limits: the limits in force.
        hits_by_scope: 429s produced per limit ("bot", "group", "chat"); injected
            failures (``fail_next``) are not counted.
    """

    def __init__(
        self, clock: Callable[[], float], enforce: bool, limits: FloodLimits | None
    ) -> None:
        self._clock = clock
        self.enforce = enforce
        self.limits = limits or FloodLimits()
        self.hits_by_scope: dict[str, int] = {"bot": 0, "group": 0, "chat": 0}
        self._buckets: dict[tuple[str, int | str], _Bucket] = {}

    def configure(self, enforce: bool, **overrides: float) -> FloodLimits:
        """Switch enforcement, change limits (every bucket starts afresh); return the limits.

        Raises:
            TypeError: for an unknown limit name. ValueError: for a non-positive value.
        """
        self.limits = replace(self.limits, **overrides)
        self.enforce = enforce
        self._buckets.clear()
        return self.limits

    def check(self, lowered: str, params: dict[str, Any]) -> None:
        """Take one token from the bot's, the group's and the chat's bucket, or refuse.

        All three must have a token; only then are they taken, so a refused message costs
        nothing (as a retry after ``retry_after`` should succeed). Methods that post no
        message, and everything while enforcement is off, pass untouched.

        Raises:
            ApiError: 429 "Too Many Requests: retry after N" with ``retry_after``.
        """
        if not self.enforce or not is_message_method(lowered):
            return
        raw = params.get("chat_id")
        target: int | str = raw.lower() if isinstance(raw, str) else as_int(raw, 0)
        now = self._clock()
        limits = self.limits
        scopes: list[tuple[str, int | str, float, float]] = [
            ("bot", 0, limits.per_bot_per_s, limits.per_bot_burst),
            ("chat", target, limits.per_chat_per_s, limits.per_chat_burst),
        ]
        if isinstance(target, str) or target < 0:
            rate = limits.per_group_per_minute / 60
            scopes.insert(1, ("group", target, rate, limits.per_group_burst))
        buckets = []
        for scope, key, rate, burst in scopes:
            bucket = self._buckets.get((scope, key))
            if bucket is None:
                bucket = self._buckets[(scope, key)] = _Bucket(rate, burst, now)
            wait = bucket.shortfall_s(now)
            if wait > 0:
                self.hits_by_scope[scope] += 1
                retry_after = max(1, math.ceil(wait))
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {retry_after}",
                    {"retry_after": retry_after},
                )
            buckets.append(bucket)
        for bucket in buckets:
            bucket.tokens -= 1
