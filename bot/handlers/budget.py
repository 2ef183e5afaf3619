"""The per-user budget of ``/add`` and ``/import``: commands that cost feed fetches.

Each command costs one token of ``ADD_RATE_LIMIT`` (default 10 per 600 s), the two commands
sharing one budget, whatever the number of addresses: the fetches one command may cause are
bounded by its own caps instead (:data:`bot.services.subscriptions.MAX_ADD_URLS` addresses
per ``/add``, :data:`~bot.services.subscriptions.MAX_IMPORT_URLS` per import, checked
:data:`~bot.services.subscriptions.ADD_CONCURRENCY` at a time, and none beyond the chat's
room). One token per command keeps the answer simple ("you can add more in 42 s") and never
refuses a file half-way. The limiter is the one ``/news`` uses
(:class:`bot.services.ratelimit.NewsRateLimiter`), and a breach is logged with the same
fields as ``news_rate_limited`` plus ``command``.
"""

from __future__ import annotations

import logging
from typing import Literal

from telegram import Update

from bot.handlers.common import Context, chat_id_of, reply, requester_id, tr

logger = logging.getLogger(__name__)


async def charge_add(update: Update, context: Context, command: Literal["add", "import"]) -> bool:
    """Take one token from the sender's budget; when none is left, say so once and refuse.

    Returns:
        True when the command may go on.
    """
    services = context.services
    limiter = services.add_limiter
    user_id = requester_id(update)
    decision = limiter.check(user_id)
    if decision.verdict == "allow":
        return True
    chat_id = chat_id_of(update)
    services.metrics.add_rate_limited.inc()
    logger.warning(
        "add rate limited",
        extra={
            "event": "add_rate_limited",
            "command": command,
            **limiter.breach(decision, user_id, chat_id),
        },
    )
    context.storage.count("add_rate_limited", chat_id)
    if decision.verdict == "notify":
        _ = tr(update, context).gettext
        await reply(
            update,
            context,
            _(
                "⏳ That's a lot of feeds at once! You can /add or /import again in "
                "%(seconds)d s (several addresses fit in one /add)."
            )
            % {"seconds": decision.retry_after_s},
        )
    return False
