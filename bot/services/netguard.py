"""The SSRF guard: which addresses feed fetching may reach, enforced where sockets open.

Feed URLs are attacker-controlled, so the shared feed client (:func:`create_http_client`) never
connects anywhere unchecked. Only ``http``/``https``, no userinfo, and every address a host
resolves to must be globally routable (unless ``allow_private``). The check lives in the
network backend (:class:`GuardedNetworkBackend`): it resolves the host once, checks every
address and then connects to the *checked IP literal*, so there is no gap between "the
address we checked" and "the address we connected to" for DNS rebinding to slip through. TLS
still uses the hostname for SNI and certificate checks, because only the TCP connect is
redirected. :mod:`bot.services.fetcher` builds on this (URL checks, redirects, size caps).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import httpcore
import httpx

from bot.services.feed_errors import BlockedAddressError, DNSError

logger = logging.getLogger(__name__)

USER_AGENT: Final = "newsbot/0.1 (+https://github.com/newsbot/newsbot; RSS/Atom reader)"
# We only advertise codings we can decode with a bounded output size (zlib's max_length).
ACCEPT_ENCODING: Final = "gzip, deflate"
# A network backend hands a stream back with this extra-info key set to True when it was
# opened by GuardedNetworkBackend (so the fetcher need not re-check its peer address).
GUARD_MARK: Final = "newsbot_guarded"

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> IP address strings``; raises ``OSError`` (e.g. ``socket.gaierror``)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


def numeric_ipv4(host: str) -> str | None:
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


def ip_literal(host: str) -> str | None:
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
        if info == GUARD_MARK:
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
        literal = ip_literal(host) or numeric_ipv4(host)
        if literal is not None:
            answers = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise DNSError from exc
        if not answers or not all(ip_literal(a) for a in answers):
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
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(20.0, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
    )
