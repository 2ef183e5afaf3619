"""Feed HTML → Telegram's HTML subset (measuring and cutting it: :mod:`bot.telegram_html`).

Why a converter of its own: feed bodies are arbitrary web HTML (scripts, tables, unclosed and
misnested tags, every entity under the sun), while Telegram's ``parse_mode=HTML`` accepts a
handful of tags, four named entities and well-nested markup only — anything else is a
``400 can't parse entities`` and the post is lost. So the item's HTML is *re-written*, never
passed through: the stdlib :class:`html.parser.HTMLParser` (the browser-like tokenizer the
standard library keeps; no regular expressions touch markup) feeds a small state machine that
emits ``<b> <i> <u> <s> <a href> <code> <pre> <blockquote>``, plain text and line breaks,
and always closes what it opened, in order.

Why here and not at send time: conversion costs CPU (a parse of every item body), so it
runs once per item inside the feed-parse step, which already runs in a worker process; what
is stored (:attr:`bot.models.FeedItem.summary`) is finished Telegram HTML, bounded by
:data:`SUMMARY_LIMIT`, and the sender only measures and trims it
(:func:`~bot.telegram_html.visible_len`, :func:`~bot.telegram_html.truncate_html` — cheap, no
feed HTML).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from bot.telegram_html import (
    CLOSE,
    ELLIPSIS,
    OPEN,
    TEXT,
    Event,
    LenientHTMLParser,
    escape_attr,
    parse_telegram,
    render,
)

logger = logging.getLogger(__name__)

# Why about 1,000: a photo caption holds 1,024 visible units, so a summary of this size still
# fits under a title line in one ``sendPhoto`` most of the time; and summaries are stored (for
# the newest 20 items of each feed, see ``bot.storage.state.TEXT_KEEP``), so a bound keeps
# the journal and the snapshot small at many feeds.
SUMMARY_LIMIT: Final = 1000

_FEED_CHUNK: Final = 4096  # feed the parser this much at a time, stopping once past the limit

# Telegram's tags that a converted summary may contain, by what an input tag becomes.
_FORMAT: Final = {
    "b": "b", "strong": "b",
    "i": "i", "em": "i", "cite": "i", "dfn": "i", "var": "i",
    "u": "u", "ins": "u",
    "s": "s", "strike": "s", "del": "s",
    "code": "code", "kbd": "code", "samp": "code", "tt": "code",
}  # fmt: skip
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Content dropped entirely (not just the tag): code, styles, embeds and their fallbacks.
_SKIP: Final = frozenset({
    "script", "style", "head", "title", "template", "iframe", "object", "noscript", "svg",
    "math", "canvas", "video", "audio", "select", "textarea", "frameset", "noembed",
    "noframes",
})  # fmt: skip
# Block elements: how many line breaks they put around themselves (2 = a blank line).
_BLOCK: Final = {
    "p": 2, "hr": 2, "table": 1, "tr": 1, "div": 1, "section": 1, "article": 1,
    "header": 1, "footer": 1, "aside": 1, "nav": 1, "main": 1, "address": 1,
    "figure": 1, "figcaption": 1, "details": 1, "summary": 1, "center": 1, "dl": 1,
    "dt": 1, "dd": 1, "ul": 1, "ol": 1, "li": 1, "h1": 2, "h2": 2, "h3": 2, "h4": 2,
    "h5": 2, "h6": 2, "pre": 1, "blockquote": 1, "caption": 1, "form": 1, "fieldset": 1,
}  # fmt: skip
_CELLS: Final = frozenset({"td", "th"})
_VOID: Final = frozenset({
    "br", "hr", "img", "wbr", "input", "meta", "link", "area", "base", "col", "embed",
    "param", "source", "track",
})  # fmt: skip
# Telegram's nesting rules: pre/code contain nothing; links, code and pre do not contain each
# other; a blockquote holds no blockquote. Bold/italic/underline/strike go anywhere else.
_LEAF: Final = frozenset({"code", "pre"})
_HTML_SPACE: Final = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace (not NBSP) on plain text
_BLANK_LINES: Final = re.compile(r"\n{3,}")  # on plain text, inside <pre>
# An absolute http(s) URL that joining and splitting give back unchanged: lower-case scheme,
# a plain host (no user info, no IPv6 brackets), optional port, a path without ";" (which
# urlparse splits off as parameters), a query and fragment that are absent or not empty, and
# nothing outside printable ASCII. Most feed links are this; they skip two URL parses.
_URL_CHARS: Final = r"A-Za-z0-9\-._~!$&'()*+,=:@%/"
_PLAIN_HTTP_URL_RE: Final = re.compile(
    rf"https?://[A-Za-z0-9\-.]+(?::[0-9]{{1,5}})?(?:/[{_URL_CHARS}]*)?"
    rf"(?:\?[{_URL_CHARS};?]+)?(?:#[{_URL_CHARS};?]+)?"
)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
_MAX_DEPTH: Final = 64  # deeper input nesting is ignored (bounds the work per tag)
_MAX_INDENT: Final = 4  # list levels shown by indentation
_IMAGE_SCAN: Final = 32768  # past the limit, keep reading this far only to find an image
_TRACKING_SIZES: Final = frozenset({"0", "1", "1px", "0px"})
_EMOJI_CLASSES: Final = frozenset({"emoji", "wp-smiley"})


# --------------------------------------------------------------------------- conversion


@dataclass(frozen=True, slots=True)
class RichText:
    """One parse of an item body: its Telegram HTML and its first image (absolute URL)."""

    html: str
    image: str | None


def convert(
    html_text: str, base_url: str | None, *, limit: int = SUMMARY_LIMIT, find_image: bool = True
) -> RichText:
    """Convert feed HTML (or plain text) and find its first image, in one parse.

    Parsers call this once per item (the body is read once for both answers; there is no
    separate image finder, which would read it twice); :func:`to_telegram_html` is this
    without the image. ``find_image=False`` (the feed already declares the item's image) lets
    the parse stop as soon as the text is past ``limit``. The first image is the first
    ``<img>`` (or lazy ``data-src``) outside skipped content that resolves to an http(s) URL;
    ``data:`` URIs, emoji images and 1×1 tracking pixels are passed over.
    """
    text = clean_text(html_text)
    # Plain text (no markup at all) keeps its line breaks; in HTML they are just spaces.
    converter = _Converter(base_url, plain="<" not in text)
    converter.image_done = not find_image
    for start in range(0, len(text), _FEED_CHUNK):
        converter.feed(text[start : start + _FEED_CHUNK])
        if converter.visible > limit and (converter.image_done or start >= _IMAGE_SCAN):
            break  # the rest would be cut anyway: a megabyte body costs what 32 KiB does
    else:
        converter.close()
    return RichText(render(converter.finish(), limit, ELLIPSIS), converter.image)


def to_telegram_html(html_text: str, base_url: str | None, *, limit: int = SUMMARY_LIMIT) -> str:
    """Feed HTML (or plain text) as Telegram HTML of at most ``limit`` visible UTF-16 units.

    Args:
        html_text: an item's ``content``/``description`` as the feed gives it; plain text
            is HTML without tags, so it needs no separate path.
        base_url: what relative links are resolved against (the item's link); ``None``
            keeps only links that are already absolute.
        limit: the visible-length bound; a longer text is cut at a word boundary with "…".

    Returns:
        Well-formed Telegram HTML (only ``<b> <i> <u> <s> <a href> <code> <pre>
        <blockquote>``, entities only ``&lt; &gt; &amp; &quot;``); "" for a body with no
        text.
    """
    return convert(html_text, base_url, limit=limit).html


def html_to_text(html_text: str, *, limit: int = SUMMARY_LIMIT) -> str:
    """The visible text of feed HTML, without markup: what :func:`to_telegram_html` shows.

    For plain-text uses of HTML (an HTML-typed title, a title made from a body): the same
    rules decide what is text (scripts dropped, blocks become line breaks, entities decoded),
    so a title and a summary never disagree about it.
    """
    rendered = to_telegram_html(html_text, None, limit=limit)
    return "".join(text for kind, text, _ in parse_telegram(rendered) if kind == TEXT)


def absolute_http_url(url: str | None, base_url: str | None) -> str | None:
    """``url`` resolved against ``base_url`` when the result is an http(s) URL with a host.

    Everything else — ``javascript:``, ``data:``, ``mailto:``, a relative link without a
    base, a URL Python cannot split — is ``None``: a summary only links to the web.
    """
    if not url:
        return None
    plain_base = not base_url or _PLAIN_HTTP_URL_RE.fullmatch(base_url)
    if plain_base and _PLAIN_HTTP_URL_RE.fullmatch(url):
        return url  # what the steps below would give back (tests/test_richtext.py checks)
    try:
        joined = urljoin(base_url, url.strip()) if base_url else url.strip()
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.geturl()


def clean_text(text: str) -> str:
    r"""Text that can be stored and sent: controls dropped, lone surrogates replaced.

    C0 controls other than tab and line breaks go (never text in a post); a lone surrogate
    (JSON can carry one, ``"\ud800"``; XML cannot) becomes U+FFFD, because UTF-8 cannot
    encode it and it would fail the whole message.
    """
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text) if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(slots=True)
class _Open:
    want: str  # the Telegram tag asked for
    tag: str  # the Telegram tag written: ``want``, or "" when nesting rules forbid it (a ghost
    #           that only pairs the input's end tag with its start tag)
    attrs: str  # serialised, with a leading space, or ""
    source: str  # the input tag that opened it (what its end tag is called)
    emitted: bool = False  # False while no text followed yet: empty tags are never written


class _Converter(LenientHTMLParser):
    """HTMLParser callbacks → Telegram events, with HTML's whitespace and block rules."""

    def __init__(self, base_url: str | None, *, plain: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.plain = plain
        self.events: list[Event] = []
        self.visible = 0  # code points of text so far (≤ UTF-16 units: a safe early stop)
        self.image: str | None = None
        self.image_done = False
        self._stack: list[_Open] = []
        self._skip: list[str] = []
        self._lists: list[list[int]] = []  # per open list: [ordered (0/1), next number]
        self._newlines = 0  # line breaks owed before the next text (2 = blank line)
        self._space = False  # a space owed before the next text
        self._prefix = ""  # a list bullet owed before the next text
        self._trailing_newlines = 0  # how many "\n" end the output (caps blank lines)
        self._pre = 0
        self._unwritten = 0  # tags on the stack not written yet (they wait for text)

    # ---------------------------------------------------------------- HTMLParser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Map a start tag: formatting opens (lazily), blocks break lines, skips start."""
        if self._skip:
            if tag in _SKIP:
                self._skip.append(tag)
            return
        if tag == "img":
            self._img(dict(attrs))
            return
        if tag in _SKIP:
            self._skip.append(tag)
            return
        if tag in _BLOCK:
            self._break(_BLOCK[tag])
        if tag in _CELLS:
            self._space = True
        elif tag == "br":
            self._newlines = min(2, self._newlines + 1) if self.events else 0
        elif tag in ("ul", "ol"):
            start = dict(attrs).get("start") or "1"
            self._lists.append([tag == "ol", int(start) if start.isdigit() else 1])
        elif tag == "li":
            self._list_item()
        elif tag in _FORMAT:
            self._open(_FORMAT[tag], "", tag)
        elif tag in _HEADINGS:
            self._open("b", "", tag)
        elif tag in ("pre", "blockquote"):
            self._open(tag, "", tag)
            self._pre += tag == "pre"
        elif tag == "a":
            href = absolute_http_url(dict(attrs).get("href"), self.base_url)
            self._open("a", f' href="{escape_attr(href)}"' if href else "", tag, allow=bool(href))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """``<br/>``-style tags: a start without content (``<b/>`` opens nothing lasting)."""
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        """Close what this end tag opened (and reopen what it wrongly enclosed)."""
        if self._skip:
            if tag in self._skip:
                # the innermost of that name; skips left open inside it end with it
                del self._skip[len(self._skip) - 1 - self._skip[::-1].index(tag) :]
            return
        if tag in _VOID:
            return
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._close(tag)
        if tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        if tag in _BLOCK:
            self._break(1 if tag in _HEADINGS else _BLOCK[tag])
        elif tag in _CELLS:
            self._space = True

    def handle_data(self, data: str) -> None:
        """Text: whitespace collapsed as a browser does (kept as is inside ``<pre>``)."""
        if self._skip:
            return
        if self._pre:
            text = _BLANK_LINES.sub("\n\n", data.replace("\r\n", "\n").replace("\r", "\n"))
            if not self.visible:  # nothing before it: no blank lines, and no blank text
                text = text.lstrip("\n") if text.strip() else ""
            else:  # at most one blank line, counting the breaks already there or owed
                newlines = len(text) - len(text.lstrip("\n"))
                room = max(0, 2 - max(self._trailing_newlines, self._newlines))
                text = text[newlines - min(newlines, room) :]
            if text:
                self._emit_text(text, collapse=False)
            return
        if self.plain and "\n" in data:
            lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for index, line in enumerate(lines):
                if index:  # one line break is a line, more are a paragraph
                    self._newlines = min(2, self._newlines + 1) if self.events else 0
                self._words(line)
            return
        self._words(data)

    def _words(self, data: str) -> None:
        """Collapsed text: one event per run (per word would triple the cost of a body)."""
        text = _HTML_SPACE.sub(" ", data)
        if text[:1] == " ":
            self._space = True
            text = text[1:]
        trailing = text[-1:] == " "
        if trailing:
            text = text[:-1]
        if text:
            self._emit_text(text, collapse=True)
        if trailing:
            self._space = True

    # ---------------------------------------------------------------- building blocks

    def finish(self) -> list[Event]:
        """The events, with every tag still open closed in order."""
        while self._stack:
            self._pop()
        return self.events

    def _img(self, attrs: dict[str, str | None]) -> None:
        classes = set((attrs.get("class") or "").split())
        if classes & _EMOJI_CLASSES:
            alt = attrs.get("alt") or ""
            if alt and not self._skip:
                self.handle_data(alt)  # WordPress turns emoji into images; keep the emoji
            return
        if self.image_done:
            return
        if (attrs.get("width") or "").strip() in _TRACKING_SIZES or (
            attrs.get("height") or ""
        ).strip() in _TRACKING_SIZES:
            return
        source = attrs.get("src") or attrs.get("data-src")
        url = absolute_http_url(source, self.base_url)
        if url:
            self.image, self.image_done = url, True

    def _break(self, lines: int) -> None:
        if self.events:
            self._newlines = max(self._newlines, lines)
        self._space = False

    def _list_item(self) -> None:
        depth = min(_MAX_INDENT, max(1, len(self._lists)))
        if self._lists and self._lists[-1][0]:
            number = self._lists[-1][1]
            self._lists[-1][1] += 1
            self._prefix = "  " * (depth - 1) + f"{number}. "
        else:
            self._prefix = "  " * (depth - 1) + "• "

    def _allowed(self, tag: str) -> bool:
        """Telegram's nesting rules, and no tag inside one of its kind (it would add nothing).

        Code and pre hold no other tag; links, code and pre do not hold each other; a
        blockquote holds no blockquote and sits in no link. Code and pre are also kept out of
        bold/italic/underline/strike: the Bot API documents those as containing "any other
        entities, except pre and code", so the safe reading is not to try.
        """
        open_tags = {o.tag for o in self._stack}
        if open_tags & _LEAF or tag in open_tags:
            return False
        if tag in _LEAF:
            return not open_tags & {"a", "b", "i", "u", "s"}
        if tag == "blockquote":
            return "a" not in open_tags
        return True

    def _open(self, tag: str, attrs: str, source: str, *, allow: bool = True) -> None:
        if len(self._stack) < _MAX_DEPTH:
            written = tag if allow and self._allowed(tag) else ""
            self._stack.append(_Open(tag, written, attrs, source))
            self._unwritten += bool(written)

    def _close(self, source: str) -> None:
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index].source == source:
                break
        else:
            return  # an end tag for something never opened (or dropped): ignore it
        enclosed = self._stack[index + 1 :]
        while len(self._stack) > index:
            self._pop()
        for inner in enclosed:  # misnested (<b><i>x</b>y</i>): reopen what was cut short
            self._open(inner.want, inner.attrs, inner.source, allow=bool(inner.tag))

    def _pop(self) -> None:
        entry = self._stack.pop()
        if entry.emitted:
            self.events.append((CLOSE, entry.tag, f"</{entry.tag}>"))
        elif entry.tag:
            self._unwritten -= 1

    def _emit_text(self, text: str, *, collapse: bool) -> None:
        if self.events:
            if self._newlines > self._trailing_newlines:
                self._add("\n" * (self._newlines - self._trailing_newlines))
            elif self._space and collapse and not self._trailing_newlines:
                self._add(" ")
        self._newlines, self._space = 0, False
        if self._prefix:
            self._add(self._prefix if self.visible else self._prefix.lstrip())
            self._prefix = ""
        if self._unwritten:
            for entry in self._stack:
                if entry.tag and not entry.emitted:
                    entry.emitted = True
                    self.events.append((OPEN, entry.tag, f"<{entry.tag}{entry.attrs}>"))
            self._unwritten = 0
        self._add(text)

    def _add(self, text: str) -> None:
        events = self.events
        if events and events[-1][0] == TEXT:  # one event per run of text: less to render
            events[-1] = (TEXT, events[-1][1] + text, "")
        else:
            events.append((TEXT, text, ""))
        self.visible += len(text)
        if "\n" not in text:
            self._trailing_newlines = 0
            return
        stripped = text.rstrip("\n")
        if stripped:
            self._trailing_newlines = len(text) - len(stripped)
        else:
            self._trailing_newlines += len(text)
