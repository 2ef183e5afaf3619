"""Fetching feed documents from addresses that Telegram users type in.

This is the only code that talks to feed servers, and feed URLs are attacker-controlled, so
every request is fenced in:

* **SSRF guard** (:mod:`bot.services.netguard`): the shared session's connector resolves
  each host once, checks every address and connects to the checked IP; this module refuses
  bad URLs and IP literals up front and re-checks the peer of any connection the guard did
  not open.
* **Redirects by hand**: each hop is checked the same way, at most ``max_redirects``.
* **Deadlines**: a connect timeout, a read timeout and one total deadline around the whole
  fetch.
* **Size cap after decompression**, enforced while streaming with a bounded decompressor, so
  a gzip bomb costs at most ``max_bytes`` of memory (see :func:`_read_body`).
* **Conditional GET**: ``If-None-Match``/``If-Modified-Since``; a 304 costs no parse.

Full URLs may carry feed tokens in the query string, so they are only logged as host + path
at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
import yarl

from bot.i18n import N_
from bot.services.feed_errors import (
    HTTP_NO_TARGET_REASON,
    TOO_LARGE_REASON,
    BadURLError,
    BlockedAddressError,
    ConnectError,
    DNSError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    NetworkError,
    TLSError,
    TooLargeError,
    TooManyRedirectsError,
)
from bot.services.netguard import (
    GuardedConnector,
    ip_literal,
    is_public_address,
    numeric_ipv4,
)

logger = logging.getLogger(__name__)

MAX_URL_LENGTH: Final = 2048
# ASCII control characters: no valid URL holds one, and a NUL in a host name would reach the
# resolver (which raises ValueError for it) instead of being refused as a bad address.
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")
_REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
# User-facing reasons (``FeedError.reason``). Class defaults are defined once, in
# bot/services/feed_errors.py; the names below are kept for callers and tests, and the
# bad-URL variants are the fetcher's own, more specific sentences.
REASON_BLOCKED: Final = BlockedAddressError.reason
REASON_SCHEME: Final = N_("only http:// and https:// addresses are allowed")
REASON_USERINFO: Final = N_("addresses with a user name or password are not allowed")
REASON_BAD_URL: Final = BadURLError.reason
REASON_BAD_REDIRECT: Final = N_("the server redirected to an invalid address")
REASON_TOO_LONG: Final = N_("that address is too long")
REASON_DNS: Final = DNSError.reason
REASON_CONNECT: Final = ConnectError.reason
REASON_CERT: Final = TLSError.reason
REASON_TIMEOUT: Final = FetchTimeoutError.reason
REASON_REDIRECTS: Final = TooManyRedirectsError.reason
REASON_NETWORK: Final = NetworkError.reason

FeedFetchError = FetchError
"""The old name of :class:`~bot.services.feed_errors.FetchError`, kept for existing imports."""


@dataclass(frozen=True)
class FetchResult:
    """The outcome of a successful fetch.

    Attributes:
        url: the final URL, after redirects (use it as the base for relative links).
        status: ``ok`` with a body, or ``not_modified`` (HTTP 304) without one.
        body: the decompressed body, at most ``max_bytes``; None when not modified.
        etag: the ``ETag`` to send next time.
        last_modified: the ``Last-Modified`` to send next time.
        content_type: the response's ``Content-Type`` header, if any.
    """

    url: str
    status: Literal["ok", "not_modified"]
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None


# --------------------------------------------------------------------------- fetcher


def _safe_for_log(url: str) -> str:
    """Host and path only: query strings and fragments may hold feed tokens."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}{parts.path}"


class _Decoder:
    """Content-Encoding decoder whose output per call is capped (gzip/deflate via zlib).

    HTTP clients' own decoders inflate each network chunk in one go: a 64 KiB chunk of a gzip
    bomb becomes ~64 MiB before any size check can run (measured with a 5 MiB cap: 148.5 MB
    peak for a 1 GiB bomb read with httpx's ``aiter_bytes``, 12.2 MB with this decoder), so
    the session reads raw bytes (``auto_decompress=False``) and decodes here. Every
    ``decompress`` call gets ``max_length`` = the remaining budget + 1, so decoded data in
    memory stays below about twice ``max_bytes``.
    """

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._first = True
        self._zlib: Any = None
        if coding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)

    @property
    def done(self) -> bool:
        """True once the compressed stream has ended (trailing bytes are ignored)."""
        return self._zlib is not None and self._zlib.eof

    def decode(self, data: bytes, budget: int) -> bytes:
        """Decode ``data``; returns at most ``budget + 1`` bytes (more than that is too large).

        Output shorter than the cap means zlib consumed all input (``unconsumed_tail`` is only
        left when the cap was hit), so nothing is lost by returning after one call.

        Raises:
            zlib.error: the compressed stream is corrupt.
        """
        if self._zlib is None:
            return data
        first, self._first = self._first, False
        try:
            return bytes(self._zlib.decompress(data, budget + 1))
        except zlib.error:
            if not (first and self._coding == "deflate"):
                raise
        # "deflate" is often sent as raw deflate without the zlib header; like browsers,
        # retry the first chunk as raw deflate.
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return bytes(self._zlib.decompress(data, budget + 1))


class Fetcher:
    """Fetches feed documents safely; one instance shares the bot's one HTTP session.

    The address guard lives in the session's connector (see
    :func:`~bot.services.netguard.create_http_client`); this class refuses bad URLs and IP
    literals up front (so they never reach the network and get a precise reason), follows
    redirects by hand, enforces the deadlines and size cap, and checks the peer address of
    every connection when the session's connector is not a
    :class:`~bot.services.netguard.GuardedConnector` (defence in depth against a mis-wired
    session).
    """

    def __init__(
        self,
        client: aiohttp.ClientSession,
        *,
        allow_private: bool,
        max_bytes: int,
        connect_timeout: float = 5.0,
        total_timeout: float = 20.0,
        max_redirects: int = 5,
    ) -> None:
        self._client = client
        self._guarded = isinstance(client.connector, GuardedConnector)
        self._allow_private = allow_private
        self._max_bytes = max_bytes
        self._total_timeout = total_timeout
        self._max_redirects = max_redirects
        # No limit on waiting for a free pooled connection (the total deadline covers it);
        # TCP + TLS connect within connect_timeout (the guarded resolver bounds DNS by the
        # same figure); each read within the total deadline's length.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=total_timeout
        )

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Fetch ``url`` (following up to ``max_redirects`` checked redirects).

        Args:
            url: the feed address as the user gave it.
            etag: sent as ``If-None-Match``.
            last_modified: sent as ``If-Modified-Since``.

        Returns:
            The final URL, body (``ok``) or no body (``not_modified``), and cache validators.

        Raises:
            FetchError: a subclass per cause (bot/services/feed_errors.py), each with a
                user-safe ``reason`` and a metrics ``kind``.
        """
        try:
            async with asyncio.timeout(self._total_timeout):
                return await self._fetch(url, etag, last_modified)
        except TimeoutError as exc:
            logger.debug("fetch of %s timed out", _safe_for_log(url))
            raise FetchTimeoutError from exc

    def _check_url(self, raw: str) -> str:
        """Validate one hop's URL and return it with a canonical numeric host, if any."""
        raw = raw.strip()
        if len(raw) > MAX_URL_LENGTH:
            raise BadURLError(REASON_TOO_LONG)
        if _CONTROL_CHARS.search(raw):
            raise BadURLError
        try:
            parts = urlsplit(raw)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as exc:
            raise BadURLError from exc
        if parts.scheme.lower() not in ("http", "https"):
            raise BadURLError(REASON_SCHEME)
        if "@" in parts.netloc:
            raise BadURLError(REASON_USERINFO)
        if not host:
            raise BadURLError
        numeric = numeric_ipv4(host)
        if numeric is not None and numeric != host:
            netloc = numeric if parts.port is None else f"{numeric}:{parts.port}"
            parts = parts._replace(netloc=netloc)
            raw = urlunsplit(parts)
            host = numeric
        if not self._allow_private:
            if ip_literal(host) is not None and not is_public_address(host):
                raise BlockedAddressError
            if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
                raise BlockedAddressError
        try:
            yarl.URL(raw)  # what the session will parse: refuse here what it would refuse
        except (ValueError, TypeError) as exc:
            raise BadURLError from exc
        return raw

    def _check_peer(self, response: aiohttp.ClientResponse) -> None:
        """Refuse a response whose connection went to a non-public address.

        Connections of a :class:`GuardedConnector` were checked before connecting; this only
        matters when the session was built some other way, and then an unknown peer is
        refused too.
        """
        if self._allow_private or self._guarded:
            return
        connection = response.connection
        transport = connection.transport if connection is not None else None
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer or not is_public_address(str(peer[0])):
            raise BlockedAddressError

    def _redirect_target(self, current: str, location: str) -> str:
        """The checked URL a ``Location`` points to, judged as text like the first URL.

        Numeric spellings such as ``http://0177.0.0.1/`` are canonicalised and refused like
        any other internal address; a target that is no web address at all is "an invalid
        address" of the server's, not the user's.
        """
        try:
            return self._check_url(urljoin(current, location.strip()))
        except BadURLError as exc:
            if exc.reason == REASON_BAD_URL:
                raise BadURLError(REASON_BAD_REDIRECT) from exc
            raise
        except ValueError as exc:  # urljoin: e.g. an unbalanced "[" in the host
            raise BadURLError(REASON_BAD_REDIRECT) from exc

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        current = self._check_url(url)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _hop in range(self._max_redirects + 1):
            logger.debug("GET %s", _safe_for_log(current))
            try:
                async with self._client.get(
                    current, headers=headers, allow_redirects=False, timeout=self._timeout
                ) as response:
                    self._check_peer(response)
                    status = response.status
                    if status in _REDIRECT_CODES:
                        location = response.headers.get("location")
                        if not location:
                            raise HTTPStatusError(
                                status, HTTP_NO_TARGET_REASON % {"status": status}
                            )
                        current = self._redirect_target(current, location)
                        continue
                    if status == 304 and (etag or last_modified):
                        return FetchResult(
                            url=current,
                            status="not_modified",
                            body=None,
                            etag=response.headers.get("etag") or etag,
                            last_modified=response.headers.get("last-modified") or last_modified,
                            content_type=response.headers.get("content-type"),
                        )
                    if not 200 <= status < 300:
                        raise HTTPStatusError(status)
                    body = await self._read_body(response)
                    return FetchResult(
                        url=current,
                        status="ok",
                        body=body,
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                        content_type=response.headers.get("content-type"),
                    )
            except aiohttp.ClientConnectorCertificateError as exc:
                raise TLSError from exc
            except aiohttp.ClientConnectorDNSError as exc:
                raise DNSError from exc  # only a session without the guarded resolver
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError from exc
            except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
                # A connect or read timeout (the total deadline surfaces in fetch()).
                raise FetchTimeoutError from exc
            except aiohttp.InvalidURL as exc:
                raise BadURLError from exc
            except (aiohttp.ClientError, OSError) as exc:
                logger.debug("fetch of %s failed: %s", _safe_for_log(current), type(exc).__name__)
                raise NetworkError from exc
        raise TooManyRedirectsError

    def _too_large(self) -> TooLargeError:
        return TooLargeError(TOO_LARGE_REASON % {"size": _human_size(self._max_bytes)})

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Stream the body, decompressing with a bounded decoder, capped at ``max_bytes``.

        The raw (compressed) bytes are capped at ``max_bytes`` too, so a server cannot keep us
        reading garbage after the end of a compressed stream.
        """
        declared = response.headers.get("content-length")
        if declared and declared.strip().isdigit() and int(declared) > self._max_bytes:
            raise self._too_large()
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        coding = {"x-gzip": "gzip", "": "identity"}.get(coding, coding)
        if coding not in ("identity", "gzip", "deflate"):
            # We never offer anything else; stacked codings ("gzip, gzip") are a bomb trick.
            raise NetworkError(N_("the server used an unsupported compression"))
        decoder = _Decoder(coding)
        body = bytearray()
        raw_total = 0
        async for raw in response.content.iter_any():
            raw_total += len(raw)
            if raw_total > self._max_bytes:
                raise self._too_large()
            try:
                body += decoder.decode(raw, self._max_bytes - len(body))
            except zlib.error as exc:
                raise NetworkError(N_("the server sent a corrupt compressed body")) from exc
            if len(body) > self._max_bytes:
                raise self._too_large()
            if decoder.done:
                break
        return bytes(body)


def _human_size(n: int) -> str:
    """``5242880`` → ``5 MiB``; ``1536`` → ``1.5 KiB``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
