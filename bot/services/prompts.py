"""Open rename prompts: which user's next message in which chat is a feed's new title.

A rename from a ``/list`` button is a short conversation (:mod:`bot.handlers.rename`): the
bot sends a reply prompt and remembers it here; the next text from that user in that chat
within :data:`RENAME_WINDOW_S` is the answer — in a group only a reply to the prompt
(with privacy mode on, replies are what a bot sees; other talk must not be swallowed).

The store is memory only, on purpose: a prompt lost in a restart costs the user one more
tap, while storing it would make every tap a durable write. It is bounded
(:data:`MAX_PENDING_RENAMES`, the oldest dropped first) so no number of taps can grow it
without limit. Pure: the clock is a parameter, nothing here talks to Telegram or storage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RENAME_WINDOW_S = 300.0  # how long a rename prompt waits for its answer ("within 5 minutes")
MAX_PENDING_RENAMES = 10_000  # prompts remembered at once (oldest dropped first)


@dataclass(frozen=True, slots=True)
class PendingRename:
    """A rename prompt waiting for its answer.

    Attributes:
        target: the chat whose subscription is renamed (may differ from the chat asked in,
            when a private chat manages a channel).
        url: the subscription's feed URL.
        prompt_id: the prompt message; in groups the answer must reply to it.
        expires: clock time after which the prompt is forgotten.
    """

    target: int
    url: str
    prompt_id: int
    expires: float


class RenamePrompts:
    """Open rename conversations, keyed by (chat asked in, user); bounded, expiring.

    All prompts live equally long, so insertion order is expiry order: expired ones are
    dropped from the front in O(1) amortised. Single event loop and no awaits inside: no
    lock needed.
    """

    def __init__(
        self,
        window_s: float = RENAME_WINDOW_S,
        limit: int = MAX_PENDING_RENAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Make an empty store.

        Args:
            window_s: how long a prompt stays open.
            limit: how many prompts stay open at once; must be at least 1.
            clock: monotonic seconds (tests pass a fake).

        Raises:
            ValueError: ``limit`` below 1 or ``window_s`` not positive (a store that forgets
                every prompt at once would silently drop every answer).
        """
        if limit < 1 or not window_s > 0:
            raise ValueError(f"need limit >= 1 and window_s > 0, got {limit}, {window_s}")
        self._window_s = window_s
        self._limit = limit
        self._clock = clock
        self._open: dict[tuple[int, int], PendingRename] = {}

    def __len__(self) -> int:
        """How many prompts are remembered (expired ones may still count until the next call)."""
        return len(self._open)

    def start(self, chat_id: int, user_id: int, target: int, url: str, prompt_id: int) -> None:
        """Wait for ``user_id``'s answer in ``chat_id`` (replacing an earlier prompt)."""
        self._expire()
        self._open.pop((chat_id, user_id), None)
        if len(self._open) >= self._limit:
            del self._open[next(iter(self._open))]
        expires = self._clock() + self._window_s
        self._open[(chat_id, user_id)] = PendingRename(target, url, prompt_id, expires)

    def take(
        self, chat_id: int, user_id: int, *, reply_to: int | None, private: bool
    ) -> PendingRename | None:
        """The prompt this message answers, removed; None if it answers none.

        In a private chat any text answers; elsewhere only a reply to the prompt does, and
        a message that is not one leaves the prompt open.
        """
        self._expire()
        pending = self._open.get((chat_id, user_id))
        if pending is None or not (private or reply_to == pending.prompt_id):
            return None
        del self._open[(chat_id, user_id)]
        return pending

    def _expire(self) -> None:
        now = self._clock()
        while self._open:
            key = next(iter(self._open))
            if self._open[key].expires > now:
                break
            del self._open[key]
