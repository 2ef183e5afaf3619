"""Talking to a running bot in end-to-end tests: send a command, read the reply, force a poll.

The handler tests all need the same three moves — say something and read what the user
reads, make a feed due and poll it now (instead of waiting for the 10 s poll job), and wait
until every delivery the poll queued has been sent — so they live here once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.context import services_of
from bot.services.feeds import PollReport
from tests.helpers.bot_runner import AnyApp, eventually
from tests.helpers.fake_bot_api import FakeBotAPI

logger = logging.getLogger(__name__)


async def say(
    fake: FakeBotAPI, text: str, chat_id: int, user_id: int | None = None, **kw: Any
) -> str:
    """Send ``text`` as ``user_id`` (default: the chat itself) and return the first reply.

    Extra keyword arguments go to :meth:`FakeBotAPI.send_command` (``chat_type``,
    ``chat_title``...). The reply is Telegram's plain text (HTML entities resolved), which is
    what the user reads.
    """
    before = len(fake.sent_messages(chat_id))
    fake.send_command(text, chat_id=chat_id, user_id=chat_id if user_id is None else user_id, **kw)
    messages = await fake.wait_for_messages(before + 1, chat_id=chat_id, timeout=20)
    return str(messages[before]["plain"])


async def press(
    fake: FakeBotAPI, chat_id: int, message_id: int, label: str, user_id: int | None = None
) -> dict[str, Any]:
    """Press the button ``label`` of a bot message as ``user_id`` (default: the chat itself).

    Returns the bot's answer to the press (``text``, ``show_alert``). The bot answers after
    it has edited the message, so the message's new text and buttons can be read at once
    (``fake.buttons.record(chat_id, message_id)``).
    """
    who = chat_id if user_id is None else user_id
    query_id = fake.buttons.press(chat_id, message_id, user_id=who, text=label)
    return await fake.buttons.wait_for_answer(query_id, timeout=20)


async def poll_now(app: AnyApp, *urls: str) -> PollReport:
    """Make ``urls`` due and run one poll cycle over them, then wait for the deliveries.

    Deliveries a poll triggers are queued before :meth:`FeedService.poll_due` returns, so
    once the dispatcher is idle afterwards everything this poll caused has been sent (or
    deliberately not sent) — a test can then assert what did *not* arrive.
    """
    services = services_of(app)
    for url in urls:
        services.feeds.poll_soon(url)
    report = await services.feeds.poll_due()
    await settle(app)
    return report


async def settle(app: AnyApp) -> None:
    """Wait until the dispatcher has nothing queued or in flight."""
    dispatcher = services_of(app).dispatcher

    async def idle() -> bool:
        return dispatcher.idle()

    await asyncio.sleep(0)  # let callbacks that queue deliveries run first
    await eventually(idle, timeout=20, what="the dispatcher becoming idle")
