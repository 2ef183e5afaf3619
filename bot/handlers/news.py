"""/news [N]: the latest items across the chat's feeds, with a per-user rate limit."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formatting import esc, format_news
from bot.handlers.common import (
    COMMAND_UPDATES,
    Context,
    args_of,
    chat_id_of,
    register_chat,
    reply,
    requester_id,
    tr,
)
from bot.i18n import N_
from bot.models import host_of
from bot.services.feed_errors import localize_reason

logger = logging.getLogger(__name__)

DEFAULT_COUNT = 5
MAX_COUNT = 20
USAGE = N_("Usage: /news or /news N (1–%(max)d), e.g. /news 10")


def parse_count(args: list[str]) -> int | None:
    """The requested item count, or ``None`` when the arguments make no sense."""
    if not args:
        return DEFAULT_COUNT
    if len(args) == 1 and args[0].isdigit() and 1 <= int(args[0]) <= MAX_COUNT:
        return int(args[0])
    return None


async def news(update: Update, context: Context) -> None:
    """Answer with the latest items, from the cache the poll job keeps fresh."""
    services = context.services
    storage = context.storage
    t = tr(update, context)
    _ = t.gettext
    chat_id = chat_id_of(update)
    user_id = requester_id(update)
    decision = services.rate_limiter.check(user_id)
    if decision.verdict != "allow":
        services.metrics.news_rate_limited.inc()
        logger.warning(
            "news rate limited",
            extra={
                "event": "news_rate_limited",
                **services.rate_limiter.breach(decision, user_id, chat_id),
            },
        )
        storage.count("news_rate_limited", chat_id)
        if decision.verdict == "notify":
            await reply(
                update,
                context,
                _("⏳ That's a lot of news! You can ask again in %(seconds)d s.")
                % {"seconds": decision.retry_after_s},
            )
        return
    count = parse_count(args_of(context))
    if count is None:
        await reply(update, context, _(USAGE) % {"max": MAX_COUNT})
        return
    services.metrics.news_requests.inc()
    await register_chat(update, context)
    urls = storage.feed_urls(chat_id) or list(services.settings.default_feeds)
    if not urls:
        await reply(
            update, context, _("This chat follows no feeds yet. Add one with /add &lt;url&gt;.")
        )
        return
    # Counters are deferred (flushed within a second): a /news never waits for a disk.
    storage.count("news_requests", chat_id)
    items, errors = await services.feeds.latest(urls, count)
    notes = "".join(
        f"\n⚠️ {esc(host_of(url))}: {esc(localize_reason(e.reason, t))}" for url, e in errors[:5]
    )
    if not items:
        await reply(update, context, _("No news right now.") + notes)
        return
    # TRANSLATORS: the /news header; n is the number of items below it.
    latest = t.ngettext("📰 Latest %(n)d", "📰 Latest %(n)d", len(items)) % {"n": len(items)}
    await reply(update, context, format_news(items, f"<b>{latest}</b>" + notes, t=t))


def register(app: Application) -> None:
    """Add this module's handlers."""
    app.add_handler(CommandHandler("news", news, filters=COMMAND_UPDATES))
