"""The SSRF guard: which addresses feed fetching may reach, enforced where sockets open.

Feed URLs are attacker-controlled, so the shared feed session (:func:`create_http_client`, an
``aiohttp.ClientSession``) never connects anywhere unchecked. Only ``http``/``https``, no
userinfo, and every address a host resolves to must be globally routable (unless
``allow_private``). The check lives in the session's connector (:class:`GuardedConnector`), in
two public aiohttp hooks:

* its resolver (:class:`GuardedResolver`) resolves a host once, checks every address and hands
  aiohttp only those *checked IP literals* to connect to, so there is no gap between "the
  address we checked" and "the address we connected to" for DNS rebinding to slip through;
* its socket factory checks the address of every socket about to connect, IP-literal URLs
  included (aiohttp does not ask the resolver about those).

TLS still uses the URL's hostname for SNI and certificate checks: only the TCP connect goes to
the literal. :mod:`bot.services.fetcher` builds on this (URL checks, redirects, size caps).

Why aiohttp and not httpx for feeds (the Bot API stays on httpx through PTB): measured in the
same run, same local feed server, one core, a conditional GET cost ~3 ms of CPU through
httpx/httpcore/anyio and ~0.5 ms through aiohttp (``benchmarks/bench_fetch.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.services.feed_errors import BlockedAddressError, DNSError, FetchTimeoutError

logger = logging.getLogger(__name__)

USER_AGENT: Final = "newsbot/0.1 (+https://github.com/newsbot/newsbot; RSS/Atom reader)"
# We only advertise codings we can decode with a bounded output size (zlib's max_length).
ACCEPT_ENCODING: Final = "gzip, deflate"
# Connection pool of the feed session: as many connections as the poll runs fetches at once
# (16) plus room for /news and /add; idle ones are kept this many seconds.
MAX_CONNECTIONS: Final = 20
KEEPALIVE_S: Final = 30.0
# Response head limits. aiohttp's defaults (8 KiB per line) refuse real sites that send big
# Content-Security-Policy or Set-Cookie headers; httpx (h11) allowed a 100 KiB head.
MAX_HEADER_LINE: Final = 64 * 1024
MAX_HEADERS: Final = 256

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> IP address strings``; raises ``OSError`` (e.g. ``socket.gaierror``)."""

SocketFactory = aiohttp.SocketFactoryType
"""``addr_info -> unconnected socket``, as aiohttp's ``TCPConnector(socket_factory=)`` takes."""

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


# --------------------------------------------------------------------------- guarded connector


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that answers only with checked addresses.

    ``resolve(host, port)`` looks ``host`` up exactly once (within ``timeout``, so a hanging
    DNS server cannot hold a fetch past the connect timeout), refuses the lot unless *every*
    address is public (when ``allow_private`` is false), and returns those IP literals: aiohttp
    connects to them and to nothing else. With the connector's DNS cache off, every new
    connection gets its own lookup and check.

    Refusals are raised as :class:`~bot.services.feed_errors.FetchError` subclasses, which
    aiohttp passes through unchanged (it only wraps ``OSError``).
    """

    def __init__(
        self, *, allow_private: bool, timeout: float, resolver: Resolver | None = None
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._resolver: Resolver = resolver or system_resolver

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        literal = ip_literal(host) or numeric_ipv4(host)
        if literal is not None:
            answers = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
            except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL; UnicodeError is one
                raise DNSError from exc
        if not answers or not all(ip_literal(a) for a in answers):
            raise DNSError
        if not self._allow_private and not all(is_public_address(a) for a in answers):
            logger.debug("refused %s: resolves to a non-public address", host)
            raise BlockedAddressError
        return [_connect_address(a) for a in answers]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve and check ``host``; ``family`` is ignored (all families are checked)."""
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._checked_addresses(host, port)
        except TimeoutError as exc:
            raise FetchTimeoutError from exc
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release (lookups go through the event loop)."""


def guarded_socket_factory(*, allow_private: bool, inner: SocketFactory | None) -> SocketFactory:
    """A socket factory that refuses to create a socket for a non-public destination.

    aiohttp calls it with the address it is about to connect to, whether that came from
    :class:`GuardedResolver` or straight from an IP-literal URL (which never reaches a
    resolver), so this is the last check before ``connect()``.

    Args:
        allow_private: allow any destination (a trusted, private setup).
        inner: makes the socket once the address passed (tests: a "NAT" to 127.0.0.1).
    """

    def factory(addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if not allow_private and not is_public_address(str(address[0])):
            raise BlockedAddressError
        if inner is not None:
            return inner(addr_info)
        return socket.socket(family, type_, proto)

    return factory


class GuardedConnector(aiohttp.TCPConnector):
    """aiohttp's TCP connector with the SSRF guard in its resolver and socket factory.

    Only construction differs from ``TCPConnector``, through its public parameters: the DNS
    cache is off (one checked lookup per connection) and addresses are tried one after the
    other (no happy-eyeballs race). The :class:`~bot.services.fetcher.Fetcher` trusts the
    connections of a session with this connector; any other session gets its peer address
    checked after connecting.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float,
        resolver: Resolver | None = None,
        socket_factory: SocketFactory | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            resolver=GuardedResolver(
                allow_private=allow_private, timeout=connect_timeout, resolver=resolver
            ),
            use_dns_cache=False,
            ssl=ssl_context or ssl.create_default_context(cafile=certifi.where()),
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_S,
            happy_eyeballs_delay=None,
            socket_factory=guarded_socket_factory(
                allow_private=allow_private, inner=socket_factory
            ),
        )


def create_http_client(
    *,
    allow_private: bool,
    connect_timeout: float = 5.0,
    resolver: Resolver | None = None,
    socket_factory: SocketFactory | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """Build the one shared session for feed fetching, with the SSRF guard in its connector.

    Create it in ``post_init`` (it needs the running loop) and ``close()`` it in
    ``post_shutdown``. The :class:`Fetcher` follows and checks redirects itself and reads the
    raw body (``auto_decompress=False``) to cap it after its own bounded decompression;
    proxies from the environment are ignored (``trust_env=False``) so no ``HTTP_PROXY`` can
    route around the guard. Cookies are kept per site, as a browser (and httpx before) would.

    Args:
        allow_private: allow private/loopback targets (only for a trusted, private setup).
        connect_timeout: seconds for the DNS lookup (the guard's own deadline); the fetcher
            bounds TCP and TLS connects by the same figure.
        resolver: replaces ``getaddrinfo`` (tests use a stub; so could a custom DNS setup).
        socket_factory: makes the socket for a checked address (tests only: a "NAT").
        ssl_context: TLS settings (e.g. a private CA); default: certifi's CAs, verified.
    """
    connector = GuardedConnector(
        allow_private=allow_private,
        connect_timeout=connect_timeout,
        resolver=resolver,
        socket_factory=socket_factory,
        ssl_context=ssl_context,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        auto_decompress=False,
        trust_env=False,
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
        max_headers=MAX_HEADERS,
    )
