"""Fetching feed documents from addresses that Telegram users type in.

This is the only code that talks to feed servers, and feed URLs are attacker-controlled, so
every request is fenced in:

* **SSRF guard.** Only ``http``/``https``, no userinfo, and every address a host resolves to
  must be globally routable (unless ``allow_private``). The check lives in the network
  backend of the shared client (:class:`GuardedNetworkBackend`): it resolves the host once,
  checks every address and then connects to the *checked IP literal*, so there is no gap
  between "the address we checked" and "the address we connected to" for DNS rebinding to
  slip through. TLS still uses the hostname for SNI and certificate checks, because only the
  TCP connect is redirected.
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
import ipaddress
import logging
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from bot.services.feed_errors import (
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

logger = logging.getLogger(__name__)

USER_AGENT: Final = "newsbot/0.1 (+https://github.com/newsbot/newsbot; RSS/Atom reader)"
MAX_URL_LENGTH: Final = 2048
_REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
# We only advertise codings we can decode with a bounded output size (zlib's max_length).
_ACCEPT_ENCODING: Final = "gzip, deflate"
# A network backend hands a stream back with this extra-info key set to True when it was
# opened by GuardedNetworkBackend (so the fetcher need not re-check its peer address).
_GUARD_MARK: Final = "newsbot_guarded"

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> IP address strings``; raises ``OSError`` (e.g. ``socket.gaierror``)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# User-facing reasons (``FeedError.reason``). Class defaults are defined once, in
# bot/services/feed_errors.py; the names below are kept for callers and tests, and the
# bad-URL variants are the fetcher's own, more specific sentences.
REASON_BLOCKED: Final = BlockedAddressError.reason
REASON_SCHEME: Final = "only http:// and https:// addresses are allowed"
REASON_USERINFO: Final = "addresses with a user name or password are not allowed"
REASON_BAD_URL: Final = BadURLError.reason
REASON_BAD_REDIRECT: Final = "the server redirected to an invalid address"
REASON_TOO_LONG: Final = "that address is too long"
REASON_DNS: Final = DNSError.reason
REASON_CONNECT: Final = ConnectError.reason
REASON_CERT: Final = TLSError.reason
REASON_TIMEOUT: Final = FetchTimeoutError.reason
REASON_REDIRECTS: Final = TooManyRedirectsError.reason
REASON_NETWORK: Final = NetworkError.reason

# Networks refused on top of ``not is_global``. ``ipaddress`` (3.11) calls multicast,
# IPv6 site-local (fec0::/10), NAT64 and 6to4 prefixes "global", hence the explicit list;
# NAT64/6to4/Teredo/IPv4-mapped addresses are also unwrapped and their IPv4 part checked.
_BLOCKED_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001:db8::/32",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routable inside some networks)
        "ff00::/8",  # multicast
    )
)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
# Hosts made only of these characters may be numeric IPv4 spellings (2130706433, 0x7f.1).
_NUMERIC_HOST_RE: Final = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


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


# --------------------------------------------------------------------------- address policy


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address really reaches."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        # DNS64 networks synthesise these for every IPv4-only site, so they are judged by
        # their IPv4 part (``ipaddress`` would call all of them reserved).
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _is_blocked(addr: IPAddress) -> bool:
    """True for any address that is not plainly globally routable unicast."""
    return (
        not addr.is_global
        or addr.is_multicast
        or addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_unspecified
        or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
        or any(addr in net for net in _BLOCKED_NETWORKS if net.version == addr.version)
    )


def is_public_address(ip: str) -> bool:
    """Whether ``ip`` (an IP literal, IPv6 zone allowed) is safe to connect to.

    Refuses loopback, private, link-local, CGNAT, multicast, unspecified, reserved,
    documentation ranges, IPv6 ULA/site-local, and IPv4-mapped/NAT64/6to4/Teredo addresses
    that embed any of those.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        return not _is_blocked(addr)
    if addr.scope_id:
        return False  # a zone id only makes sense for link-local targets
    embedded = _embedded_ipv4(addr)
    if embedded is not None:
        return not _is_blocked(embedded)
    candidates: list[IPAddress] = [addr]
    if addr.sixtofour is not None:
        candidates.append(addr.sixtofour)
    if addr.teredo is not None:
        candidates.extend(addr.teredo)
    return not any(_is_blocked(a) for a in candidates)


def _connect_address(ip: str) -> str:
    """The literal to hand to the socket: IPv4-mapped IPv6 is connected over IPv4."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _numeric_ipv4(host: str) -> str | None:
    """The dotted-quad form of a numeric IPv4 spelling (``2130706433``, ``0x7f.1``, ``0177.0.0.1``).

    Resolvers accept these inet_aton spellings and reach the address they encode, so the URL
    is rewritten to the canonical form before anything is checked or connected.
    """
    if not _NUMERIC_HOST_RE.match(host):
        return None
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return socket.inet_ntoa(packed)


def _ip_literal(host: str) -> str | None:
    """``host`` as an IP literal string if it is one (IPv6 without brackets), else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the event loop's ``getaddrinfo``; unique addresses in order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --------------------------------------------------------------------------- guarded backend


class _GuardedStream(httpcore.AsyncNetworkStream):
    """A stream opened by :class:`GuardedNetworkBackend`; marks itself as address-checked."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        # server_hostname is the URL's host (not the IP we connected to): SNI and
        # certificate verification are unaffected by the guard.
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _GuardedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == _GUARD_MARK:
            return True
        return self._inner.get_extra_info(info)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only ever connects to checked IP addresses.

    ``connect_tcp(host, port)`` resolves ``host`` exactly once, refuses the connection unless
    *every* address is public (when ``allow_private`` is false), then asks the inner backend
    to connect to one of those IP literals. The address checked is therefore the address
    connected to: no second lookup exists for a rebinding DNS server to answer differently.

    Refusals are raised as :class:`~bot.services.feed_errors.FetchError` subclasses, which
    httpx passes through unchanged.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver: Resolver = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        literal = _ip_literal(host) or _numeric_ipv4(host)
        if literal is not None:
            answers = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise DNSError from exc
        if not answers or not all(_ip_literal(a) for a in answers):
            raise DNSError
        if not self._allow_private and not all(is_public_address(a) for a in answers):
            logger.debug("refused %s: resolves to a non-public address", host)
            raise BlockedAddressError
        return [_connect_address(a) for a in answers]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, check and connect; the connect timeout covers the DNS lookup too."""
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._checked_addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout("DNS lookup timed out") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _GuardedStream(stream)
        raise last_error or httpcore.ConnectError("no address to connect to")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: feeds are fetched over TCP only."""
        raise BlockedAddressError

    async def sleep(self, seconds: float) -> None:
        """Delegate (httpcore uses it between connection retries)."""
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool rebuilt on a guarded network backend.

    httpx 0.28 has no public hook for a network backend; ``AsyncHTTPTransport`` keeps its
    httpcore pool in ``_pool`` and only forwards requests to it, so swapping that pool (built
    with the same settings) is the smallest change. The isinstance check makes an httpx
    upgrade that changes this fail at client creation rather than silently unguarded.
    """

    def __init__(
        self,
        *,
        backend: GuardedNetworkBackend,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        if not isinstance(self._pool, httpcore.AsyncConnectionPool):  # pragma: no cover
            raise RuntimeError("unsupported httpx version: cannot install the SSRF guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def create_http_client(
    *,
    allow_private: bool,
    connect_timeout: float = 5.0,
    resolver: Resolver | None = None,
    inner_backend: httpcore.AsyncNetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """Build the one shared client for feed fetching, with the SSRF guard in its transport.

    Open it in ``post_init`` and ``aclose()`` it in ``post_shutdown``. Redirects are not
    followed (the :class:`Fetcher` follows and checks them), proxies from the environment are
    ignored (``trust_env=False``) so no ``HTTP_PROXY`` can route around the guard.

    Args:
        allow_private: allow private/loopback targets (only for a trusted, private setup).
        connect_timeout: seconds for DNS lookup plus TCP (and TLS) connect.
        resolver: replaces ``getaddrinfo`` (tests use a stub; so could a custom DNS setup).
        inner_backend: where checked IP literals are really connected (tests only).
        ssl_context: TLS settings (e.g. a private CA); default: certifi's CAs, verified.
    """
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30)
    backend = GuardedNetworkBackend(
        allow_private=allow_private, resolver=resolver, inner=inner_backend
    )
    return httpx.AsyncClient(
        transport=_GuardedTransport(backend=backend, limits=limits, ssl_context=ssl_context),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": _ACCEPT_ENCODING},
        timeout=httpx.Timeout(20.0, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
    )


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
        numeric = _numeric_ipv4(host)
        if numeric is not None and numeric != host:
            netloc = numeric if parts.port is None else f"{numeric}:{parts.port}"
            parts = parts._replace(netloc=netloc)
            raw = urlunsplit(parts)
            host = numeric
        if not self._allow_private:
            if _ip_literal(host) is not None and not is_public_address(host):
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
        if stream is None or stream.get_extra_info(_GUARD_MARK):
            return
        peer = stream.get_extra_info("server_addr")
        if peer and not is_public_address(str(peer[0])):
            raise BlockedAddressError

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        current = self._check_url(url)
        headers: dict[str, str] = {"Accept-Encoding": _ACCEPT_ENCODING}
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
                                status, f"the server answered {status} without a target"
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
        return TooLargeError(f"the feed is larger than {_human_size(self._max_bytes)}")

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
            raise NetworkError("the server used an unsupported compression")
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
                raise NetworkError("the server sent a corrupt compressed body") from exc
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
