"""Delivery schedules: parsing ``/digest`` and ``DEFAULT_DELIVERY``, and when a digest is due.

``every`` keeps its phase: the next digest is the previous due time plus whole intervals, so
restarts (which persist ``next_digest_at``) never reset it. ``at HH:MM`` is in the chat's time
zone (IANA names via :mod:`zoneinfo`), daylight-saving changes included.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.models import TIME_OF_DAY_RE, Delivery

MAX_INTERVAL_S = 7 * 86400
USAGE = (
    "Usage: /digest — show how this chat gets new items\n"
    "/digest every 2h · /digest every 30m — a digest on a fixed interval\n"
    "/digest at 08:00 — a daily digest at that time (this chat's time zone, see /timezone)\n"
    "/digest off — back to instant delivery (each item as soon as it is found)"
)
_EVERY = re.compile(r"^(\d{1,5})\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    """The arguments do not describe a schedule; the message is shown to the user."""


def human_interval(seconds: int) -> str:
    """``7200`` → ``2h``; ``5400`` → ``90m``; ``86400`` → ``1d``."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_delivery(words: Sequence[str], min_interval_s: int) -> Delivery | None:
    """Parse ``/digest`` arguments (or ``DEFAULT_DELIVERY``); ``None`` means "show".

    Raises:
        ScheduleError: with a message for the user (usage, or why a value is refused).
    """
    words = [w.strip().lower() for w in words if w.strip()]
    if not words or words == ["show"]:
        return None
    if words in (["off"], ["instant"]):
        return Delivery()
    if words[0] == "every" and len(words) in (2, 3):
        match = _EVERY.match("".join(words[1:]))
        if not match:
            raise ScheduleError("I understand intervals like 30m, 2h or 1d.\n\n" + USAGE)
        seconds = int(match.group(1)) * _UNITS[match.group(2)[0]]
        if not min_interval_s <= seconds <= MAX_INTERVAL_S:
            raise ScheduleError(
                f"The interval must be between {human_interval(min_interval_s)} and 7 days."
            )
        return Delivery("every", interval_s=seconds)
    if words[0] == "at" and len(words) == 2:
        match = TIME_OF_DAY_RE.match(words[1])
        if not match:
            raise ScheduleError("Give the time as HH:MM, e.g. /digest at 08:00.")
        return Delivery("at", at=f"{int(match.group(1)):02d}:{match.group(2)}")
    raise ScheduleError(USAGE)


def describe(delivery: Delivery, tz: str) -> str:
    """Human text for a delivery mode."""
    if delivery.mode == "every" and delivery.interval_s:
        return f"a digest every {human_interval(delivery.interval_s)}"
    if delivery.mode == "at" and delivery.at:
        return f"a daily digest at {delivery.at} ({tz})"
    return "instant (each new item as soon as it is found)"


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; UTC if the name is unknown (never fatal)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_timezone(name: str) -> str:
    """Canonical IANA name for ``name`` (case-insensitive), e.g. ``europe/berlin``.

    Raises:
        ScheduleError: the name is not an IANA time zone.
    """
    wanted = name.strip()
    if wanted.upper() in ("UTC", "GMT", "Z"):
        return "UTC"
    found = _zones_by_lower_name().get(wanted.lower())
    if found is None:
        raise ScheduleError(
            "I don't know that time zone. Use an IANA name such as Europe/Berlin, "
            "America/New_York or Asia/Tokyo."
        )
    return found


@functools.cache
def _zones_by_lower_name() -> dict[str, str]:
    """Every IANA zone by its lower-case name (built once: scanning them takes ~20 ms)."""
    return {z.lower(): z for z in available_timezones()}


def next_digest_at(
    delivery: Delivery, tz: str, now: float, previous: float | None = None
) -> float | None:
    """When the next digest is due (unix time), strictly after ``now``.

    Args:
        delivery: the chat's delivery mode (``None`` is returned for instant).
        tz: the chat's IANA time zone (``at`` schedules).
        now: the current unix time.
        previous: the due time just served, for ``every``: keeps the phase.
    """
    if delivery.mode == "every" and delivery.interval_s:
        interval = delivery.interval_s
        if previous is None or previous > now + interval:
            return now + interval
        steps = math.floor((now - previous) / interval) + 1
        return previous + max(1, steps) * interval
    if delivery.mode == "at" and delivery.at:
        hour, minute = (int(p) for p in delivery.at.split(":"))
        tzinfo = zone(tz)
        local = datetime.fromtimestamp(now, tzinfo)
        day = local.date()
        for _ in range(3):  # today, tomorrow (and one more for DST gaps)
            candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tzinfo)
            if candidate.timestamp() > now:
                return candidate.timestamp()
            day += timedelta(days=1)
    return None
