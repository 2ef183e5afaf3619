"""OPML, the file format feed readers use to move subscriptions: read it safely, write 2.0.

Pure (no I/O), so :func:`parse_opml` can run in the parser worker processes and every rule is
tested directly.

Reading (:func:`parse_opml`) accepts OPML 1.0 and 2.0 as readers really write them: feeds are
``<outline>`` elements anywhere under ``<body>`` (folders are outlines that contain others),
the feed address is ``xmlUrl`` (any letter case: ``xmlurl`` and ``xmlURL`` exist in the wild),
or ``url`` on an outline typed ``rss``/``atom`` (a few old exporters). ``type="link"`` and
``type="include"`` outlines point at web pages or other OPML files, not feeds, and are skipped
(following an include would turn one upload into fetches the user never listed). The name is
``title`` or else ``text``. Feeds are de-duplicated by address, first one wins.

The file comes from any Telegram user, so:

* it must be at most :data:`MAX_OPML_BYTES` (1 MiB). A real export of 1,000 feeds is about
  150–250 KB, so 1 MiB holds every honest file with room to spare, while bounding the
  download, the element tree in memory and the parse (measured: ~0.2 s for a full 1 MiB file
  of 5,400 feeds, ~4 ms for a 100-feed export; hence the parser workers, not the event loop).
  Telegram itself would let a bot download 20 MB;
* it is parsed by expat through defusedxml with DTDs forbidden: no entity expansion
  (billion laughs), no external entities or DTD fetches (XXE). OPML never needs a DTD;
* encodings: UTF-8/16 and the single-byte ones (windows-1251, koi8-r, latin-1...) are read by
  expat; multi-byte ones expat lacks (Shift_JIS, GBK, Big5, EUC-KR) are decoded by Python's
  codecs and parsed as UTF-8.

Writing (:func:`export_opml`) produces OPML 2.0 with ``<head>`` (title, dateCreated) and one
``<outline type="rss" text= title= xmlUrl=>`` per feed. It is written as text with every
attribute escaped rather than through an XML library: the shape is fixed and tiny, and it
keeps the module free of XML *writers* (bandit flags the stdlib ones).
"""

from __future__ import annotations

import codecs
import html
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any, ClassVar

import defusedxml
import defusedxml.ElementTree
from babel.numbers import format_decimal

from bot.i18n import N_, Translator

logger = logging.getLogger(__name__)

MAX_OPML_BYTES = 1024 * 1024  # why 1 MiB: see the module docstring
MAX_TITLE_LEN = 200  # longer names are noise; /list shortens further for display
OPML_MIME_TYPES = frozenset({"text/x-opml", "text/xml", "application/xml", "application/x-opml"})
OPML_EXTENSIONS = (".opml", ".xml")
_FEED_TYPES = frozenset({"rss", "atom"})
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# Characters XML 1.0 cannot carry at all (even escaped): C0 controls but tab, LF and CR, lone
# surrogates, U+FFFE/U+FFFF. A feed title may hold one; the export must still parse.
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed of an OPML file: its address and the name the reader showed ("" if none)."""

    url: str
    title: str = ""


# --------------------------------------------------------------------------- errors


class OpmlError(ValueError):
    """The file cannot be imported. ``describe(t)`` is the sentence for the user.

    Subclasses keep ``self.args`` equal to their ``__init__`` arguments so that an error raised
    in a parser worker process pickles back to the bot intact.
    """

    message: ClassVar[str] = N_("that file is not a usable OPML file")

    def params(self, t: Translator) -> dict[str, Any]:
        """Values for the placeholders of :attr:`message`, written for ``t``'s language."""
        return {}

    def describe(self, t: Translator) -> str:
        """The reason, translated, as plain text (escape it for HTML)."""
        return t.gettext(self.message) % self.params(t)


class OpmlTooLargeError(OpmlError):
    """The file is bigger than :data:`MAX_OPML_BYTES`."""

    message = N_("the file is %(size)s; an OPML import takes at most %(cap)s")

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def params(self, t: Translator) -> dict[str, Any]:
        """Sizes in KiB/MiB."""
        return {"size": human_size(self.size, t), "cap": human_size(MAX_OPML_BYTES, t)}


class OpmlMalformedError(OpmlError):
    """Not well-formed XML (truncated, wrong encoding declared, not XML at all)."""

    message = N_("the file is not well-formed XML (%(detail)s)")

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def params(self, t: Translator) -> dict[str, Any]:
        """The parser's own words, e.g. "not well-formed (invalid token): line 3, column 12"."""
        return {"detail": self.detail}


class OpmlUnsafeError(OpmlError):
    """A DTD, entity declaration or external reference: refused, never expanded."""

    message = N_("the file declares a DTD or entities, which OPML never needs; refused for safety")


class OpmlEncodingError(OpmlError):
    """The declared encoding is unknown, or the bytes are not in it."""

    message = N_("the file's text encoding %(encoding)s could not be read")

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding

    def params(self, t: Translator) -> dict[str, Any]:
        """The encoding as declared."""
        return {"encoding": self.encoding}


class NotOpmlError(OpmlError):
    """Well-formed XML whose root is not ``<opml>`` (an RSS feed sent by mistake, say)."""

    message = N_("this is XML but not OPML (its root element is <%(root)s>, not <opml>)")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.root = root

    def params(self, t: Translator) -> dict[str, Any]:
        """The root element's name."""
        return {"root": self.root}


class OpmlEmptyError(OpmlError):
    """An OPML file without a single feed outline."""

    message = N_("the file lists no feeds (no outline has an xmlUrl)")


def human_size(size: int, t: Translator) -> str:
    """``1.5 MiB``, ``640 KiB``, ``12 bytes`` (``1,5 МБ`` in Russian): sizes for users.

    Rounded *up* (to 0.1 MiB, to 1 KiB), so a file just over a cap never reads as the cap.
    The number is written the language's way (decimal comma in Russian), the unit translated.
    """
    if size >= 1024 * 1024:
        tenths = math.ceil(size * 10 / (1024 * 1024))
        number = format_decimal(tenths / 10, format="0.#", locale=t.locale)
        return t.gettext("%(size)s MiB") % {"size": number}
    if size >= 1024:
        return t.gettext("%(size)s KiB") % {"size": math.ceil(size / 1024)}
    return t.ngettext("%(n)d byte", "%(n)d bytes", size) % {"n": size}


# --------------------------------------------------------------------------- reading


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds of an OPML document, de-duplicated, in document order.

    Raises:
        OpmlTooLargeError: more than :data:`MAX_OPML_BYTES`.
        OpmlUnsafeError: a DTD or entity declaration.
        OpmlEncodingError: an encoding that cannot be read.
        OpmlMalformedError: not well-formed XML.
        NotOpmlError: the root element is not ``<opml>``.
        OpmlEmptyError: no feed outlines.
    """
    if len(data) > MAX_OPML_BYTES:
        raise OpmlTooLargeError(len(data))
    root = _parse_xml(data)
    tag = _local_name(root.tag)
    if tag.lower() != "opml":
        raise NotOpmlError(tag)
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for outline in root.iter():
        if not isinstance(outline.tag, str) or _local_name(outline.tag).lower() != "outline":
            continue
        feed = _feed_of({k.lower(): v for k, v in outline.attrib.items()})
        if feed is not None and feed.url not in seen:
            seen.add(feed.url)
            feeds.append(feed)
    if not feeds:
        raise OpmlEmptyError()
    return feeds


def _parse_xml(data: bytes) -> Any:
    """The root element, parsed with DTDs, entities and external references forbidden."""
    try:
        return defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise OpmlUnsafeError() from exc
    except defusedxml.ElementTree.ParseError as exc:
        raise OpmlMalformedError(str(exc)) from exc
    except (ValueError, LookupError) as exc:
        # expat knows no multi-byte encoding but UTF-8/16 (ValueError) and raises
        # LookupError for a name Python does not know either: decode with Python's codecs.
        return _parse_transcoded(data, exc)


def _parse_transcoded(data: bytes, cause: Exception) -> Any:
    declared = _DECLARED_ENCODING.match(data)
    encoding = declared.group(1).decode("ascii") if declared else "?"
    try:
        codecs.lookup(encoding)
        text = data.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        raise OpmlEncodingError(encoding) from cause
    # The declaration must now say what the bytes are: UTF-8.
    raw = text.encode("utf-8")
    match = _DECLARED_ENCODING.match(raw)
    utf8 = raw if match is None else raw[: match.start(1)] + b"utf-8" + raw[match.end(1) :]
    try:
        return defusedxml.ElementTree.fromstring(utf8, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise OpmlUnsafeError() from exc
    except (defusedxml.ElementTree.ParseError, ValueError, LookupError) as exc:
        raise OpmlMalformedError(str(exc)) from exc


def _local_name(tag: str) -> str:
    """``{namespace}name`` → ``name`` (a few exporters put OPML in a namespace)."""
    return tag.rsplit("}", 1)[-1]


def _feed_of(attrs: dict[str, str]) -> OpmlFeed | None:
    url = attrs.get("xmlurl", "").strip()
    if not url and attrs.get("type", "").strip().lower() in _FEED_TYPES:
        url = attrs.get("url", "").strip()
    if not url:
        return None  # a folder, a separator, or a link to a web page
    title = clean_title(attrs.get("title", "")) or clean_title(attrs.get("text", ""))
    return OpmlFeed(url, "" if title == url else title)


def clean_title(text: str) -> str:
    """One line, no characters XML cannot carry, at most :data:`MAX_TITLE_LEN`."""
    flat = " ".join(_NOT_XML_CHARS.sub("", text).split())
    return flat[:MAX_TITLE_LEN].rstrip()


def is_opml_document(file_name: str | None, mime_type: str | None) -> bool:
    """Whether a Telegram document looks like OPML by its name or type (checked before download).

    Readers export ``.opml`` (a few ``.xml``); Telegram guesses the MIME type from the name,
    so either suffices.
    """
    name = (file_name or "").lower()
    return name.endswith(OPML_EXTENSIONS) or (mime_type or "").lower() in OPML_MIME_TYPES


# --------------------------------------------------------------------------- writing


def export_opml(feeds: Iterable[OpmlFeed], *, title: str, created: datetime) -> bytes:
    """An OPML 2.0 document listing ``feeds`` (UTF-8).

    ``text`` is required by OPML 2.0 for every outline: the feed's title, or its address when
    it has none (and then no ``title`` attribute, so an import does not take the address for a
    name).
    """
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{_xml(clean_title(title))}</title>",
        f"    <dateCreated>{format_datetime(created, usegmt=True)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]
    for feed in feeds:
        name = clean_title(feed.title)
        url = _NOT_XML_CHARS.sub("", feed.url)
        named = f' title="{_xml(name)}"' if name else ""
        lines.append(
            f'    <outline type="rss" text="{_xml(name or url)}"{named} xmlUrl="{_xml(url)}"/>'
        )
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _xml(text: str) -> str:
    """Escape for XML text and double-quoted attributes (``&``, ``<``, ``>``, quotes)."""
    return html.escape(text, quote=True)
