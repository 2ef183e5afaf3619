"""Delivery schedules: parsing /digest and DEFAULT_DELIVERY, time zones, and next due times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.i18n import translator
from bot.models import Chat, Delivery
from bot.services.schedule import (
    MAX_INTERVAL_S,
    USAGE,
    ScheduleError,
    describe,
    next_digest_at,
    parse_delivery,
    parse_timezone,
)

HOUR = 3600
EN = translator("en")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


# ---------------------------------------------------------------------------- parse_delivery


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([], None),
        (["show"], None),
        (["off"], Delivery()),
        (["instant"], Delivery()),
        (["OFF"], Delivery()),
        (["every", "30m"], Delivery("every", interval_s=1800)),
        (["every", "2h"], Delivery("every", interval_s=7200)),
        (["every", "2", "hours"], Delivery("every", interval_s=7200)),
        (["every", "90", "minutes"], Delivery("every", interval_s=5400)),
        (["every", "1d"], Delivery("every", interval_s=86400)),
        (["every", "7d"], Delivery("every", interval_s=MAX_INTERVAL_S)),
        (["at", "08:00"], Delivery("at", at="08:00")),
        (["AT", "8:05"], Delivery("at", at="08:05")),
        (["at", "23:59"], Delivery("at", at="23:59")),
        (["  every ", " 1h "], Delivery("every", interval_s=3600)),
    ],
)
def test_parse_delivery_accepts(words: list[str], expected: Delivery | None) -> None:
    assert parse_delivery(words, 900) == expected


@pytest.mark.parametrize(
    ("words", "fragment"),
    [
        (["every", "soon"], "intervals like 30m, 2h or 1d"),
        (["every", "2", "fortnights"], "intervals like"),
        (["every", "0m"], "between 15m and 7 days"),
        (["every", "14m"], "between 15m and 7 days"),
        (["every", "8d"], "between 15m and 7 days"),
        (["at", "25:00"], "HH:MM"),
        (["at", "8am"], "HH:MM"),
        (["at", "08:60"], "HH:MM"),
        (["weekly"], USAGE),
        (["every"], USAGE),
        (["at"], USAGE),
        (["at", "08:00", "daily"], USAGE),
    ],
)
def test_parse_delivery_refuses_with_a_reason(words: list[str], fragment: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_delivery(words, 900)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("min_interval_s", "shortest_ok", "too_short", "named"),
    [(60, "1m", None, "1m"), (900, "15m", "14m", "15m"), (3600, "1h", "59m", "1h")],
)
def test_the_shortest_interval_follows_digest_min_interval(
    min_interval_s: int, shortest_ok: str, too_short: str | None, named: str
) -> None:
    delivery = parse_delivery(["every", shortest_ok], min_interval_s)
    assert delivery is not None
    assert delivery.interval_s == min_interval_s
    for refused in filter(None, (too_short, "0m", "8d")):
        with pytest.raises(ScheduleError) as err:
            parse_delivery(["every", refused], min_interval_s)
        assert f"between {named} and 7 days" in str(err.value)


def test_describe() -> None:
    assert describe(Delivery(), "UTC", t=EN).startswith("instant")
    assert describe(Delivery("every", interval_s=7200), "UTC", t=EN) == "a digest every 2h"
    assert describe(Delivery("every", interval_s=5400), "UTC", t=EN) == "a digest every 90m"
    assert describe(Delivery("every", interval_s=86400), "UTC", t=EN) == "a digest every 1d"
    assert (
        describe(Delivery("at", at="08:00"), "Europe/Berlin", t=EN)
        == "a daily digest at 08:00 (Europe/Berlin)"
    )


def test_describe_in_russian() -> None:
    ru = translator("ru")
    assert describe(Delivery("every", interval_s=7200), "UTC", t=ru) == "дайджест раз в 2 ч"
    assert describe(Delivery("every", interval_s=5400), "UTC", t=ru) == "дайджест раз в 90 мин"
    assert (
        describe(Delivery("at", at="08:00"), "Europe/Moscow", t=ru)
        == "ежедневный дайджест в 08:00 (Europe/Moscow)"
    )


def test_schedule_errors_render_in_the_askers_language() -> None:
    with pytest.raises(ScheduleError) as err:
        parse_delivery(["every", "5m"], 900)
    assert err.value.text(translator("ru")) == "Интервал должен быть от 15 мин до 7 дней."
    assert err.value.text(EN) == str(err.value) == "The interval must be between 15m and 7 days."
    with pytest.raises(ScheduleError) as usage:
        parse_delivery(["weekly"], 900)
    assert usage.value.text(translator("ru")).startswith("Использование: /digest — ")


# ---------------------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("  AMERICA/NEW_YORK ", "America/New_York"),
        ("asia/tokyo", "Asia/Tokyo"),
        ("utc", "UTC"),
        ("GMT", "UTC"),
    ],
)
def test_parse_timezone_is_case_insensitive(given: str, canonical: str) -> None:
    assert parse_timezone(given) == canonical


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "Berlin", "", "../../etc/passwd", "+02:00"])
def test_parse_timezone_refuses_with_a_clear_error(bad: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_timezone(bad)
    assert "IANA name such as Europe/Berlin" in str(err.value)


# ---------------------------------------------------------------------------- next_digest_at


def test_every_starts_one_interval_from_now_without_a_previous_due_time() -> None:
    now = utc(2026, 3, 1, 10, 17)
    assert next_digest_at(Delivery("every", interval_s=HOUR), "UTC", now) == now + HOUR


@pytest.mark.parametrize("late_by", [0, 1, HOUR - 1, HOUR, 5 * HOUR + 30])
def test_every_keeps_its_phase(late_by: int) -> None:
    previous = utc(2026, 3, 1, 10)
    now = previous + late_by
    nxt = next_digest_at(Delivery("every", interval_s=HOUR), "UTC", now, previous=previous)
    assert nxt is not None
    assert nxt > now
    assert nxt - now <= HOUR
    assert (nxt - previous) % HOUR == 0


def test_every_with_a_previous_due_time_far_in_the_future_restarts_from_now() -> None:
    now = utc(2026, 3, 1, 10)
    nxt = next_digest_at(Delivery("every", interval_s=HOUR), "UTC", now, previous=now + 10 * HOUR)
    assert nxt == now + HOUR  # a clock set back must not delay the digest for hours


def test_instant_has_no_due_time() -> None:
    assert next_digest_at(Delivery(), "UTC", utc(2026, 3, 1)) is None


@pytest.mark.parametrize(
    ("tz", "at", "now", "expected"),
    [
        ("UTC", "08:00", utc(2026, 1, 10, 7, 59), utc(2026, 1, 10, 8)),
        ("UTC", "08:00", utc(2026, 1, 10, 8), utc(2026, 1, 11, 8)),  # strictly after now
        ("Europe/Berlin", "08:00", utc(2026, 1, 10, 6), utc(2026, 1, 10, 7)),  # CET = UTC+1
        ("Europe/Berlin", "08:00", utc(2026, 1, 10, 7, 30), utc(2026, 1, 11, 7)),
        ("Europe/Berlin", "08:00", utc(2026, 7, 10, 5), utc(2026, 7, 10, 6)),  # CEST = UTC+2
        ("America/New_York", "08:00", utc(2026, 1, 10, 12), utc(2026, 1, 10, 13)),  # EST
        ("America/New_York", "23:30", utc(2026, 1, 11, 3), utc(2026, 1, 11, 4, 30)),
        # Berlin springs forward on 2026-03-29: 08:00 comes 23 hours after the day before's.
        ("Europe/Berlin", "08:00", utc(2026, 3, 28, 7, 0, 1), utc(2026, 3, 29, 6)),
        # ...and 02:30 does not exist that day: the digest comes at 03:30 CEST, once.
        ("Europe/Berlin", "02:30", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 30)),
        ("Europe/Berlin", "02:30", utc(2026, 3, 29, 1, 30, 1), utc(2026, 3, 30, 0, 30)),
        # Berlin falls back on 2026-10-25: 02:30 happens twice; the digest comes once.
        ("Europe/Berlin", "02:30", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        ("Europe/Berlin", "02:30", utc(2026, 10, 25, 0, 30, 1), utc(2026, 10, 26, 1, 30)),
        # New York falls back on 2026-11-01: 08:00 comes 25 hours after the day before's.
        ("America/New_York", "08:00", utc(2026, 10, 31, 12, 0, 1), utc(2026, 11, 1, 13)),
        ("America/New_York", "08:00", utc(2026, 3, 7, 13, 0, 1), utc(2026, 3, 8, 12)),
    ],
)
def test_at_is_in_the_chats_time_zone(tz: str, at: str, now: float, expected: float) -> None:
    assert next_digest_at(Delivery("at", at=at), tz, now) == expected


def test_an_unknown_persisted_time_zone_falls_back_to_utc() -> None:
    now = utc(2026, 1, 10, 6)
    assert next_digest_at(Delivery("at", at="08:00"), "Not/AZone", now) == utc(2026, 1, 10, 8)


# ---------------------------------------------------------------------------- invalid schedules


@pytest.mark.parametrize(
    "raw",
    [
        {"mode": "at", "at": "25:00"},
        {"mode": "at", "at": None},
        {"mode": "every", "interval_s": 0},
        {"mode": "every", "interval_s": "3600"},
        {"mode": "every", "interval_s": True},
        {"mode": "weekly"},
    ],
)
def test_an_invalid_schedule_is_refused_but_never_fatal_when_persisted(
    raw: dict[str, object],
) -> None:
    with pytest.raises(ValueError):
        Delivery.from_dict(raw)
    chat = Chat.from_dict({"chat_id": 5, "delivery": raw, "tz": "Europe/Berlin"})
    assert chat.delivery == Delivery()  # falls back to instant delivery
    assert chat.tz == "Europe/Berlin"
