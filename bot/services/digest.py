"""Digest schedules: parsing ``/digest`` arguments and choosing what a digest posts.

Only items a chat has not been sent are posted, newest first, at most
:data:`DIGEST_MAX_ITEMS`. Ids are remembered *before* sending (in the chat's bounded seen-set,
persisted), which makes delivery at-most-once: a crash between saving and sending can skip an
item, but nothing is ever posted twice, across restarts too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.models import Channel, DigestSchedule, FeedItem

MIN_INTERVAL_S = 15 * 60
MAX_INTERVAL_S = 7 * 86400
DIGEST_MAX_ITEMS = 10
USAGE = (
    "Usage: /digest — show the schedule\n"
    "/digest every 30m · /digest every 2h — post new items on a fixed interval (15m–7d)\n"
    "/digest at 08:00 — once a day at that time (UTC)\n"
    "/digest off — stop"
)
_EVERY = re.compile(r"^(\d{1,4})\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$")
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """The arguments do not describe a schedule; the message is shown to the user."""


def parse_schedule(args: Sequence[str]) -> DigestSchedule | None:
    """Parse ``/digest`` arguments; ``None`` means "show the current schedule".

    Raises:
        ScheduleError: with a message for the user (usage, or why a value is refused).
    """
    words = [a.strip().lower() for a in args if a.strip()]
    if not words or words == ["show"]:
        return None
    if words == ["off"]:
        return DigestSchedule("off")
    if words[0] == "every" and len(words) in (2, 3):
        match = _EVERY.match("".join(words[1:]))
        if not match:
            raise ScheduleError("I understand intervals like 30m, 2h or 1d.\n\n" + USAGE)
        unit = match.group(2)[0]
        seconds = int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[unit]
        if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
            raise ScheduleError("The interval must be between 15 minutes and 7 days.")
        return DigestSchedule("every", interval_s=seconds)
    if words[0] == "at" and len(words) == 2:
        match = _AT.match(words[1])
        if not match:
            raise ScheduleError("Give the time as HH:MM in UTC, e.g. /digest at 08:00.")
        return DigestSchedule("at", at=f"{int(match.group(1)):02d}:{match.group(2)}")
    raise ScheduleError(USAGE)


def pick_new(channel: Channel, items: Sequence[FeedItem]) -> tuple[list[FeedItem], list[str]]:
    """Choose what a digest posts: ``(to_send, ids_to_remember)``.

    ``items`` are newest first. Unsent items beyond the cap are remembered too, so a chat
    that was away for a week gets the latest news, not a backlog trickling out for days.
    """
    seen = set(channel.seen)
    fresh = [i for i in items if i.id not in seen]
    return fresh[:DIGEST_MAX_ITEMS], [i.id for i in fresh]
