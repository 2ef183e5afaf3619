"""Per-user ``/news`` budget: ``count`` requests per ``window_s`` seconds, in bounded memory.

A fixed window per user (it opens with the user's first request) is easy to explain in the
reply ("try again in 42 s") and costs one small record per active user. Records whose window
has ended are dropped lazily, and the table never holds more than ``max_users`` entries: when
full, the oldest windows are evicted first (evicting a user only ever *forgives* them).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["allow", "notify", "drop"]


@dataclass(slots=True)
class _Window:
    started: float
    count: int
    notified: bool


@dataclass(frozen=True, slots=True)
class RateDecision:
    """What to do with one request: serve it, answer "slow down" once, or drop it silently."""

    verdict: Verdict
    retry_after_s: int = 0


class NewsRateLimiter:
    """Fixed-window limiter keyed by user id. Not thread-safe; the event loop is single-threaded.

    No lock is needed: ``check`` never awaits, so two requests can't interleave inside it.
    """

    def __init__(
        self,
        count: int,
        window_s: int,
        *,
        max_users: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count
        self.window_s = window_s
        self._max_users = max_users
        self._clock = clock
        # Insertion order == window start order, because a user is re-inserted when a window opens.
        self._windows: OrderedDict[int, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def check(self, user_id: int) -> RateDecision:
        """Count one request from ``user_id`` and say what to do with it."""
        now = self._clock()
        self._expire(now)
        window = self._windows.get(user_id)
        if window is None or now - window.started >= self.window_s:
            self._windows.pop(user_id, None)
            while len(self._windows) >= self._max_users:
                self._windows.popitem(last=False)
            self._windows[user_id] = _Window(started=now, count=1, notified=False)
            return RateDecision("allow")
        if window.count < self.count:
            window.count += 1
            return RateDecision("allow")
        retry = max(1, math.ceil(window.started + self.window_s - now))
        if window.notified:
            return RateDecision("drop", retry)
        window.notified = True
        return RateDecision("notify", retry)

    def breach(self, decision: RateDecision, user_id: int, chat_id: int) -> dict[str, object]:
        """The structured fields of a refused request's log line (``extra=``).

        One shape for every limited command (``/news``; ``/add`` and ``/import`` add their
        ``command``), so a dashboard or an alert reads breaches the same way whatever was
        limited. ``action`` says whether the user was told (``notified``) or not (``dropped``).
        """
        return {
            "user_id": user_id,
            "chat_id": chat_id,
            "limit": self.count,
            "window_s": self.window_s,
            "retry_after_s": decision.retry_after_s,
            "action": "notified" if decision.verdict == "notify" else "dropped",
        }

    def _expire(self, now: float) -> None:
        # Oldest windows are at the front; stop at the first one still open.
        while self._windows:
            first = next(iter(self._windows.values()))
            if now - first.started < self.window_s:
                break
            self._windows.popitem(last=False)
