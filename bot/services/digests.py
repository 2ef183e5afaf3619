"""When each digest chat gets its digest: a heap of due times, served by the digest job.

A chat's next due time is persisted (``Chat.next_digest_at``), so ``every`` schedules keep
their phase across restarts and a digest that fell due while the bot was down is sent at
start (once, with everything since the chat's cursors). A tick costs O(due chats).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable

from bot.models import Chat
from bot.services.delivery import Dispatcher
from bot.services.schedule import next_digest_at
from bot.storage import StorageService

logger = logging.getLogger(__name__)

DIGEST_TICK_S = 20  # how often the digest job looks for due chats
RETRY_DIGEST_S = 300  # a digest that could not be sent is retried this much later
DIGEST_CONCURRENCY = 32


class DigestScheduler:
    """Keeps every digest chat's due time and runs the due digests."""

    def __init__(
        self,
        storage: StorageService,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._dispatcher = dispatcher
        self._clock = clock
        self._heap: list[tuple[float, int]] = []
        self._due_at: dict[int, float] = {}  # the live heap entry per chat (others are stale)
        self._running: asyncio.Task[int] | None = None

    async def restore(self) -> int:
        """Schedule every digest chat from storage (start-up: O(chats), once)."""
        count = 0
        for chat in self._storage.chats(active_only=True):
            if chat.delivery.is_digest:
                await self.update(chat)
                count += 1
        logger.info(
            "digest schedules restored", extra={"event": "digests_restored", "count": count}
        )
        return count

    async def update(self, chat: Chat) -> None:
        """(Re)schedule a chat after a change of its delivery mode or time zone."""
        if not chat.delivery.is_digest or not chat.active:
            self._due_at.pop(chat.chat_id, None)
            if chat.next_digest_at is not None:
                await self._storage.set_next_digest(chat.chat_id, None)
            return
        due = chat.next_digest_at
        if due is None:
            due = next_digest_at(chat.delivery, chat.tz, self._clock())
            await self._storage.set_next_digest(chat.chat_id, due)
        if due is not None:
            self._push(chat.chat_id, due)

    def forget(self, chat_id: int) -> None:
        """Stop scheduling a chat (it left or moved)."""
        self._due_at.pop(chat_id, None)

    def due_time(self, chat_id: int) -> float | None:
        """When the chat's next digest is due, if scheduled."""
        return self._due_at.get(chat_id)

    def _push(self, chat_id: int, due: float) -> None:
        self._due_at[chat_id] = due
        heapq.heappush(self._heap, (due, chat_id))

    def start_tick(self) -> bool:
        """Run the due digests in the background unless a run is going on (the job)."""
        if self._running is not None and not self._running.done():
            return False
        self._running = asyncio.create_task(self.run_due(), name="digests")
        return True

    async def stop(self) -> None:
        """Cancel a digest run in progress (shutdown; its chats' cursors are untouched)."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def run_due(self) -> int:
        """Deliver every due digest, then persist each chat's next due time."""
        now = self._clock()
        due: list[tuple[int, float]] = []
        while self._heap and self._heap[0][0] <= now:
            when, chat_id = heapq.heappop(self._heap)
            if self._due_at.get(chat_id) == when:
                del self._due_at[chat_id]
                due.append((chat_id, when))
        gate = asyncio.Semaphore(DIGEST_CONCURRENCY)

        async def one(chat_id: int, when: float) -> None:
            async with gate:  # bounds concurrent digests; the limiter paces the sends
                await self._run_one(chat_id, when)

        await asyncio.gather(*(one(c, w) for c, w in due))
        return len(due)

    async def _run_one(self, chat_id: int, when: float) -> None:
        chat = self._storage.chat(chat_id)
        if chat is None or not chat.active or not chat.delivery.is_digest:
            return
        try:
            outcome = await self._dispatcher.deliver(chat_id, digest=True)
        except Exception:
            logger.exception("digest for %s failed unexpectedly", chat_id)
            outcome = "retry"
        if outcome == "gone":
            return
        if outcome == "retry":
            self._push(chat_id, self._clock() + RETRY_DIGEST_S)
            return
        # The persisted due time is the slot this digest belongs to; ``when`` is later if
        # this was a retry, and must not shift an ``every`` schedule's phase.
        slot = chat.next_digest_at if chat.next_digest_at is not None else when
        now_chat = self._storage.chat(chat_id)
        if now_chat is None or (now_chat.delivery, now_chat.tz) != (chat.delivery, chat.tz):
            return  # /digest or /timezone changed it while this ran and rescheduled it
        nxt = next_digest_at(chat.delivery, chat.tz, self._clock(), previous=slot)
        if nxt is not None:
            await self._storage.set_next_digest(chat_id, nxt)
            self._push(chat_id, nxt)
