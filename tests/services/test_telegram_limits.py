"""TelegramRateLimiter: priority, pacing, 429 and 5xx retries.

Most tests run the limiter on a virtual clock (:class:`VirtualTime`): its ``sleep`` parks the
caller until the test driver advances time, so pacing is checked on exact virtual timestamps
while real asyncio tasks run concurrently, and nothing depends on the wall clock. The last
group goes through the real PTB stack (``ExtBot`` → HTTP → the fake Bot API with Telegram's
flood limits on) in real time, asserting only outcomes and counts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ExtBot
from telegram.request import BaseRequest, HTTPXRequest

from bot.services.telegram_limits import (
    BULK,
    BULK_RETRY,
    CHAT_BURST,
    INTERACTIVE,
    INTERACTIVE_RETRY,
    OVERALL_RATE_PER_S,
    RETRY_AFTER_MARGIN_S,
    RetryPolicy,
    SendClass,
    TelegramRateLimiter,
    chat_key,
    is_message_method,
)
from tests.helpers.fake_bot_api import FakeBotAPI

# RetryAfter(int) itself touches the deprecated int form of retry_after.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

# Loop iterations that let every runnable task reach its next wait (no real I/O involved).
_SETTLE_YIELDS = 30
_INTERVAL = 1 / OVERALL_RATE_PER_S
_EPS = 1e-9


class VirtualTime:
    """A clock and a ``sleep`` for the limiter; :meth:`run_until` advances time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(delay, 0.0), next(self._seq), future))
        await future

    @staticmethod
    async def settle() -> None:
        for _ in range(_SETTLE_YIELDS):
            await asyncio.sleep(0)

    async def run_until(self, done: Callable[[], bool], horizon_s: float = 100_000.0) -> None:
        """Let tasks run, jumping to the next timer whenever all are waiting, until ``done()``."""
        await self.settle()
        while not done():
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)
            if not self._timers:
                raise AssertionError("nothing left to wake and the condition still fails")
            when = self._timers[0][0]
            if when > horizon_s:
                raise AssertionError(f"condition still false at virtual t={when:.3f}")
            self.now = max(self.now, when)
            while self._timers and self._timers[0][0] <= self.now:
                _, _, future = heapq.heappop(self._timers)
                if not future.done():
                    future.set_result(None)
            await self.settle()


@dataclass
class Sent:
    endpoint: str
    chat_id: Any
    at: float
    kwargs: dict[str, Any]


@dataclass
class FakeTransport:
    """Stands in for ``Bot._do_post``: records each attempt, raises scripted errors."""

    vt: VirtualTime
    calls: list[Sent] = field(default_factory=list)
    errors: dict[Any, deque[TelegramError]] = field(default_factory=dict)

    def fail(self, chat_id: Any, *errors: TelegramError) -> None:
        self.errors.setdefault(chat_id, deque()).extend(errors)

    async def __call__(self, endpoint: str, data: dict[str, Any], **kwargs: Any) -> Any:
        chat_id = data.get("chat_id")
        self.calls.append(Sent(endpoint, chat_id, self.vt.now, kwargs))
        queue = self.errors.get(chat_id)
        if queue:
            raise queue.popleft()
        return {"message_id": len(self.calls), "chat": chat_id}

    def times(self, chat_id: Any = None) -> list[float]:
        return [c.at for c in self.calls if chat_id is None or c.chat_id == chat_id]


@dataclass
class Harness:
    vt: VirtualTime
    transport: FakeTransport
    limiter: TelegramRateLimiter
    retries: list[str]

    def send(
        self,
        chat_id: Any,
        send_class: SendClass | None = None,
        endpoint: str = "sendMessage",
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> asyncio.Task[Any]:
        data: dict[str, Any] = {} if chat_id is None else {"chat_id": chat_id}
        return asyncio.create_task(
            self.limiter.process_request(
                callback=self.transport,
                args=(endpoint, data),
                kwargs={"read_timeout": read_timeout, "pool_timeout": BaseRequest.DEFAULT_NONE},
                endpoint=endpoint,
                data=data,
                rate_limit_args=send_class,
            )
        )


def make_harness(**limits: Any) -> Harness:
    """A limiter on virtual time (jitter fixed at 0.5); ``limits`` override its defaults."""
    vt = VirtualTime()
    retries: list[str] = []
    limiter = TelegramRateLimiter(
        on_retry=retries.append, clock=vt.clock, sleep=vt.sleep, jitter=lambda: 0.5, **limits
    )
    return Harness(vt, FakeTransport(vt), limiter, retries)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = make_harness()
    yield harness
    await harness.limiter.shutdown()


def assert_conforms(times: Iterable[float], rate: float, burst: float) -> None:
    """Every run of consecutive sends fits a token bucket of ``burst`` refilled at ``rate``."""
    ts = sorted(times)
    for i in range(len(ts)):
        for j in range(i, len(ts)):
            allowed = burst + rate * (ts[j] - ts[i]) + _EPS
            assert j - i + 1 <= allowed, f"{j - i + 1} sends in {ts[j] - ts[i]:.3f} s"


# ============================================================== priority and overall pacing


async def test_interactive_reply_overtakes_a_10000_message_bulk_backlog(h: Harness) -> None:
    bulk = [h.send(100_000 + n, BULK) for n in range(10_000)]
    await h.vt.run_until(lambda: len(h.transport.calls) >= 5)
    assert h.limiter.queued(BULK) == 10_000 - 5
    reply = h.send(42)  # no rate_limit_args: interactive
    await h.vt.settle()
    assert h.limiter.queued(INTERACTIVE) == 1
    sent_before = len(h.transport.calls)
    await h.vt.run_until(reply.done)

    assert (await reply)["chat"] == 42
    bulk_overtaking = len(h.transport.calls) - 1 - sent_before
    assert bulk_overtaking <= 1  # at most the slot that was already due
    assert h.limiter.queued(INTERACTIVE) == 0
    assert sum(t.done() for t in bulk) < 10  # the backlog is still there
    for task in bulk:
        task.cancel()
    await asyncio.gather(*bulk, return_exceptions=True)
    assert h.limiter.queued(BULK) == 0


async def test_interactive_first_among_ready_waiters_and_bulk_still_progresses(
    h: Harness,
) -> None:
    bulk = [h.send(1000 + n, BULK) for n in range(20)]
    await h.vt.settle()  # the first bulk send takes the free slot; 19 wait
    replies = [h.send(n, INTERACTIVE) for n in range(1, 11)]
    await h.vt.run_until(lambda: all(t.done() for t in bulk + replies))
    order = [c.chat_id for c in h.transport.calls]
    assert order[0] == 1000
    assert order[1:11] == list(range(1, 11))  # every reply before any waiting bulk send
    assert order[11:] == list(range(1001, 1020))  # bulk in its own FIFO order


async def test_overall_rate_spaces_sends_evenly(h: Harness) -> None:
    tasks = [h.send(n, BULK) for n in range(1, 91)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    times = h.transport.times()
    assert len(times) == 90
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(_INTERVAL)
    assert_conforms(times, OVERALL_RATE_PER_S, 1)
    assert times[-1] == pytest.approx(89 * _INTERVAL)  # and no slower than the rate


# ============================================================== per-chat and per-group pacing


async def test_per_chat_pace_allows_a_small_burst_then_one_per_second(h: Harness) -> None:
    tasks = [h.send(7, INTERACTIVE) for _ in range(8)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    times = h.transport.times(7)
    assert len(times) == 8
    assert times[CHAT_BURST - 1] < 1.0  # the burst went out at once...
    assert_conforms(times, 1.0, CHAT_BURST)  # ...and never more than the bucket allows
    assert times[-1] == pytest.approx(5.0, abs=0.1)  # 5 more at 1/s after the burst


async def test_group_gets_at_most_20_a_minute() -> None:
    h = make_harness(chat_rate=100.0, chat_burst=100)  # isolate the group rule
    tasks = [h.send(-1001234, BULK) for _ in range(30)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    times = h.transport.times(-1001234)
    assert len(times) == 30
    assert_conforms(times, 20 / 60, 20)
    assert times[19] < 1.0  # 20 at once...
    assert times[20] >= 2.5  # ...then the 21st waited for the bucket (one per 3 s)
    await h.limiter.shutdown()


async def test_group_is_also_paced_as_a_chat(h: Harness) -> None:
    tasks = [h.send(-1001234, BULK) for _ in range(25)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    times = h.transport.times(-1001234)
    assert_conforms(times, 20 / 60, 20)
    assert_conforms(times, 1.0, CHAT_BURST)


async def test_username_chat_counts_as_a_group(h: Harness) -> None:
    tasks = [h.send("@SomeChannel", BULK) for _ in range(22)] + [h.send("@somechannel", BULK)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    times = h.transport.times("@SomeChannel") + h.transport.times("@somechannel")
    assert len(times) == 23
    assert_conforms(times, 1 / 3, 20)


async def test_a_chat_waiting_for_its_pace_never_blocks_other_chats(h: Harness) -> None:
    slow_chat = [h.send(5, BULK) for _ in range(10)]
    others = [h.send(500 + n, BULK) for n in range(20)]
    await h.vt.run_until(lambda: all(t.done() for t in others))
    # 20 other chats went out in the first second, while chat 5 is paced at 1/s.
    assert max(h.transport.times()[:23]) < 1.0
    assert sum(1 for t in slow_chat if t.done()) <= CHAT_BURST + 1
    await h.vt.run_until(lambda: all(t.done() for t in slow_chat))
    assert_conforms(h.transport.times(5), 1.0, CHAT_BURST)


async def test_a_cancelled_waiter_gives_up_its_place(h: Harness) -> None:
    first = [h.send(n, BULK) for n in range(1, 4)]
    doomed = h.send(99, BULK)
    last = h.send(100, BULK)
    await h.vt.settle()
    doomed.cancel()
    await h.vt.run_until(lambda: all(t.done() for t in [*first, last]))
    assert [c.chat_id for c in h.transport.calls] == [1, 2, 3, 100]
    assert h.limiter.queued(BULK) == 0


# ============================================================== what is not paced


@pytest.mark.parametrize("endpoint", ["getMe", "setMyCommands", "getChatMember", "sendChatAction"])
async def test_calls_that_post_no_message_are_not_paced(h: Harness, endpoint: str) -> None:
    backlog = [h.send(10_000 + n, BULK) for n in range(50)]
    chat = None if endpoint in ("getMe", "setMyCommands") else 42
    calls = [h.send(chat, endpoint=endpoint) for _ in range(40)]
    await h.vt.run_until(lambda: all(t.done() for t in calls))
    assert [c.at for c in h.transport.calls if c.endpoint == endpoint] == [0.0] * 40
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)


def test_message_methods_and_chat_keys() -> None:
    assert is_message_method("sendMessage") and is_message_method("SENDPHOTO")
    assert is_message_method("copyMessage") and is_message_method("forwardMessages")
    assert not is_message_method("sendChatAction") and not is_message_method("getChat")
    assert chat_key(-100123) == -100123 and chat_key("-100123") == -100123
    assert chat_key("@Chan") == "@chan" and chat_key(None) is None and chat_key("") is None


# ============================================================== 429


async def test_retry_after_pauses_all_paced_sends_then_retries(h: Harness) -> None:
    h.transport.fail(1, RetryAfter(5))
    first = h.send(1, BULK)
    await h.vt.run_until(lambda: len(h.transport.calls) == 1)
    others = [h.send(n, BULK) for n in range(2, 6)]
    reply = h.send(77)
    await h.vt.run_until(lambda: all(t.done() for t in [first, reply, *others]))

    resume = 5 + RETRY_AFTER_MARGIN_S
    assert all(c.at >= resume - _EPS for c in h.transport.calls[1:])
    assert h.transport.calls[1].chat_id == 77  # the reply still goes first after the pause
    assert [c.chat_id for c in h.transport.calls].count(1) == 2
    assert h.retries == ["rate_limited"]


async def test_retry_after_is_retried_a_bounded_number_of_times(h: Harness) -> None:
    h.transport.fail(3, *[RetryAfter(1) for _ in range(10)])
    task = h.send(3, INTERACTIVE)
    await h.vt.run_until(task.done)
    with pytest.raises(RetryAfter):
        await task
    assert len(h.transport.calls) == INTERACTIVE_RETRY.max_retry_after + 1
    assert h.retries == ["rate_limited"] * INTERACTIVE_RETRY.max_retry_after


async def test_retry_after_on_an_unpaced_call_waits_for_it(h: Harness) -> None:
    h.transport.fail(None, RetryAfter(2))
    task = h.send(None, endpoint="getMe")
    await h.vt.run_until(task.done)
    await task
    assert h.transport.times() == [0.0, pytest.approx(2 + RETRY_AFTER_MARGIN_S)]


# ============================================================== 5xx and network errors


async def test_two_502s_then_success_deliver_exactly_once(h: Harness) -> None:
    h.transport.fail(8, NetworkError("Bad Gateway"), NetworkError("Bad Gateway"))
    task = h.send(8, BULK)
    await h.vt.run_until(task.done)
    assert (await task)["chat"] == 8
    assert len(h.transport.calls) == 3
    assert h.retries == ["network", "network"]
    # Equal jitter with jitter=0.5: 3/4 of the capped exponential delay.
    backoffs = [s for s in h.vt.sleeps if s > _INTERVAL]
    assert backoffs == [0.75 * BULK_RETRY.base_delay_s, 1.5 * BULK_RETRY.base_delay_s]


async def test_interactive_500_three_times_raises_after_three_attempts(h: Harness) -> None:
    errors = [NetworkError("Internal Server Error") for _ in range(3)]
    h.transport.fail(9, *errors, NetworkError("never reached"))
    task = h.send(9)
    await h.vt.run_until(task.done)
    with pytest.raises(NetworkError) as info:
        await task
    assert info.value is errors[2]  # the last error itself, not a wrapper
    assert len(h.transport.calls) == INTERACTIVE_RETRY.max_attempts == 3
    assert h.vt.now <= INTERACTIVE_RETRY.max_total_backoff_s + 1


async def test_bulk_gives_up_after_six_attempts_within_a_minute(h: Harness) -> None:
    h.transport.fail(10, *[TimedOut() for _ in range(10)])
    task = h.send(10, BULK)
    await h.vt.run_until(task.done)
    with pytest.raises(TimedOut):
        await task
    assert len(h.transport.calls) == BULK_RETRY.max_attempts == 6
    assert h.retries == ["timeout"] * 5
    assert h.vt.now <= BULK_RETRY.max_total_backoff_s <= 60


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("Bad Request: can't parse entities"),
        Forbidden("Forbidden: bot was blocked by the user"),
        ChatMigrated(-1009),
        InvalidToken("Unauthorized"),
        Conflict("Conflict: terminated by other getUpdates request"),
        TelegramError("something else"),
    ],
)
async def test_permanent_errors_are_never_retried(h: Harness, error: TelegramError) -> None:
    h.transport.fail(11, error)
    task = h.send(11, BULK)
    await h.vt.run_until(task.done)
    with pytest.raises(type(error)):
        await task
    assert len(h.transport.calls) == 1
    assert h.retries == []


# ============================================================== details


async def test_paced_sends_get_a_generous_read_timeout_unless_set(h: Harness) -> None:
    tasks = [h.send(1, BULK), h.send(2), h.send(3, BULK, read_timeout=2.5), h.send(None, None)]
    await h.vt.run_until(lambda: all(t.done() for t in tasks))
    by_chat = {c.chat_id: c.kwargs["read_timeout"] for c in h.transport.calls}
    assert by_chat[1] == BULK_RETRY.read_timeout_s
    assert by_chat[2] == INTERACTIVE_RETRY.read_timeout_s
    assert by_chat[3] == 2.5
    assert by_chat[None] is BaseRequest.DEFAULT_NONE


async def test_rejects_foreign_rate_limit_args(h: Harness) -> None:
    with pytest.raises(TypeError, match="SendClass"):
        await h.limiter.process_request(
            h.transport,
            ("sendMessage", {}),
            {},
            "sendMessage",
            {},
            3,  # type: ignore[arg-type]
        )
    assert h.transport.calls == []


def test_constructor_and_policy_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        TelegramRateLimiter(overall_rate=0)
    with pytest.raises(ValueError, match="chat_burst"):
        TelegramRateLimiter(chat_burst=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(
            max_attempts=0, base_delay_s=1, max_delay_s=1, max_retry_after=0, read_timeout_s=1
        )
    assert INTERACTIVE_RETRY.max_total_backoff_s == 1.5
    assert BULK_RETRY.max_total_backoff_s == 31.0
    assert bool(BULK) and bool(INTERACTIVE)  # PTB drops falsy rate_limit_args


async def test_shutdown_cancels_waiting_sends(h: Harness) -> None:
    tasks = [h.send(n, BULK) for n in range(1, 50)]
    await h.vt.run_until(lambda: len(h.transport.calls) >= 2)
    await h.limiter.shutdown()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 40


# ============================================================== through PTB and the fake Bot API

_FAST_RETRY = RetryPolicy(
    max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, max_retry_after=2, read_timeout_s=10.0
)


@pytest.fixture
async def limited_api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(enforce_limits=True) as fake:
        for user_id in [*range(1, 100), *range(2000, 2100)]:  # the users these tests write to
            fake.start_private_chat(user_id)  # started the bot (it may not write first)
        yield fake


async def _ext_bot(
    fake: FakeBotAPI, limiter: TelegramRateLimiter, read_timeout: float = 5.0
) -> ExtBot[SendClass | None]:
    bot: ExtBot[SendClass | None] = ExtBot(
        fake.token,
        base_url=f"{fake.base_url}/bot",
        rate_limiter=limiter,
        request=HTTPXRequest(connection_pool_size=64, read_timeout=read_timeout),
    )
    await bot.initialize()
    return bot


async def test_ptb_two_502s_then_success_sends_one_message(limited_api: FakeBotAPI) -> None:
    retries: list[str] = []
    bot = await _ext_bot(
        limited_api, TelegramRateLimiter(interactive_retry=_FAST_RETRY, on_retry=retries.append)
    )
    try:
        limited_api.fail_next("sendMessage", 502, times=2)
        message = await bot.send_message(31, "hello")
    finally:
        await bot.shutdown()
    assert message.text == "hello"
    assert [c.status for c in limited_api.calls_to("sendMessage")] == [502, 502, 200]
    assert len(limited_api.sent_messages(31)) == 1
    assert retries == ["network", "network"]


async def test_ptb_500_three_times_raises_network_error(limited_api: FakeBotAPI) -> None:
    bot = await _ext_bot(limited_api, TelegramRateLimiter(interactive_retry=_FAST_RETRY))
    try:
        limited_api.fail_next("sendMessage", 500, times=3)
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(32, "hello")
    finally:
        await bot.shutdown()
    assert [c.status for c in limited_api.calls_to("sendMessage")] == [500, 500, 500]
    assert limited_api.sent_messages() == []


async def test_ptb_429_is_waited_out_and_forbidden_is_not_retried(limited_api: FakeBotAPI) -> None:
    bot = await _ext_bot(limited_api, TelegramRateLimiter(interactive_retry=_FAST_RETRY))
    limited_api.blocked_chats.add(34)
    try:
        limited_api.fail_next("sendMessage", 429, retry_after=1)
        await bot.send_message(33, "hello", rate_limit_args=BULK)
        with pytest.raises(Forbidden):
            await bot.send_message(34, "hello")
    finally:
        await bot.shutdown()
    first, second, third = limited_api.calls_to("sendMessage")
    assert (first.status, second.status, third.status) == (429, 200, 403)
    assert second.time - first.time >= 1.0  # retry_after honoured (a lower bound, not a timing)
    assert len(limited_api.sent_messages(33)) == 1


async def test_ptb_slow_answer_is_not_retried_thanks_to_the_send_read_timeout(
    limited_api: FakeBotAPI,
) -> None:
    # The transport's own read timeout (1 s) would give up on a 3 s answer and retry.
    bot = await _ext_bot(limited_api, TelegramRateLimiter(), read_timeout=1.0)
    limited_api.set_delay("sendMessage", 3)
    try:
        await bot.send_message(35, "slow")
    finally:
        await bot.shutdown()
    assert len(limited_api.calls_to("sendMessage")) == 1
    assert len(limited_api.sent_messages(35)) == 1


async def test_ptb_fan_out_with_replies_provokes_no_429(limited_api: FakeBotAPI) -> None:
    limiter = TelegramRateLimiter()
    bot = await _ext_bot(limited_api, limiter)
    try:
        fan_out = [
            asyncio.create_task(bot.send_message(2000 + n, f"item {n}", rate_limit_args=BULK))
            for n in range(45)
        ]
        await limited_api.wait_for_messages(5)
        replies = [asyncio.create_task(bot.send_message(36, f"reply {n}")) for n in range(5)]
        group = [asyncio.create_task(bot.send_message(-100777, "g")) for _ in range(4)]
        await asyncio.gather(*fan_out, *replies, *group)
    finally:
        await bot.shutdown()
    assert limited_api.limit_hits == 0
    assert len(limited_api.sent_messages()) == 45 + 5 + 4
    order = [m["chat_id"] for m in limited_api.sent_messages()]
    # The replies' burst went out at once instead of behind the ~40 queued fan-out messages.
    reply_positions = [i for i, chat in enumerate(order) if chat == 36]
    assert reply_positions[:CHAT_BURST] == sorted(reply_positions[:CHAT_BURST])
    assert max(reply_positions[:CHAT_BURST]) < 20 < order.index(2000 + 44)
