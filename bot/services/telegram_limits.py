"""Outgoing Bot API pacing and retries: :class:`TelegramRateLimiter`, a PTB ``BaseRateLimiter``.

Telegram's flood rules (Bot FAQ) are about 30 messages a second per bot, 20 a minute into one
group or channel, and about one a second into one chat; going over them earns a 429 with
``retry_after``. PTB's :class:`~telegram.ext.AIORateLimiter` applies the first two and pauses
everything on a 429, and this module keeps exactly those rules and that pause. It cannot be
composed as-is, though, because its overall limiter is one FIFO (a 10,000-message fan-out
would sit in front of every ``/news`` reply for five minutes), it waits for the overall slot
while already holding the group's, it has no per-chat pace and it never retries a 5xx. So the
rules are reimplemented here, in three steps per message:

1. **Chat gate.** Wait, holding nothing, until the chat's bucket (``chat_rate`` per second,
   bursts of ``chat_burst``) and, for a group/channel (negative id or ``@username``, as in
   AIORateLimiter), the group's bucket (``group_max_per_minute`` per 60 s, the same leaky
   bucket as AIORateLimiter's ``AsyncLimiter(20, 60)``) would allow a message. A sender
   waiting on one chat's pace therefore never blocks other chats.
2. **Priority slot.** One dispatcher hands out send slots, evenly spaced at ``overall_rate``
   per second, always to the oldest *interactive* waiter first, then to the oldest *bulk* one.
   A bulk backlog of any size adds at most one slot (1/30 s) to an interactive reply. The
   chat and group tokens are taken at the moment the slot is granted (= the moment of the
   send); if another message to the same chat took them meanwhile, the waiter goes back to
   step 1 and the slot goes to the next waiter.
3. **Send and retry.** ``RetryAfter`` pauses every paced send for ``retry_after`` + 0.1 s
   (like AIORateLimiter) and is retried at most ``RetryPolicy.max_retry_after`` times.
   ``NetworkError`` — which is what PTB raises for HTTP 5xx (502 Bad Gateway, 500, ...), for
   connection errors and, as its subclass ``TimedOut``, for timeouts — is retried with
   exponential backoff and jitter up to ``RetryPolicy.max_attempts`` attempts. Nothing else is
   retried (``BadRequest`` is a ``NetworkError`` subclass in PTB and is excluded explicitly;
   ``Forbidden``, ``ChatMigrated``, ``InvalidToken``, ``Conflict`` are not network errors).
   After the last attempt the last exception propagates unchanged.

Only methods that post a new message into a chat (``send*`` except ``sendChatAction``,
``copyMessage(s)``, ``forwardMessage(s)``) with a ``chat_id`` are paced; ``getMe``,
``setMyCommands``, ``getChatMember``, ``sendChatAction``... go straight through (they are not
messages, and an admin check must not wait behind a fan-out), but are still retried.
``getUpdates`` never reaches a rate limiter (PTB's ``ExtBot._do_post`` bypasses it).

Duplicates, honestly: a ``TimedOut`` (or a connection dropped after the request was written)
may mean Telegram *did* post the message and only the answer was lost; retrying then posts it
twice. The Bot API has no idempotency key, so a client can only choose between "maybe twice"
and "maybe never". For a news bot a rare duplicate is the lesser harm, and it is what grammY's
auto-retry plugin and Telethon do too. To keep such timeouts rare, paced sends get a generous
read timeout (``RetryPolicy.read_timeout_s``) unless the caller set one; a 502/500 answer
means the message was not posted, so retrying those never duplicates.

Concurrency: everything runs on one event loop; state is only changed between ``await``s, so
no lock is needed (the dispatcher and the waiters hand over through futures).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import random
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter
from telegram.request import BaseRequest
from telegram.warnings import PTBDeprecationWarning

logger = logging.getLogger(__name__)


class SendClass(enum.Enum):
    """Priority of a Bot API call, passed as ``rate_limit_args``.

    Members are truthy on purpose: PTB drops a falsy ``rate_limit_args``.
    """

    INTERACTIVE = "interactive"
    BULK = "bulk"


INTERACTIVE = SendClass.INTERACTIVE
"""Replies to a user (``/news``, command answers): served before any bulk send. The default."""
BULK = SendClass.BULK
"""Fan-out and digests: may wait as long as needed, retried harder."""

OVERALL_RATE_PER_S = 30.0
"""Telegram: "no more than 30 messages per second" per bot."""
GROUP_MAX_PER_MINUTE = 20.0
"""Telegram: "no more than 20 messages per minute in the same group" (channels alike)."""
CHAT_RATE_PER_S = 1.0
"""Telegram: "avoid sending more than one message per second" into one chat..."""
CHAT_BURST = 3
"""...but a short burst is tolerated; three lets a 3-part ``/news`` answer go out at once."""
RETRY_AFTER_MARGIN_S = 0.1
"""Added to ``retry_after`` before sending again (AIORateLimiter's margin)."""
_GROUP_PERIOD_S = 60.0
# Drop full (= idle) chat buckets once the table grows past this; they carry no information.
_PRUNE_MIN_SIZE = 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one class of calls is retried.

    Attributes:
        max_attempts: total attempts on ``NetworkError``/``TimedOut`` (5xx, network), ≥ 1.
        base_delay_s: backoff before the second attempt; doubles per attempt.
        max_delay_s: cap of one backoff.
        max_retry_after: how many 429s are waited out before the ``RetryAfter`` propagates.
        read_timeout_s: read timeout for paced sends whose caller did not set one.
    """

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    max_retry_after: int
    read_timeout_s: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_retry_after < 0:
            raise ValueError("max_attempts must be ≥ 1 and max_retry_after ≥ 0")
        if not 0 < self.base_delay_s <= self.max_delay_s or self.read_timeout_s <= 0:
            raise ValueError("need 0 < base_delay_s <= max_delay_s and read_timeout_s > 0")

    def backoff_s(self, retry: int, jitter: float) -> float:
        """Delay before retry number ``retry`` (0-based), given ``jitter`` in [0, 1).

        "Equal jitter": half of the capped exponential delay is fixed, half random, so the
        delay still grows (unlike full jitter) while concurrent senders spread out.
        """
        cap = min(self.max_delay_s, self.base_delay_s * 2**retry)
        return cap / 2 + cap / 2 * jitter

    @property
    def max_total_backoff_s(self) -> float:
        """Upper bound of all backoff sleeps together (429 waits not included)."""
        return sum(
            min(self.max_delay_s, self.base_delay_s * 2**i) for i in range(self.max_attempts - 1)
        )


INTERACTIVE_RETRY = RetryPolicy(
    max_attempts=3, base_delay_s=0.5, max_delay_s=2.0, max_retry_after=2, read_timeout_s=10.0
)
"""Replies: 3 attempts, backoff ≤ 0.5 + 1 s (1.5 s; within ~5 s even with slow answers)."""
BULK_RETRY = RetryPolicy(
    max_attempts=6, base_delay_s=1.0, max_delay_s=30.0, max_retry_after=5, read_timeout_s=30.0
)
"""Fan-out: 6 attempts, backoff ≤ 1 + 2 + 4 + 8 + 16 s (31 s; well within a minute)."""

ChatKey = int | str
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
_Callback = Callable[..., Coroutine[Any, Any, Any]]

_MESSAGE_METHODS_OTHER = frozenset(
    {"copymessage", "copymessages", "forwardmessage", "forwardmessages"}
)


def is_message_method(endpoint: str) -> bool:
    """True for Bot API methods that post a new message (the ones Telegram's limits count)."""
    name = endpoint.lower()
    return (name.startswith("send") and name != "sendchataction") or name in _MESSAGE_METHODS_OTHER


def chat_key(chat_id: object) -> ChatKey | None:
    """Normalise a ``chat_id`` parameter: an int, a lower-cased ``@username``, or None."""
    if chat_id is None or isinstance(chat_id, bool):
        return None
    if isinstance(chat_id, int):
        return chat_id
    text = str(chat_id).strip()
    with contextlib.suppress(ValueError):
        return int(text)
    return text.lower() or None


def is_group_key(key: ChatKey) -> bool:
    """Groups, supergroups and channels: a negative id or an ``@username`` (never a user)."""
    return isinstance(key, str) or key < 0


def retry_after_s(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds, whether PTB gives an int or a timedelta."""
    with warnings.catch_warnings():  # the int form is deprecated since PTB 22.2
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; one message takes one token."""

    __slots__ = ("_capacity", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_s(self, now: float) -> float:
        """Seconds until one token is available (0 if it is now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self._capacity


class _BucketTable:
    """Token buckets by chat, created on demand; idle (full) ones are pruned in O(1) amortised."""

    def __init__(self, rate: float, capacity: float) -> None:
        self._rate = rate
        self._capacity = capacity
        self._buckets: dict[ChatKey, _TokenBucket] = {}
        self._prune_at = _PRUNE_MIN_SIZE

    def wait_s(self, key: ChatKey, now: float) -> float:
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait_s(now)

    def take(self, key: ChatKey, now: float) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[key] = _TokenBucket(self._rate, self._capacity, now)
        bucket.take(now)

    def _prune(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.is_full(now)}
        self._prune_at = max(_PRUNE_MIN_SIZE, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class _Waiter:
    key: ChatKey
    future: asyncio.Future[bool]


class TelegramRateLimiter(BaseRateLimiter[SendClass | None]):
    """Paces message sends to Telegram's limits with interactive-first priority; retries.

    Wire it with ``ApplicationBuilder().rate_limiter(TelegramRateLimiter(...))`` and mark
    fan-out calls ``bot.send_message(..., rate_limit_args=BULK)``; everything else is
    :data:`INTERACTIVE`. See the module docstring for the rules.
    """

    def __init__(
        self,
        *,
        overall_rate: float = OVERALL_RATE_PER_S,
        group_max_per_minute: float = GROUP_MAX_PER_MINUTE,
        chat_rate: float = CHAT_RATE_PER_S,
        chat_burst: int = CHAT_BURST,
        interactive_retry: RetryPolicy = INTERACTIVE_RETRY,
        bulk_retry: RetryPolicy = BULK_RETRY,
        on_retry: Callable[[str], None] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Configure the limits (defaults: Telegram's) and the retry policies.

        Args:
            overall_rate: send slots per second for the whole bot (``math.inf``: unpaced).
            group_max_per_minute: messages per 60 s into one group/supergroup/channel.
            chat_rate: sustained messages per second into one chat.
            chat_burst: messages one chat may get back to back before ``chat_rate`` applies.
            interactive_retry: retry policy for :data:`INTERACTIVE` calls.
            bulk_retry: retry policy for :data:`BULK` calls.
            on_retry: called once per retry with ``"rate_limited"``, ``"timeout"`` or
                ``"network"`` (the ``telegram_api_errors`` kinds), e.g. to count them.
            clock: monotonic seconds; injectable for tests.
            sleep: the coroutine used for every wait; injectable for tests.
            jitter: uniform [0, 1) source for backoff jitter; injectable for tests.

        Raises:
            ValueError: for a rate, burst or limit that is not positive.
        """
        if not (overall_rate > 0 and group_max_per_minute > 0 and chat_rate > 0):
            raise ValueError("rates must be positive")
        if chat_burst < 1:
            raise ValueError("chat_burst must be at least 1")
        self._interval = 1.0 / overall_rate
        self._chats = _BucketTable(chat_rate, chat_burst)
        self._groups = _BucketTable(group_max_per_minute / _GROUP_PERIOD_S, group_max_per_minute)
        self._policies = {INTERACTIVE: interactive_retry, BULK: bulk_retry}
        self._on_retry = on_retry
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        # Dispatcher state (event-loop only, no lock: see the module docstring).
        self._queues: dict[SendClass, deque[_Waiter]] = {INTERACTIVE: deque(), BULK: deque()}
        self._waiting = dict.fromkeys(SendClass, 0)
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._dispatcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ BaseRateLimiter

    async def initialize(self) -> None:
        """Nothing to open: the dispatcher starts on demand."""

    async def shutdown(self) -> None:
        """Stop the dispatcher; waiting sends end with ``CancelledError``."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        for queue in self._queues.values():
            for waiter in queue:
                waiter.future.cancel()
            queue.clear()

    async def process_request(  # noqa: PLR0917 - PTB's signature
        self,
        callback: _Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: SendClass | None,
    ) -> Any:
        """Pace (message methods with a chat), send, and retry per the call's class.

        Raises:
            TypeError: ``rate_limit_args`` is not a :class:`SendClass`.
            telegram.error.TelegramError: the last error once retries are used up, or at once
                for errors that are never retried.
        """
        send_class = rate_limit_args or INTERACTIVE
        if not isinstance(send_class, SendClass):
            raise TypeError(f"rate_limit_args must be a SendClass, not {type(send_class)!r}")
        policy = self._policies[send_class]
        key = chat_key(data.get("chat_id")) if is_message_method(endpoint) else None
        if key is not None and kwargs.get("read_timeout") is BaseRequest.DEFAULT_NONE:
            kwargs = {**kwargs, "read_timeout": policy.read_timeout_s}
        failures = 0
        rate_limited = 0
        while True:
            if key is not None:
                await self._acquire(key, send_class)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if rate_limited >= policy.max_retry_after:
                    logger.warning(
                        "%s: 429 again after %d waits; giving up", endpoint, rate_limited
                    )
                    raise
                rate_limited += 1
                delay = retry_after_s(exc) + RETRY_AFTER_MARGIN_S
                logger.info("%s: 429, pausing paced sends for %.1f s", endpoint, delay)
                self._paused_until = max(self._paused_until, self._clock() + delay)
                self._count_retry("rate_limited")
                if key is None:  # paced sends wait for the pause in the dispatcher
                    await self._sleep(delay)
            except BadRequest:
                raise  # a malformed request stays malformed
            except NetworkError as exc:  # 5xx, connection errors, TimedOut
                failures += 1
                if failures >= policy.max_attempts:
                    logger.warning("%s: %s after %d attempts; giving up", endpoint, exc, failures)
                    raise
                delay = policy.backoff_s(failures - 1, self._jitter())
                logger.info("%s: %s; retry %d in %.2f s", endpoint, exc, failures, delay)
                self._count_retry("timeout" if isinstance(exc, TimedOut) else "network")
                await self._sleep(delay)

    # ------------------------------------------------------------------ introspection

    def queued(self, priority: SendClass) -> int:
        """Paced sends of ``priority`` waiting now (for their chat's pace or for a slot)."""
        return self._waiting[priority]

    # ------------------------------------------------------------------ pacing

    def _count_retry(self, kind: str) -> None:
        if self._on_retry is not None:
            self._on_retry(kind)

    def _gate_wait_s(self, key: ChatKey, now: float) -> float:
        wait = self._chats.wait_s(key, now)
        if is_group_key(key):
            wait = max(wait, self._groups.wait_s(key, now))
        return wait

    async def _acquire(self, key: ChatKey, send_class: SendClass) -> None:
        """Return once a slot was granted and the chat's (and group's) token taken."""
        self._waiting[send_class] += 1
        try:
            while True:
                wait = self._gate_wait_s(key, self._clock())
                if wait > 0:
                    await self._sleep(wait)
                future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self._queues[send_class].append(_Waiter(key, future))
                if self._dispatcher is None:
                    self._dispatcher = asyncio.create_task(self._dispatch(), name="tg-pacer")
                if await future:
                    return
        finally:
            self._waiting[send_class] -= 1

    def _next_queue(self) -> deque[_Waiter] | None:
        """The interactive queue if it has a live waiter, else the bulk one, else None."""
        for send_class in (INTERACTIVE, BULK):
            queue = self._queues[send_class]
            while queue and queue[0].future.done():  # done = its sender was cancelled
                queue.popleft()
            if queue:
                return queue
        return None

    async def _dispatch(self) -> None:
        """Grant slots while anyone waits; exits when the queues are empty."""
        try:
            while (queue := self._next_queue()) is not None:
                now = self._clock()
                ready_at = max(self._next_slot, self._paused_until)
                if now < ready_at:
                    await self._sleep(ready_at - now)
                    continue  # an interactive waiter may have arrived meanwhile
                waiter = queue.popleft()
                if self._gate_wait_s(waiter.key, now) > 0:
                    waiter.future.set_result(False)  # raced by its own chat: back to the gate
                    continue
                self._chats.take(waiter.key, now)
                if is_group_key(waiter.key):
                    self._groups.take(waiter.key, now)
                # Keep the cadence across timer lateness (less than a slot late: the next
                # slot stays where it was due), so the average rate holds; after idling,
                # start afresh from now. Never more than two sends back to back.
                on_cadence = now - self._next_slot < self._interval
                self._next_slot = (self._next_slot if on_cadence else now) + self._interval
                waiter.future.set_result(True)
        finally:
            self._dispatcher = None
