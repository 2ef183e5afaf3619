"""Fetching feed documents from addresses that Telegram users type in.

This is the only code that talks to feed servers, and feed URLs are attacker-controlled, so
every request is fenced in:

* **SSRF guard** (:mod:`bot.services.netguard`): the shared client's network backend resolves
  each host once, checks every address and connects to the checked IP; this module refuses
  bad URLs and IP literals up front and re-checks the peer of any connection the guard did
  not open.
* **Redirects by hand**: each hop is checked the same way, at most ``max_redirects``.
* **Deadlines**: a connect timeout and one total deadline around the whole fetch.
* **Size cap after decompression**, enforced while streaming with a bounded decompressor, so
  a gzip bomb costs at most ``max_bytes`` of memory (see :func:`_read_body`).
* **Conditional GET**: ``If-None-Match``/``If-Modified-Since``; a 304 costs no parse.

Full URLs may carry feed tokens in the query string, so they are only logged as host + path
at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

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
    ACCEPT_ENCODING,
    GUARD_MARK,
    ip_literal,
    is_public_address,
    numeric_ipv4,
)

logger = logging.getLogger(__name__)

MAX_URL_LENGTH: Final = 2048
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

    httpx's own decoders inflate each network chunk in one go: a 64 KiB chunk of a gzip bomb
    becomes ~64 MiB before any size check can run (measured with a 5 MiB cap: 148.5 MB peak
    for a 1 GiB bomb read with ``aiter_bytes``, 12.2 MB with this decoder). Here every
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
        # "deflate" is often sent as raw deflate without the zlib header; like httpx, retry
        # the first chunk as raw deflate.
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return bytes(self._zlib.decompress(data, budget + 1))


class Fetcher:
    """Fetches feed documents safely; one instance shares the bot's one HTTP client.

    The address guard for *hostnames* lives in the client's network backend (see
    :func:`create_http_client`); this class refuses bad URLs and IP literals up front (so
    they never reach the network and get a precise reason), follows redirects by hand,
    enforces the deadline and size cap, and re-checks the peer address of any connection
    that was not opened by the guarded backend (defence in depth against a mis-wired client).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        allow_private: bool,
        max_bytes: int,
        connect_timeout: float = 5.0,
        total_timeout: float = 20.0,
        max_redirects: int = 5,
    ) -> None:
        self._client = client
        self._allow_private = allow_private
        self._max_bytes = max_bytes
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._max_redirects = max_redirects

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
            httpx.URL(raw)
        except httpx.InvalidURL as exc:
            raise BadURLError from exc
        return raw

    def _check_peer(self, response: httpx.Response) -> None:
        """Refuse a response whose connection went to a non-public address.

        Connections from :class:`GuardedNetworkBackend` were checked before connecting and
        carry a mark; this only matters when the client was built some other way.
        """
        if self._allow_private:
            return
        stream = response.extensions.get("network_stream")
        if stream is None or stream.get_extra_info(GUARD_MARK):
            return
        peer = stream.get_extra_info("server_addr")
        if peer and not is_public_address(str(peer[0])):
            raise BlockedAddressError

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        current = self._check_url(url)
        headers: dict[str, str] = {"Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        timeout = httpx.Timeout(self._total_timeout, connect=self._connect_timeout)
        for _hop in range(self._max_redirects + 1):
            logger.debug("GET %s", _safe_for_log(current))
            try:
                async with self._client.stream(
                    "GET", current, headers=headers, timeout=timeout, follow_redirects=False
                ) as response:
                    self._check_peer(response)
                    status = response.status_code
                    if status in _REDIRECT_CODES:
                        location = response.headers.get("location")
                        if not location:
                            raise HTTPStatusError(
                                status, HTTP_NO_TARGET_REASON % {"status": status}
                            )
                        # urljoin, not httpx's join: a hostile Location such as
                        # http://0177.0.0.1/ must reach _check_url as text to be judged.
                        current = self._check_url(urljoin(current, location.strip()))
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
            except httpx.TimeoutException as exc:
                raise FetchTimeoutError from exc
            except httpx.ConnectError as exc:
                if _caused_by(exc, ssl.SSLCertVerificationError):
                    raise TLSError from exc
                raise ConnectError from exc
            except httpx.RemoteProtocolError as exc:
                # httpx parses every redirect's Location itself (for response.next_request),
                # even with follow_redirects=False, and refuses ones like http://0177.0.0.1/.
                if str(exc).startswith("Invalid URL in location header"):
                    raise BadURLError(REASON_BAD_REDIRECT) from exc
                logger.debug("fetch of %s failed: protocol error", _safe_for_log(current))
                raise NetworkError from exc
            except httpx.TransportError as exc:
                logger.debug("fetch of %s failed: %s", _safe_for_log(current), type(exc).__name__)
                raise NetworkError from exc
        raise TooManyRedirectsError

    def _too_large(self) -> TooLargeError:
        return TooLargeError(TOO_LARGE_REASON % {"size": _human_size(self._max_bytes)})

    async def _read_body(self, response: httpx.Response) -> bytes:
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
        async for raw in response.aiter_raw():
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


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is anywhere in ``exc``'s cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _human_size(n: int) -> str:
    """``5242880`` → ``5 MiB``; ``1536`` → ``1.5 KiB``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
