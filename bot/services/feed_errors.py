"""Why a feed could not be fetched or read: one small exception hierarchy.

Modelled on httpx's ``_exceptions.py``: callers catch :class:`FeedError` (or one of the two
families, :class:`FetchError` and :class:`ParseError`) and read two attributes that every
instance has:

* ``kind`` — a class-level metrics label, one of ``FEED_FETCH_OUTCOMES`` in
  :mod:`bot.services.metrics` (several classes may share a label, e.g. :class:`TLSError`
  counts as ``connect``);
* ``reason`` — one short sentence that is safe to show the Telegram user who asked: no
  addresses, no exception texts from libraries. Each class has a default; an instance may
  carry a more specific one (``"only http:// and https:// addresses are allowed"``). Reasons
  are English msgids (marked ``N_``), stored as such, and translated where they are shown
  with :func:`localize_reason`.

Why pickling is designed in: :func:`bot.services.feed_parser.parse_feed` runs in a
``ProcessPoolExecutor`` worker, and the pool sends an exception back to the parent with
``pickle``. ``BaseException`` pickles as ``type(exc)(*exc.args)`` plus ``exc.__dict__``, so
each ``__init__`` here keeps ``self.args`` equal to the arguments it takes. The ``__cause__``
(always set: raise these ``from`` the library error) is not pickled, and need not be: it is
for logs in the process that raised it.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

from bot.i18n import N_, Translator

logger = logging.getLogger(__name__)

# Reasons with a value filled in. They are stored filled in (``FeedState.last_error``), so
# :func:`localize_reason` matches them back to these templates to translate them.
HTTP_STATUS_REASON = N_("the server answered %(status)s")
HTTP_NO_TARGET_REASON = N_("the server answered %(status)s without a target")
TOO_LARGE_REASON = N_("the feed is larger than %(size)s")
# A feed in backoff whose last error was not recorded (a state from before errors were kept).
RECENT_FAILURE_REASON = N_("the feed failed recently")
_FILLED_IN = (HTTP_NO_TARGET_REASON, HTTP_STATUS_REASON, TOO_LARGE_REASON)  # longest first
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)  # text, name, text, name, …, text
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    )


_FILLED_IN_PATTERNS = tuple((_template_pattern(t), t) for t in _FILLED_IN)


def localize_reason(reason: str, t: Translator) -> str:
    """``reason`` (a :attr:`FeedError.reason`, possibly read back from storage) in ``t``'s language.

    Reasons are English msgids; the few with a value in them are matched back to their
    template first. A reason the catalogue does not know is shown as it is.
    """
    translated = t.gettext(reason)
    if translated != reason:
        return translated
    for pattern, template in _FILLED_IN_PATTERNS:
        match = pattern.fullmatch(reason)
        if match:
            return t.gettext(template) % match.groupdict()
    return reason


class FeedError(Exception):
    """Base class: a feed could not be used. Never raised itself (it has no ``kind``).

    Attributes:
        kind: metrics label of the class (``FEED_FETCH_OUTCOMES``).
        reason: one short user-facing sentence; the class default unless given.
    """

    kind: ClassVar[str]
    reason: str = N_("the feed could not be used")

    def __init__(self, reason: str | None = None) -> None:
        if type(self) is FeedError:
            raise TypeError("FeedError is abstract: raise a FetchError or ParseError subclass")
        if reason is not None:
            self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


# --------------------------------------------------------------------------- fetching


class FetchError(FeedError):
    """The document could not be downloaded (raised by :mod:`bot.services.fetcher`)."""

    kind: ClassVar[str] = "network"
    reason = N_("the connection to the server failed")


class BadURLError(FetchError):
    """The address (or a redirect's target) is malformed, too long or not http(s)."""

    kind: ClassVar[str] = "bad_url"
    reason = N_("that does not look like a web address")


class BlockedAddressError(FetchError):
    """The address is (or resolves to) a private, loopback or otherwise internal network.

    The reason is uniform on purpose: saying *which* kind of internal address a name
    resolves to would turn the bot into a probe of our network.
    """

    kind: ClassVar[str] = "blocked_address"
    reason = N_("that address is not allowed (private network)")


class DNSError(FetchError):
    """The server's name could not be resolved."""

    kind: ClassVar[str] = "dns"
    reason = N_("could not find that server (DNS lookup failed)")


class ConnectError(FetchError):
    """No TCP connection could be opened to the server."""

    kind: ClassVar[str] = "connect"
    reason = N_("could not connect to the server")


class TLSError(ConnectError):
    """The TLS handshake failed on the certificate (counted as ``connect``)."""

    reason = N_("the server's TLS certificate is not valid")


class FetchTimeoutError(FetchError):
    """The connect timeout or the fetch's total deadline passed."""

    kind: ClassVar[str] = "timeout"
    reason = N_("the server did not answer in time")


class TooLargeError(FetchError):
    """The body (after decompression) is over the size limit."""

    kind: ClassVar[str] = "too_large"
    reason = N_("the feed is too large")


class TooManyRedirectsError(FetchError):
    """The redirect chain is longer than allowed."""

    kind: ClassVar[str] = "too_many_redirects"
    reason = N_("too many redirects")


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no feed.

    Attributes:
        status: the HTTP status code.
    """

    kind: ClassVar[str] = "http_status"

    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__(HTTP_STATUS_REASON % {"status": status} if reason is None else reason)
        self.status = status
        self.args = (status, reason)  # what __init__ takes, so pickle rebuilds it


class NetworkError(FetchError):
    """The transfer failed after connecting (reset, protocol error, corrupt compression)."""


# --------------------------------------------------------------------------- parsing


class ParseError(FeedError):
    """The document was fetched but cannot be read as a feed."""

    kind: ClassVar[str] = "parse_error"
    reason = N_("the feed could not be read")


class NotAFeedError(ParseError):
    """The document is not RSS or Atom (a web page, JSON, other XML, garbage)."""

    reason = N_("this does not look like an RSS or Atom feed")


class EntitiesRefusedError(ParseError):
    """The document declares XML entities (billion laughs, XXE): refused outright."""

    reason = N_("the feed uses XML entity declarations, which are not allowed")


class EmptyDocumentError(ParseError):
    """The document has no content at all (zero bytes or only whitespace)."""

    reason = N_("the feed is empty")


class UndecodableError(ParseError):
    """The document's characters could not be decoded in any encoding we tried."""

    reason = N_("the feed's text encoding could not be read")
