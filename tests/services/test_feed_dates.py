"""The RFC 822 shortcut must read every date exactly as feedparser does, or leave it to it.

Differential: thousands of generated dates — the common shape and its near misses (other
spellings, impossible days and times, offsets out of range, extreme years) — are read by
:func:`bot.services.feed_dates.parse_date` and by feedparser's own ``_parse_date``; the
results must be equal, and the shortcut must really be the path the common shape takes.
"""

from __future__ import annotations

import random
import time
from unittest import mock

import pytest
from feedparser.datetimes import _parse_date

from bot.services import feed_dates
from bot.services.feed_dates import parse_date

WEEKDAYS = ["Mon, ", "Sun, ", "Fri, ", "", "mon, ", "Thu,", "Xyz, "]
DAYS = ["1", "01", "9", "15", "28", "29", "30", "31", "0", "32", "001"]
MONTHS = ["Jan", "Feb", "Apr", "Jun", "Sep", "Dec", "jan", "DEC", "Sept", "Foo"]
YEARS = ["2024", "2023", "2000", "1900", "1899", "0001", "9999", "24", "99", "20245"]
TIMES = ["12:00:00", "00:00:00", "23:59:59", "24:00:00", "23:59:60", "12:60:00", "12:00",
         "7:05:09", "12:00:00.5"]  # fmt: skip
ZONES = ["+0000", "-0000", "+0200", "-0530", "+1400", "+2359", "-2359", "+9999", "-0099",
         "GMT", "UT", "UTC", "Z", "EST", "PDT", "+05:30", "gmt", "", "+000"]  # fmt: skip


def _date(rng: random.Random) -> str:
    zone = rng.choice(ZONES)
    text = (
        f"{rng.choice(WEEKDAYS)}{rng.choice(DAYS)} {rng.choice(MONTHS)} {rng.choice(YEARS)} "
        f"{rng.choice(TIMES)}{' ' + zone if zone else ''}"
    )
    if rng.random() < 0.05:
        text = text.replace(" ", "  ", 1)
    if rng.random() < 0.03:
        text += " "
    return text


@pytest.mark.parametrize("seed", range(4))
def test_generated_dates_read_as_feedparser_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    dates = [_date(rng) for _ in range(2500)]
    shortcut = 0
    for text in dates:
        assert parse_date(text) == _parse_date(text), text
        shortcut += feed_dates._RFC822_RE.fullmatch(text) is not None
    assert 0 < shortcut < len(dates)  # both paths are exercised


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon, 15 Jan 2024 12:00:00 +0000", (2024, 1, 15, 12, 0, 0)),
        ("Mon, 15 Jan 2024 12:00:00 GMT", (2024, 1, 15, 12, 0, 0)),
        ("15 Jan 2024 01:30:00 +0200", (2024, 1, 14, 23, 30, 0)),
        ("Tue, 31 Dec 2024 23:30:00 -0100", (2025, 1, 1, 0, 30, 0)),
        ("Thu, 29 Feb 2024 08:00:00 Z", (2024, 2, 29, 8, 0, 0)),
    ],
)
def test_the_common_shape_takes_the_shortcut(text: str, expected: tuple[int, ...]) -> None:
    with mock.patch.object(feed_dates, "_parse_date") as slow:
        parsed = parse_date(text)
    slow.assert_not_called()
    assert isinstance(parsed, time.struct_time)
    assert tuple(parsed)[:6] == expected
    assert parsed == _parse_date(text)


@pytest.mark.parametrize(
    "text",
    [
        "Fri, 30 Feb 2024 12:00:00 GMT",  # no such day: feedparser's other handlers decide
        "Mon, 15 Jan 2024 24:00:00 GMT",
        "Mon, 01 Jan 0001 00:00:00 +0100",  # before year 1 in UTC
        "Mon, 15 Jan 2024 12:00:00 EST",  # a zone name: feedparser's table
        "2024-01-15T12:00:00Z",  # W3C-DTF
        "",
        "garbage",
    ],
)
def test_everything_else_is_feedparsers(text: str) -> None:
    with mock.patch.object(feed_dates, "_parse_date", wraps=_parse_date) as slow:
        parsed = parse_date(text)
    slow.assert_called_once_with(text)
    assert parsed == _parse_date(text)
