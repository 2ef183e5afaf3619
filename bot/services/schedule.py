"""Delivery schedules: parsing ``/digest`` and ``DEFAULT_DELIVERY``, and when a digest is due.

``every`` keeps its phase: the next digest is the previous due time plus whole intervals, so
restarts (which persist ``next_digest_at``) never reset it. ``at HH:MM`` is in the chat's time
zone (IANA names via :mod:`zoneinfo`), daylight-saving changes included.

Texts for users are English msgids rendered in the asker's language: :func:`describe` and
:func:`human_interval` take a :class:`~bot.i18n.Translator`, and a :class:`ScheduleError`
renders its message for any translator (``str()`` of it is the English text, for logs and
configuration errors).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.units import format_unit

from bot.i18n import DEFAULT_LANGUAGE, N_, Translator, translator
from bot.models import TIME_OF_DAY_RE, Delivery

MAX_INTERVAL_S = 7 * 86400
# TRANSLATORS: the words after /digest (every, at, off) are commands: keep them in English.
USAGE = N_(
    "Usage: /digest — show how this chat gets new items\n"
    "/digest every 2h · /digest every 30m — a digest on a fixed interval\n"
    "/digest at 08:00 — a daily digest at that time (this chat's time zone, see /timezone)\n"
    "/digest off — back to instant delivery (each item as soon as it is found)"
)
_EVERY = re.compile(r"^(\d{1,5})\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    """The arguments do not describe a schedule; the message is shown to the user.

    The message is a function rendering it in a translator's language (:meth:`text`), or a
    fixed text (configuration errors); ``str()`` gives the English one.
    """

    def __init__(self, message: str | Callable[[Translator], str]) -> None:
        self._render = message if callable(message) else lambda _t: message
        super().__init__(self._render(translator(DEFAULT_LANGUAGE)))

    def text(self, t: Translator) -> str:
        """The message in ``t``'s language."""
        return self._render(t)


def _usage(t: Translator) -> str:
    return t.gettext(USAGE)


def human_interval(seconds: int, t: Translator) -> str:
    """``7200`` → ``2h``; ``5400`` → ``90m``; ``86400`` → ``1d`` (in Russian: ``2 ч``…).

    CLDR's narrow unit forms: the English ones are the very syntax ``/digest every`` takes.
    """
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return format_unit(seconds // size, f"duration-{unit}", "narrow", locale=t.locale)
    return format_unit(seconds, "duration-second", "narrow", locale=t.locale)


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
            raise ScheduleError(
                lambda t: (
                    t.gettext("I understand intervals like 30m, 2h or 1d.") + "\n\n" + _usage(t)
                )
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2)[0]]
        if not min_interval_s <= seconds <= MAX_INTERVAL_S:
            raise ScheduleError(
                lambda t: (
                    t.gettext("The interval must be between %(shortest)s and 7 days.")
                    % {"shortest": human_interval(min_interval_s, t)}
                )
            )
        return Delivery("every", interval_s=seconds)
    if words[0] == "at" and len(words) == 2:
        match = TIME_OF_DAY_RE.match(words[1])
        if not match:
            raise ScheduleError(
                lambda t: t.gettext("Give the time as HH:MM, e.g. /digest at 08:00.")
            )
        return Delivery("at", at=f"{int(match.group(1)):02d}:{match.group(2)}")
    raise ScheduleError(_usage)


def describe(delivery: Delivery, tz: str, *, t: Translator) -> str:
    """Human text for a delivery mode, in ``t``'s language."""
    if delivery.mode == "every" and delivery.interval_s:
        return t.gettext("a digest every %(interval)s") % {
            "interval": human_interval(delivery.interval_s, t)
        }
    if delivery.mode == "at" and delivery.at:
        return t.gettext("a daily digest at %(time)s (%(tz)s)") % {"time": delivery.at, "tz": tz}
    return t.gettext("instant (each new item as soon as it is found)")


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
            lambda t: t.gettext(
                "I don't know that time zone. Use an IANA name such as Europe/Berlin, "
                "America/New_York or Asia/Tokyo."
            )
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
