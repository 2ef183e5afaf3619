"""ImageVerdicts: remembered answers about image URLs, bounded and expiring, single flight."""

from __future__ import annotations

import asyncio

from bot.services.image_verdicts import ImageVerdicts
from tests.helpers.scripted import FakeClock

A = "https://img.example/a.jpg"
B = "https://img.example/b.jpg"


async def test_an_unknown_image_is_asked_about_then_the_answer_is_kept() -> None:
    verdicts = ImageVerdicts()
    assert await verdicts.turn(A) == "ask"
    verdicts.settle(A, False)
    assert await verdicts.turn(A) == "text"
    assert await verdicts.turn(B) == "ask"
    verdicts.settle(B, True)
    assert await verdicts.turn(B) == "photo"


async def test_verdicts_expire() -> None:
    clock = FakeClock(1000.0)
    verdicts = ImageVerdicts(ttl_s=3600, clock=clock)
    assert await verdicts.turn(A) == "ask"
    verdicts.settle(A, False)
    clock.advance(3599)
    assert await verdicts.turn(A) == "text"
    clock.advance(1)
    assert await verdicts.turn(A) == "ask"  # the site may have fixed its image


async def test_at_most_max_urls_are_kept_oldest_dropped_first() -> None:
    verdicts = ImageVerdicts(max_urls=3)
    urls = [f"https://img.example/{n}.jpg" for n in range(5)]
    for url in urls:
        assert await verdicts.turn(url) == "ask"
        verdicts.settle(url, False)
    assert len(verdicts) == 3
    assert await verdicts.turn(urls[4]) == "text"
    assert await verdicts.turn(urls[0]) == "ask"  # forgotten


async def test_concurrent_sends_wait_for_the_one_asking() -> None:
    verdicts = ImageVerdicts()
    assert await verdicts.turn(A) == "ask"
    waiting = [asyncio.create_task(verdicts.turn(A)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)
    verdicts.settle(A, False)
    assert await asyncio.gather(*waiting) == ["text"] * 5


async def test_an_answer_that_says_nothing_lets_the_next_send_ask() -> None:
    verdicts = ImageVerdicts()
    assert await verdicts.turn(A) == "ask"
    waiting = [asyncio.create_task(verdicts.turn(A)) for _ in range(3)]
    await asyncio.sleep(0.01)
    verdicts.settle(A, None)  # e.g. the asking chat had blocked the bot
    await asyncio.sleep(0.01)
    [asker] = [task for task in waiting if task.done()]  # one waiter asks next
    assert asker.result() == "ask" and len(verdicts) == 0
    verdicts.settle(A, True)
    assert await asyncio.gather(*(t for t in waiting if t is not asker)) == ["photo"] * 2


async def test_a_slow_ask_does_not_hold_the_others_forever() -> None:
    verdicts = ImageVerdicts(wait_s=0.02)
    assert await verdicts.turn(A) == "ask"
    assert await verdicts.turn(A) == "ask"  # waited 20 ms, then asks too
    verdicts.settle(A, True)
    verdicts.settle(A, True)  # the first asker answers late: harmless
    assert await verdicts.turn(A) == "photo"
