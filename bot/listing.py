"""What ``/list`` and its buttons show: pages of subscriptions, filter and removal views.

Pure apart from sync in-memory storage reads in :func:`entries_of`: every view is text
(Telegram HTML) plus an inline keyboard whose buttons carry signed data
(:mod:`bot.services.buttons`), so the handlers in :mod:`bot.handlers.manage`,
:mod:`bot.handlers.rename` and :mod:`bot.handlers.filters` only decide what to show and
where. A page is one message of at most :data:`PAGE_SIZE` subscriptions, so a chat may
follow any number of feeds (one message for all of them broke at about 40). Numbers are
positions in the chat's list, the same numbers ``/remove``, ``/rename`` and ``/filter``
take (:func:`numbered`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.formatting import esc, shorten
from bot.i18n import N_, Translator
from bot.models import NO_FILTERS, POST_FORMATS, Chat, Filters, PostFormat, display_title
from bot.services.buttons import ButtonAction, ButtonData, ButtonSigner, url_key
from bot.storage import StorageService

logger = logging.getLogger(__name__)

PAGE_SIZE = 10  # subscriptions per /list page: 10 rows of 4 buttons, well under 4096 chars
# Every view fits one message whatever the titles, URLs and filters (tests/test_listing.py):
# a page is at most ~2,700 visible characters, a filters view ~2,500.
TITLE_CHARS = 80  # a title longer than this is shortened in lists
URL_CHARS = 100  # enough to tell feeds apart; 10 per page stay far below 4096 characters
# The answer to a number that is not in the list (/rename, /filter).
NO_SUCH_FEED = N_("No such feed here. See /list for the numbers.")


@dataclass(frozen=True, slots=True)
class Entry:
    """One subscription as ``/list`` shows it.

    Attributes:
        n: its number in the chat's list (1-based; what /remove and /filter take).
        url: the feed URL.
        title: the chat's own title for it, else the feed's, else the host.
        muted: items are not posted.
        filters: the subscription's own keyword filters.
        paused: the feed kept failing and is now only retried every few hours.
        failing: the last fetch failed.
        format: the subscription's own post format (None: the chat's).
    """

    n: int
    url: str
    title: str
    muted: bool = False
    filters: Filters = NO_FILTERS
    paused: bool = False
    failing: bool = False
    format: PostFormat | None = None


def entries_of(storage: StorageService, chat_id: int) -> list[Entry]:
    """The chat's subscriptions in list order (in-memory reads, O(its subscriptions))."""
    out = []
    for n, sub in enumerate(storage.subscriptions(chat_id), 1):
        state = storage.feed_state(sub.url)
        title = display_title(sub.title, state.title if state else "", sub.url)
        out.append(
            Entry(n, sub.url, title, sub.muted, sub.filters,
                  paused=bool(state and state.paused), failing=bool(state and state.failures),
                  format=sub.format)
        )  # fmt: skip
    return out


def page_count(total: int) -> int:
    """How many pages ``total`` subscriptions take (at least one, the empty list's)."""
    return max(1, math.ceil(total / PAGE_SIZE))


def page_of(n: int) -> int:
    """The 0-based page subscription number ``n`` is on."""
    return (max(1, n) - 1) // PAGE_SIZE


def shorten_title(title: str) -> str:
    """A title as lists and answers show it: at most TITLE_CHARS (plain text, not escaped)."""
    return shorten(title, TITLE_CHARS)


def numbered(entries: list[Entry], n: int) -> Entry | None:
    """Subscription number ``n`` as ``/list`` shows it (1-based); None when there is none."""
    return entries[n - 1] if 0 < n <= len(entries) else None


def find(entries: list[Entry], key: str) -> Entry | None:
    """The subscription a button's key names, wherever it is in the list now."""
    return next((e for e in entries if url_key(e.url) == key), None)


def describe_filters(t: Translator, filters: Filters) -> list[str]:
    """One line per non-empty list, terms as they were typed (HTML-safe)."""
    lines = []
    if filters.include:
        lines.append(
            t.gettext("Only items that mention: %(terms)s")
            % {"terms": esc(", ".join(filters.include))}
        )
    if filters.exclude:
        lines.append(
            t.gettext("Never items that mention: %(terms)s")
            % {"terms": esc(", ".join(filters.exclude))}
        )
    return lines


def filter_usage(t: Translator, n: int | None = None) -> str:
    """How to change filters, with commands to copy (for the chat, or for feed ``n``)."""
    where = "" if n is None else f"{n} "
    return "\n".join(
        [
            t.gettext("Change them:"),
            t.gettext("/filter %(n)sinclude python, rust — only items that mention one of these")
            % {"n": where},
            t.gettext("/filter %(n)sexclude ads, sponsored post — never items that mention these")
            % {"n": where},
            t.gettext("/filter %(n)sclear — no filters") % {"n": where},
        ]
    )


def next_format(current: PostFormat | None) -> PostFormat | None:
    """What the 📝 button switches a subscription to: the chat format, then each format."""
    cycle: list[PostFormat | None] = [None, *POST_FORMATS]
    return cycle[(cycle.index(current) + 1) % len(cycle)]


def _status(t: Translator, entry: Entry) -> str:
    flags = []
    if entry.format is not None:
        flags.append(t.gettext("📝 %(format)s") % {"format": entry.format})
    if entry.muted:
        flags.append(t.gettext("🔇 muted"))
    if entry.filters:
        flags.append(t.gettext("🔎 filtered"))
    if entry.paused:
        flags.append(t.gettext("⏸ paused: keeps failing"))
    elif entry.failing:
        flags.append(t.gettext("⚠️ failing"))
    return " — " + " · ".join(flags) if flags else ""


@dataclass(frozen=True, slots=True)
class _Buttons:
    """Makes the signed buttons of one view (one chat, one page)."""

    signer: ButtonSigner
    chat_id: int
    page: int

    def make(
        self, text: str, action: ButtonAction, key: str = "", *, page: int | None = None
    ) -> InlineKeyboardButton:
        data = ButtonData(action, self.chat_id, self.page if page is None else page, key)
        return InlineKeyboardButton(text, callback_data=self.signer.encode(data))


def render_page(
    t: Translator,
    signer: ButtonSigner,
    chat: Chat,
    entries: list[Entry],
    page: int,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """Page ``page`` (0-based, clamped) of the chat's list, with its buttons."""
    if not entries:
        return t.gettext("No feeds yet. Add one with /add &lt;url&gt;."), None
    pages = page_count(len(entries))
    page = min(max(page, 0), pages - 1)
    shown = entries[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    if pages == 1:
        lines = [t.gettext("<b>Your feeds</b>")]
    else:
        lines = [
            t.gettext("<b>Your feeds</b> · %(first)d–%(last)d of %(total)d")
            % {"first": shown[0].n, "last": shown[-1].n, "total": len(entries)}
        ]
    if chat.paused:
        lines.append(t.gettext("⏸ Posting is paused; /resume starts it again."))
    if chat.filters:
        lines.append(t.gettext("🔎 This chat has keyword filters: /filter shows them."))
    for entry in shown:
        title = esc(shorten_title(entry.title))
        url = esc(shorten(entry.url, URL_CHARS))
        lines.append(f"{entry.n}. {title}{_status(t, entry)}\n   <code>{url}</code>")
    footer = t.gettext(
        "Buttons: 🔇 mute · 🔔 unmute · 🔎 filters · 📝 post format · ✏️ rename · 🗑 remove"
    )
    if pages > 1:
        where = t.gettext("Page %(page)d of %(pages)d.") % {"page": page + 1, "pages": pages}
        footer = f"{where} {footer}"
    buttons = _Buttons(signer, chat.chat_id, page)
    rows = []
    for entry in shown:
        key = url_key(entry.url)
        rows.append(
            [
                buttons.make(f"{entry.n} {'🔔' if entry.muted else '🔇'}", "mute", key),
                buttons.make(f"{entry.n} 🔎", "filters", key),
                buttons.make(f"{entry.n} 📝", "format", key),
                buttons.make(f"{entry.n} ✏️", "rename", key),
                buttons.make(f"{entry.n} 🗑", "remove", key),
            ]
        )
    nav = []
    if page > 0:
        nav.append(buttons.make(f"◀ {page}", "page", page=page - 1))
    if page < pages - 1:
        nav.append(buttons.make(f"{page + 2} ▶", "page", page=page + 1))
    if nav:
        rows.append(nav)
    return "\n".join(lines) + "\n\n" + footer, InlineKeyboardMarkup(rows)


def render_filters(
    t: Translator, signer: ButtonSigner, chat: Chat, entry: Entry, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The filters of one subscription, how to change them, and a button to clear them."""
    lines = [
        t.gettext("🔎 Filters of %(n)d. <b>%(title)s</b>")
        % {"n": entry.n, "title": esc(shorten_title(entry.title))}
    ]
    lines += describe_filters(t, entry.filters) or [
        t.gettext("None of its own: every item is posted.")
    ]
    if chat.filters:
        lines.append(t.gettext("This chat's filters apply too (/filter shows them)."))
    lines += ["", filter_usage(t, entry.n)]
    buttons = _Buttons(signer, chat.chat_id, page)
    row = [buttons.make(t.gettext("◀ Back to the list"), "page")]
    if entry.filters:
        row.insert(0, buttons.make(t.gettext("🧹 Clear filters"), "clear", url_key(entry.url)))
    return "\n".join(lines), InlineKeyboardMarkup([row])


def render_confirm_remove(
    t: Translator, signer: ButtonSigner, chat: Chat, entry: Entry, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """Ask before removing: a stray tap must not drop a feed."""
    text = t.gettext("🗑 Stop following %(n)d. <b>%(title)s</b>?") % {
        "n": entry.n,
        "title": esc(shorten_title(entry.title)),
    }
    text += f"\n<code>{esc(shorten(entry.url, URL_CHARS))}</code>"
    buttons = _Buttons(signer, chat.chat_id, page)
    row = [
        buttons.make(t.gettext("🗑 Yes, remove"), "confirm", url_key(entry.url)),
        buttons.make(t.gettext("◀ Back"), "page"),
    ]
    return text, InlineKeyboardMarkup([row])
