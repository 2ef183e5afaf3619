from datetime import UTC, datetime, timedelta

import pytest

from bot.models import SEEN_LIMIT, Channel, DigestSchedule, FeedItem
from bot.services.digest import DIGEST_MAX_ITEMS, ScheduleError, parse_schedule, pick_new


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], None),
        (["show"], None),
        (["off"], DigestSchedule("off")),
        (["every", "30m"], DigestSchedule("every", interval_s=1800)),
        (["every", "2h"], DigestSchedule("every", interval_s=7200)),
        (["every", "2", "hours"], DigestSchedule("every", interval_s=7200)),
        (["every", "1d"], DigestSchedule("every", interval_s=86400)),
        (["at", "08:00"], DigestSchedule("at", at="08:00")),
        (["AT", "8:05"], DigestSchedule("at", at="08:05")),
    ],
)
def test_parse_schedule(args: list[str], expected: DigestSchedule | None) -> None:
    assert parse_schedule(args) == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["every", "5m"], "between 15 minutes and 7 days"),
        (["every", "8d"], "between 15 minutes and 7 days"),
        (["every", "soon"], "intervals like"),
        (["at", "25:00"], "HH:MM"),
        (["at", "8am"], "HH:MM"),
        (["weekly"], "Usage"),
        (["every"], "Usage"),
    ],
)
def test_parse_schedule_refuses_with_a_reason(args: list[str], fragment: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedule(args)
    assert fragment in str(err.value)


def _items(n: int) -> list[FeedItem]:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    return [
        FeedItem(f"id{i}", f"t{i}", None, now - timedelta(minutes=i), "S", "http://f")
        for i in range(n)
    ]


def test_pick_new_caps_and_remembers_everything_unsent() -> None:
    channel = Channel(chat_id=1, seen=["id0", "id1"])
    items = _items(30)
    to_send, remember = pick_new(channel, items)
    assert [i.id for i in to_send] == [f"id{i}" for i in range(2, 2 + DIGEST_MAX_ITEMS)]
    assert remember == [f"id{i}" for i in range(2, 30)]
    channel.remember_sent(remember)
    assert pick_new(channel, items) == ([], [])


def test_seen_set_is_bounded_and_keeps_newest() -> None:
    channel = Channel(chat_id=1)
    channel.remember_sent([f"x{i}" for i in range(SEEN_LIMIT + 50)])
    assert len(channel.seen) == SEEN_LIMIT
    assert channel.seen[-1] == f"x{SEEN_LIMIT + 49}"
    assert "x0" not in channel.seen
