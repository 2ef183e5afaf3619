"""Keyword filters: which logged items a chat and each of its subscriptions want.

A :class:`~bot.models.Filters` value holds *include* and *exclude* lists of words or phrases
as the user typed them. Items are matched on their title and summary (the summary is
Telegram HTML: its tags are dropped, its entities decoded). There are no regular
expressions, wildcards or anything else a user could make slow (ReDoS): a filter is a set
of words and a few substrings, and an item passes when

* it mentions none of the chat's or the subscription's *exclude* terms, and
* when the chat has *include* terms, it mentions one of them, and likewise for the
  subscription's (both apply: a feed filtered inside a filtered chat must pass both).

Matching rules, the same for filter terms and item text (:func:`normalize`, :func:`tokens`):
Unicode NFKC (full-width letters, ligatures and compatibility forms fold to the plain
ones), then case folding (``Straße`` matches ``STRASSE``), emoji variation selectors
dropped (``❤️`` matches ``❤``). The text is split into words — runs of letters, digits,
``_`` and combining marks, so Cyrillic, Greek, Arabic, Devanagari… words stay whole — and
single symbols (punctuation, each emoji). A one-word term matches a whole word; a phrase
matches its words in a row (``c++`` is the words ``c + +``). Scripts written without spaces
between words (Chinese, Japanese, Korean, Thai, Lao, Khmer, Myanmar) cannot be split into
words without a dictionary, so a term containing them matches any part of the text.

Cost at scale: :func:`compile_filters` builds a :class:`Matcher` once per distinct
``Filters`` value (an LRU cache keyed by the frozen value, so 10,000 chats with the same
words share one), and :class:`TextCache` normalises each item once per fan-out, however
many chats look at it. Per chat and item the work left is a set intersection and a few
``in`` tests on one string (C speed, no per-character Python).
"""

from __future__ import annotations

import functools
import html
import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.models import NO_FILTERS, Backlog, Filters, LogEntry

if TYPE_CHECKING:
    from bot.i18n import Translator

logger = logging.getLogger(__name__)

MAX_TERMS = 20  # words or phrases per list (include, exclude), per chat or subscription
MAX_TERM_CHARS = 50  # characters per word or phrase
COMPILED_CACHE_SIZE = 4096  # distinct Filters values kept compiled
TEXT_CACHE_SIZE = 4096  # normalised item texts kept (items being delivered right now)
MAX_TEXT_CHARS = 8192  # an item's title + summary beyond this is not searched (bounded CPU)

# Terms are separated by commas or new lines; quotes around a term are decoration.
_TERM_SPLIT_RE = re.compile(r"[,\n;،、，]+")
_QUOTES = "\"'«»“”„‘’‚`"
# A summary's tags, for matching its words. A regular expression is safe here, unlike on feed
# HTML (which richtext parses): the summary is the bot's own Telegram HTML (richtext.convert's
# output: well-nested tags, and "<", ">", "&", '"' always escaped, in attributes too), so a
# tag is exactly "<" up to the next ">". It is also what keeps the step cheap: measured on a
# 1.3 KB summary, this and html.unescape take ~41 µs, richtext's HTMLParser-based reader ~610
# µs — and it runs for every new item of a fan-out (once per item, shared by all chats).
# tests/services/test_filters.py checks it against the fake Bot API's Telegram-HTML parser.
_TAG_RE = re.compile(r"<[^>]*>")
# The blocks of the Basic Multilingual Plane where combining marks live (a superset: every
# block that has any; tests/services/test_filters.py checks it against Unicode). Marks of
# the scripts beyond it (Brahmi, Chakma, Adlam…: rare in news) are left out on purpose: a
# character class reaching past U+FFFF cannot be a bitmap and made tokenising 4× slower.
# Their words are split at the marks, identically in terms and texts.
_MARK_BLOCKS = (
    (0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x0DFF), (0x0E31, 0x0EFF),
    (0x0F18, 0x109F), (0x135D, 0x135F), (0x1712, 0x1DFF), (0x20D0, 0x20F0),
    (0x2CEF, 0x2CF1), (0x2D7F, 0x2D7F), (0x2DE0, 0x2DFF), (0x302A, 0x302F),
    (0x3099, 0x309A), (0xA66F, 0xA69F), (0xA6F0, 0xA6F1), (0xA802, 0xABED),
    (0xFB1E, 0xFB1E), (0xFE00, 0xFE0F), (0xFE20, 0xFE2F),
)  # fmt: skip


def _mark_ranges() -> str:
    r"""A character-class body: every combining mark ``\w`` leaves out, in the BMP.

    Built at import from :data:`_MARK_BLOCKS` (about 10,000 code points looked at once).
    """
    marks = [
        c for lo, hi in _MARK_BLOCKS for c in range(lo, hi + 1)
        if unicodedata.category(chr(c))[0] == "M" and not chr(c).isalnum()
    ]  # fmt: skip
    spans: list[list[int]] = []
    for code in marks:
        if spans and code == spans[-1][1] + 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in spans)


# A word — letters, digits, "_" and the combining marks that belong to them, so Devanagari,
# Arabic or Thai words stay whole (Python's \w leaves marks out) — or one other visible
# character (punctuation, each emoji). One C-speed findall per text (a bitmap class).
_TOKEN_RE = re.compile(f"[\\w{_mark_ranges()}]+|\\S")
# Emoji presentation selectors (text/emoji style): invisible, and typed inconsistently.
_INVISIBLE = dict.fromkeys(map(ord, "\ufe0e\ufe0f"))
# Scripts written without spaces between words: a term using them matches as a substring.
_UNSPACED_RE = re.compile(
    "[\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1100-\u11ff"  # Hangul Jamo
    "\u1780-\u17ff"  # Khmer
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3005-\u3007\u3021-\u3029\u3038-\u303b"  # CJK marks and numerals
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana extension
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003ffff]"  # CJK extensions B and later
)


# --------------------------------------------------------------------------- errors


class FilterError(ValueError):
    """A filter list a user typed that cannot be accepted; :meth:`explain` says why."""

    def explain(self, t: Translator) -> str:
        """The answer for the user, in their language (HTML-safe)."""
        raise NotImplementedError


class NoTerms(FilterError):
    """Nothing but separators and spaces was given."""

    def explain(self, t: Translator) -> str:
        """Ask for at least one word."""
        return t.gettext("Give at least one word or phrase, e.g. /filter include python, rust")


class TooManyTerms(FilterError):
    """More than :data:`MAX_TERMS` words or phrases in one list."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} terms, at most {MAX_TERMS}")
        self.count = count

    def explain(self, t: Translator) -> str:
        """Say the limit and how many were given."""
        return t.gettext("Too many words: at most %(limit)d per list (you gave %(count)d).") % {
            "limit": MAX_TERMS,
            "count": self.count,
        }


class TermTooLong(FilterError):
    """A word or phrase longer than :data:`MAX_TERM_CHARS` characters."""

    def __init__(self, term: str) -> None:
        super().__init__(f"a term of {len(term)} characters, at most {MAX_TERM_CHARS}")
        self.term = term

    def explain(self, t: Translator) -> str:
        """Quote the start of the term and say the limit."""
        return t.gettext(
            "“%(start)s…” is too long: at most %(limit)d characters per word or phrase."
        ) % {"start": html.escape(self.term[:20]), "limit": MAX_TERM_CHARS}


# --------------------------------------------------------------------------- user input


def parse_terms(raw: str) -> tuple[str, ...]:
    """Words and phrases from a user's list: ``python, rust, "machine learning"``.

    Commas (or new lines, semicolons, CJK commas) separate terms; spaces inside a term make
    it a phrase; surrounding quotes are dropped; a term repeating an earlier one (after
    normalisation) is left out. Returns the terms as typed (tidied), for display and storage.

    Raises:
        NoTerms: the list is empty.
        TooManyTerms: more than :data:`MAX_TERMS` terms.
        TermTooLong: a term longer than :data:`MAX_TERM_CHARS` characters.
    """
    out: list[str] = []
    seen: set[str] = set()
    for piece in _TERM_SPLIT_RE.split(raw):
        term = " ".join("".join(ch for ch in piece if ch.isprintable()).split()).strip(_QUOTES)
        term = term.strip()
        if not term:
            continue
        if len(term) > MAX_TERM_CHARS:
            raise TermTooLong(term)
        key = " ".join(tokens(normalize(term)))
        if key and key not in seen:
            seen.add(key)
            out.append(term)
    if not out:
        raise NoTerms(raw)
    if len(out) > MAX_TERMS:
        raise TooManyTerms(len(out))
    return tuple(out)


# --------------------------------------------------------------------------- normalising


def normalize(text: str) -> str:
    """NFKC, case-folded, without emoji variation selectors (see the module docstring)."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_INVISIBLE)


def tokens(normalized: str) -> list[str]:
    """Split normalised text into words and single symbols (see :data:`_TOKEN_RE`)."""
    return _TOKEN_RE.findall(normalized)


@dataclass(frozen=True, slots=True)
class ItemText:
    """An item's searchable text: its words, and all of it as one space-joined string.

    ``padded`` is `` w1 w2 … `` (the title, a line break, then the summary) so that a phrase
    ``" a b "`` only matches whole words and never spans the title and the summary.
    """

    padded: str
    words: frozenset[str]


def item_text(title: str, summary_html: str) -> ItemText:
    """Normalise an item's title and Telegram-HTML summary for matching."""
    summary = html.unescape(_TAG_RE.sub("", summary_html)) if summary_html else ""
    budget = MAX_TEXT_CHARS
    title_words = tokens(normalize(title[:budget]))
    summary_words = tokens(normalize(summary[: max(0, budget - len(title))]))
    padded = f" {' '.join(title_words)} \n {' '.join(summary_words)} "
    return ItemText(padded, frozenset(title_words) | frozenset(summary_words))


class TextCache:
    """Normalised texts of the items being delivered, shared by every chat of a fan-out.

    Keyed by (feed URL, sequence number); an entry is only reused for the very same
    :class:`~bot.models.FeedItem` object (a feed re-added after being dropped restarts its
    numbering; an old log entry that lost its summary is a new object). Bounded: the oldest
    entries go first (a fan-out touches the same few items for every chat).
    Single event loop, no awaits inside: no lock needed.
    """

    def __init__(self, size: int = TEXT_CACHE_SIZE) -> None:
        self._size = size
        self._texts: dict[tuple[str, int], tuple[object, ItemText]] = {}
        self.computed = 0  # how many texts were normalised (tests, benchmarks)

    def get(self, url: str, entry: LogEntry) -> ItemText:
        """The item's searchable text, normalised at most once while it stays cached."""
        key = (url, entry.seq)
        found = self._texts.get(key)
        if found is not None and found[0] is entry.item:
            return found[1]
        text = item_text(entry.item.title, entry.item.summary)
        self.computed += 1
        if len(self._texts) >= self._size:
            del self._texts[next(iter(self._texts))]
        self._texts[key] = (entry.item, text)
        return text


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class Matcher:
    """A compiled :class:`~bot.models.Filters`: word sets and substrings to look for."""

    include_words: frozenset[str]
    include_parts: tuple[str, ...]
    exclude_words: frozenset[str]
    exclude_parts: tuple[str, ...]

    def passes(self, text: ItemText) -> bool:
        """Whether an item with this text gets through (see the module docstring)."""
        if not self.exclude_words.isdisjoint(text.words):
            return False
        padded = text.padded
        for part in self.exclude_parts:
            if part in padded:
                return False
        if not self.include_words and not self.include_parts:
            return True
        if not self.include_words.isdisjoint(text.words):
            return True
        return any(part in padded for part in self.include_parts)


def _compile_terms(terms: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    words: set[str] = set()
    parts: list[str] = []
    for term in terms:
        normalized = normalize(term)
        found = tokens(normalized)
        if not found:
            continue
        if _UNSPACED_RE.search(normalized):
            parts.append(" ".join(found))  # no word boundaries in these scripts
        elif len(found) == 1:
            words.add(found[0])
        else:
            parts.append(f" {' '.join(found)} ")
    return frozenset(words), tuple(dict.fromkeys(parts))


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def compile_filters(filters: Filters) -> Matcher:
    """The matcher of ``filters``, built once per distinct value (bounded LRU cache)."""
    include_words, include_parts = _compile_terms(filters.include)
    exclude_words, exclude_parts = _compile_terms(filters.exclude)
    return Matcher(include_words, include_parts, exclude_words, exclude_parts)


def passes(text: ItemText, *filters: Filters) -> bool:
    """Whether an item passes every one of ``filters`` (empty ones let everything by)."""
    return all(compile_filters(f).passes(text) for f in filters if f)


@dataclass(frozen=True, slots=True)
class Screened:
    """What a chat's backlogs hold after mutes and filters.

    Attributes:
        backlogs: what is still to be sent (backlogs with nothing wanted left out).
        advances: cursors to move without sending (muted or wholly filtered-out feeds).
        dropped: items held back (muted or filtered out), for the counters.
    """

    backlogs: list[Backlog]
    advances: dict[str, int]
    dropped: int


def screen(backlogs: list[Backlog], chat_filters: Filters, texts: TextCache) -> Screened:
    """Apply mutes and keyword filters to a chat's backlogs before they are formatted.

    A muted subscription sends nothing (not even a note about skipped items); a backlog
    whose items are all filtered out sends nothing unless the chat missed items (that note
    stays: the missed items might have matched). Either way its cursor moves to the feed's
    head, exactly as if the items had been delivered, so they are never sent later — not
    after an unmute, not after the filters change. A backlog with some items left keeps
    its head, so the message carrying the last of them moves the cursor past the rest.
    """
    chat_matcher = compile_filters(chat_filters) if chat_filters else None
    kept: list[Backlog] = []
    advances: dict[str, int] = {}
    dropped = 0
    for backlog in backlogs:
        sub = backlog.sub
        if sub is not None and sub.muted:
            advances[backlog.url] = backlog.head
            dropped += len(backlog.entries)
            continue
        sub_filters = sub.filters if sub is not None else NO_FILTERS
        matchers = [m for m in (chat_matcher, compile_filters(sub_filters) if sub_filters else None)
                    if m is not None]  # fmt: skip
        if not matchers:
            kept.append(backlog)
            continue
        entries = [
            e for e in backlog.entries
            if all(m.passes(texts.get(backlog.url, e)) for m in matchers)
        ]  # fmt: skip
        dropped += len(backlog.entries) - len(entries)
        if entries or backlog.skipped:
            kept.append(backlog if len(entries) == len(backlog.entries)
                        else replace(backlog, entries=entries))  # fmt: skip
        else:
            advances[backlog.url] = backlog.head
    return Screened(kept, advances, dropped)
