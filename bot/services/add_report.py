"""What ``/add`` and ``/import`` answer: :class:`AddOutcome` lists → Telegram HTML.

Pure, like :mod:`bot.formatting`: every address, title and reason is escaped here, and long
answers are split with :func:`bot.formatting.pack_blocks` (never mid-line). Reasons come from
:class:`bot.services.feed_errors.FeedError` (English msgids) and are translated with
:func:`bot.services.feed_errors.localize_reason`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

from bot.formatting import esc, pack_blocks
from bot.i18n import Translator
from bot.services.feed_errors import localize_reason
from bot.services.subscriptions import MAX_IMPORT_URLS, AddOutcome

logger = logging.getLogger(__name__)

MAX_LISTED_FAILURES = 10  # an import summary names this many failed feeds, then counts


def when_new_items(t: Translator, *, digest: bool) -> str:
    """The line that says how the new feeds' items will arrive."""
    if digest:
        return t.gettext("New items will come in this chat's digest.")
    return t.gettext("New items will be posted here as soon as they appear.")


def add_reply(
    outcomes: Sequence[AddOutcome],
    t: Translator,
    *,
    limit: int,
    digest: bool,
    moved: Mapping[str, str] | None = None,
) -> list[str]:
    """The one answer to ``/add``: a sentence for one address, a line per address for more.

    ``moved`` holds, by address, the (HTML) note saying a followed feed moved to the forum
    topic ``/add`` was sent in; it stands for that address's "already following" line.
    """
    moved = moved or {}
    if len(outcomes) == 1:
        return [_single(outcomes[0], t, limit=limit, digest=digest, moved=moved)]
    lines = [moved.get(o.url) or _line(o, t, limit=limit) for o in outcomes]
    if any(o.kind in ("added", "resumed") for o in outcomes):
        lines.append(when_new_items(t, digest=digest))
    if any(o.kind == "full" for o in outcomes):
        lines.append(t.gettext("/remove a feed to make room for more."))
    return pack_blocks("", lines, separator="\n", t=t)


def _single(
    outcome: AddOutcome, t: Translator, *, limit: int, digest: bool, moved: Mapping[str, str]
) -> str:
    """The one-feed answers, as ``/add`` has always given them."""
    url = esc(outcome.url)
    note = moved.get(outcome.url)
    if outcome.kind == "already":
        return note or t.gettext("Already following <code>%(url)s</code>.") % {"url": url}
    if outcome.kind == "backoff":
        return t.gettext(
            "❌ That feed failed a moment ago (%(reason)s). Try again in a minute."
        ) % {"reason": esc(localize_reason(outcome.reason, t))}
    if outcome.kind == "failed":
        return t.gettext("❌ Couldn't add that feed: %(reason)s.") % {
            "reason": esc(localize_reason(outcome.reason, t))
        }
    if outcome.kind == "full":
        return t.gettext("This chat already follows %(limit)d feeds; /remove one first.") % {
            "limit": limit
        }
    values = {"title": esc(outcome.title or outcome.feed_url)}
    if outcome.kind == "added":
        text = t.gettext("✅ Now following <b>%(title)s</b>.") % values
    else:
        text = t.gettext("✅ Already following (resumed) <b>%(title)s</b>.") % values
    if outcome.discovered:
        text += "\n" + t.gettext("(found the feed at <code>%(url)s</code>)") % {
            "url": esc(outcome.feed_url)
        }
    text += "\n" + when_new_items(t, digest=digest)
    return f"{text}\n{note}" if note else text


def _line(outcome: AddOutcome, t: Translator, *, limit: int) -> str:
    """One address of a multi-address ``/add``."""
    url = esc(outcome.url)
    if outcome.kind in ("added", "resumed"):
        values = {"title": esc(outcome.title or outcome.feed_url), "url": esc(outcome.feed_url)}
        if outcome.kind == "added":
            line = t.gettext("✅ Now following <b>%(title)s</b>") % values
        else:
            line = t.gettext("✅ Already following (resumed) <b>%(title)s</b>") % values
        if outcome.discovered:
            line += " " + t.gettext("(found the feed at <code>%(url)s</code>)") % values
        return line
    if outcome.kind == "already":
        return t.gettext("☑️ Already following <code>%(url)s</code>") % {"url": url}
    if outcome.kind == "backoff":
        return t.gettext(
            "❌ <code>%(url)s</code>: failed a moment ago (%(reason)s); try again in a minute"
        ) % {"url": url, "reason": esc(localize_reason(outcome.reason, t))}
    if outcome.kind == "failed":
        return t.gettext("❌ <code>%(url)s</code>: %(reason)s") % {
            "url": url,
            "reason": esc(localize_reason(outcome.reason, t)),
        }
    return t.gettext(
        "⛔ <code>%(url)s</code>: not added, this chat already follows %(limit)d feeds"
    ) % {"url": url, "limit": limit}


def import_reply(
    outcomes: Sequence[AddOutcome],
    t: Translator,
    *,
    limit: int,
    digest: bool,
    skipped: int,
    file_name: str,
    header: str = "",
) -> list[str]:
    """The one summary of an OPML import: counts, and why each failure (up to a limit) failed.

    ``header`` (HTML) opens the first message — the name of the chat imported into, when that
    is not the chat the answer is read in. It is packed with the lines, so every message,
    the first with its header, fits Telegram's limit.

    Args:
        outcomes: what became of each feed that was checked.
        t: the translator.
        limit: the chat's feed limit (for the "over the limit" line).
        digest: whether the chat gets a digest.
        skipped: feeds of the file beyond :data:`MAX_IMPORT_URLS`, never looked at.
        file_name: the document's name, as the user sent it.
        header: a first line for the first message ("" for none).
    """
    kinds = Counter(o.kind for o in outcomes)
    added = kinds["added"]
    already = kinds["already"] + kinds["resumed"]
    failures = [o for o in outcomes if o.kind in ("failed", "backoff")]
    lines = [
        t.gettext("📥 <b>Import of %(name)s</b>") % {"name": esc(file_name)},
        t.ngettext("✅ Added %(n)d feed.", "✅ Added %(n)d feeds.", added) % {"n": added},
    ]
    if already:
        lines.append(
            t.ngettext("☑️ %(n)d already followed.", "☑️ %(n)d already followed.", already)
            % {"n": already}
        )
    if failures:
        lines.append(
            t.ngettext("❌ %(n)d failed:", "❌ %(n)d failed:", len(failures)) % {"n": len(failures)}
        )
        for outcome in failures[:MAX_LISTED_FAILURES]:
            lines.append(
                "• "
                + t.gettext("<code>%(url)s</code>: %(reason)s")
                % {"url": esc(outcome.url), "reason": esc(localize_reason(outcome.reason, t))}
            )
        hidden = len(failures) - MAX_LISTED_FAILURES
        if hidden > 0:
            lines.append(
                t.ngettext("… and %(n)d more.", "… and %(n)d more.", hidden) % {"n": hidden}
            )
    full = kinds["full"]
    if full:
        lines.append(
            t.ngettext(
                "⛔ %(n)d not added: this chat may follow at most %(limit)d feeds.",
                "⛔ %(n)d not added: this chat may follow at most %(limit)d feeds.",
                full,
            )
            % {"n": full, "limit": limit}
        )
    if skipped:
        lines.append(
            t.ngettext(
                "⏭ %(n)d more in the file were not read: an import takes at most %(cap)d.",
                "⏭ %(n)d more in the file were not read: an import takes at most %(cap)d.",
                skipped,
            )
            % {"n": skipped, "cap": MAX_IMPORT_URLS}
        )
    if added:
        lines.append(when_new_items(t, digest=digest))
    return pack_blocks(header, lines, separator="\n", t=t)
