"""Hostile-input tests for bot/services/fetcher.py.

Everything runs against servers on 127.0.0.1. Since 127.0.0.1 is exactly what the SSRF guard
refuses, "public" hosts are simulated: a stub resolver answers a public-looking address
(93.184.216.34) and a NAT-like inner backend connects that address to the local server. The
guard itself (resolve → check → connect to the checked IP) is the production code path.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

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
from bot.services.fetcher import (
    REASON_BAD_REDIRECT,
    REASON_BLOCKED,
    REASON_CERT,
    REASON_CONNECT,
    REASON_DNS,
    REASON_NETWORK,
    REASON_REDIRECTS,
    REASON_SCHEME,
    REASON_TIMEOUT,
    REASON_TOO_LONG,
    REASON_USERINFO,
    FeedFetchError,
    Fetcher,
    FetchResult,
)
from bot.services.netguard import USER_AGENT, create_http_client, is_public_address
from tests.helpers.feed_server import FeedServer

PUBLIC_IP = "93.184.216.34"  # what the stub resolver says "feed.example" is
RSS = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>one</title><guid>1</guid></item></channel></rss>"
)
MiB = 1 << 20


# --------------------------------------------------------------------------- test doubles


class StubResolver:
    """Answers from a table; a host with several answers gives them in turn (rebinding)."""

    def __init__(self, table: dict[str, Sequence[Sequence[str]] | Exception]) -> None:
        self._table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        entry = self._table.get(host)
        if entry is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(entry, Exception):
            raise entry
        answers = entry[min(self.calls.count(host), len(entry)) - 1]
        return list(answers)


def public(*hosts: str) -> StubResolver:
    return StubResolver({h: [[PUBLIC_IP]] for h in hosts})


class _NatSocket(socket.socket):
    """A socket whose connect() goes to 127.0.0.1 (same port), whatever address it is given."""

    nat: NatBackend

    def connect(self, address: Any) -> None:
        self.nat.connected.append(str(address[0]))
        super().connect(("127.0.0.1", address[1]))


class NatBackend:
    """Connects every address to 127.0.0.1 (same port) and records what it was asked for.

    The guarded session's socket factory (``create_http_client(socket_factory=...)``): the
    guard has judged the address before this makes the socket.
    """

    def __init__(self) -> None:
        self.connected: list[str] = []

    def __call__(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        sock = _NatSocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.nat = self
        return sock


async def refusing_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver must not be called (asked for {host})")


class RawServer:
    """A TCP server that answers every connection with fixed bytes, then hangs or closes."""

    def __init__(self, response: bytes, *, hang: bool = False) -> None:
        self._response = response
        self._hang = hang
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self._response)
            await writer.drain()
            if self._hang:
                await self._release.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])


def raw_response(headers: dict[str, str], body: bytes, status: str = "200 OK") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as srv:
        yield srv


FetcherFactory = Callable[..., Awaitable[Fetcher]]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[FetcherFactory]:
    """Build a Fetcher on a guarded client; all clients are closed after the test."""
    clients: list[aiohttp.ClientSession] = []

    async def make(
        *,
        allow_private: bool = False,
        resolver: Any = None,
        nat: NatBackend | None = None,
        max_bytes: int = MiB,
        connect_timeout: float = 2.0,
        total_timeout: float = 10.0,
        max_redirects: int = 5,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Fetcher:
        client = create_http_client(
            allow_private=allow_private,
            connect_timeout=connect_timeout,
            resolver=resolver,
            # Always NAT to 127.0.0.1: whatever a test asks for, nothing leaves the machine.
            socket_factory=nat or NatBackend(),
            ssl_context=ssl_context,
        )
        clients.append(client)
        return Fetcher(
            client,
            allow_private=allow_private,
            max_bytes=max_bytes,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
            max_redirects=max_redirects,
        )

    yield make
    for client in clients:
        await client.close()


# The class raised for each metrics kind (TLSError is a ConnectError, kind "connect").
KIND_CLASSES: dict[str, type[FetchError]] = {
    "bad_url": BadURLError,
    "blocked_address": BlockedAddressError,
    "dns": DNSError,
    "connect": ConnectError,
    "timeout": FetchTimeoutError,
    "too_large": TooLargeError,
    "too_many_redirects": TooManyRedirectsError,
    "http_status": HTTPStatusError,
    "network": NetworkError,
}


async def fetch_error(fetcher: Fetcher, url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(url, **kwargs)
    err = info.value
    assert isinstance(err, KIND_CLASSES[err.kind]), (type(err), err.kind)
    return err


def public_url(server: FeedServer, path: str, host: str = "feed.example") -> str:
    return f"http://{host}:{server.port}/{path.lstrip('/')}"


# --------------------------------------------------------------------------- address policy


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",  # multicast: ipaddress calls it is_global
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "::127.0.0.1",  # deprecated IPv4-compatible
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fe80::1%eth0",
        "fec0::1",  # site-local: ipaddress calls it is_global
        "ff02::1",  # multicast: ipaddress calls it is_global
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1: ipaddress calls it is_global
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1: ipaddress calls it is_global
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:db8::1",
        "100::1",
        "not an ip",
    ],
)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert is_public_address(ip) is False


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        PUBLIC_IP,
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200e",
        "::ffff:8.8.8.8",  # mapped public v4 is that v4
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "2002:808:808::1",  # 6to4 of 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert is_public_address(ip) is True


# --------------------------------------------------------------------------- SSRF: URLs


BLOCKED_URL_TEMPLATES = [
    "http://127.0.0.1:{port}/feed",
    "http://2130706433:{port}/feed",
    "http://0x7f000001:{port}/feed",
    "http://0177.0.0.1:{port}/feed",
    "http://127.1:{port}/feed",
    "http://0x7f.1:{port}/feed",
    "http://[::ffff:7f00:1]:{port}/feed",
    "http://[::ffff:127.0.0.1]:{port}/feed",
    "http://[::1]:{port}/feed",
    "http://0.0.0.0:{port}/feed",
    "http://0:{port}/feed",
    "http://[::]:{port}/feed",
    "http://localhost:{port}/feed",
    "http://LOCALHOST.:{port}/feed",
    "http://api.localhost:{port}/feed",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[fc00::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fec0::1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:7f00:1::1]/",
    "https://127.0.0.1:{port}/feed",
]


@pytest.mark.parametrize("template", BLOCKED_URL_TEMPLATES)
async def test_private_and_odd_numeric_urls_are_blocked_without_any_lookup(
    server: FeedServer, make_fetcher: FetcherFactory, template: str
) -> None:
    server.serve("/feed", RSS)
    nat = NatBackend()
    fetcher = await make_fetcher(resolver=refusing_resolver, nat=nat)
    err = await fetch_error(fetcher, template.format(port=server.port))
    assert (err.kind, err.reason) == ("blocked_address", REASON_BLOCKED)
    assert nat.connected == []
    assert server.requests == []


async def test_allow_private_reaches_the_local_server(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/feed", RSS, content_type="application/rss+xml")
    fetcher = await make_fetcher(allow_private=True)
    result = await fetcher.fetch(server.url("/feed"))
    assert result == FetchResult(
        url=server.url("/feed"),
        status="ok",
        body=RSS,
        etag=None,
        last_modified=None,
        content_type="application/rss+xml",
    )


async def test_allow_private_also_accepts_numeric_spellings(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/feed", RSS)
    fetcher = await make_fetcher(allow_private=True)
    result = await fetcher.fetch(f"http://2130706433:{server.port}/feed")
    # The numeric spelling is canonicalised before anything is checked or connected.
    assert result.url == f"http://127.0.0.1:{server.port}/feed"
    assert result.body == RSS


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["10.1.2.3"],
        ["169.254.169.254"],
        ["100.64.1.1"],
        ["0.0.0.0"],
        ["::1"],
        ["fd00::1"],
        ["fe80::1%eth0"],
        ["::ffff:127.0.0.1"],
        ["::ffff:10.0.0.1"],
        ["64:ff9b::7f00:1"],
        ["2002:a00:1::1"],
        ["224.0.0.251"],
        ["ff02::1"],
        [PUBLIC_IP, "10.0.0.1"],  # one bad answer spoils the lot
        ["10.0.0.1", PUBLIC_IP],
        ["not-an-ip"],
        [],
    ],
)
async def test_hostnames_resolving_to_private_addresses_are_blocked(
    server: FeedServer, make_fetcher: FetcherFactory, answers: list[str]
) -> None:
    server.serve("/feed", RSS)
    nat = NatBackend()
    fetcher = await make_fetcher(resolver=StubResolver({"feed.example": [answers]}), nat=nat)
    err = await fetch_error(fetcher, public_url(server, "/feed"))
    if answers in (["not-an-ip"], []):
        assert (err.kind, err.reason) == ("dns", REASON_DNS)
    else:
        assert (err.kind, err.reason) == ("blocked_address", REASON_BLOCKED)
    assert nat.connected == []
    assert server.requests == []


async def test_public_hostname_is_connected_by_checked_ip_not_by_name(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/feed", RSS)
    nat = NatBackend()
    resolver = public("feed.example")
    fetcher = await make_fetcher(resolver=resolver, nat=nat)
    result = await fetcher.fetch(public_url(server, "/feed"))
    assert result.status == "ok"
    assert result.body == RSS
    assert result.url == public_url(server, "/feed")
    assert resolver.calls == ["feed.example"]
    assert nat.connected == [PUBLIC_IP]
    # The Host header still names the host, as for any virtual-hosted server.
    assert server.requests[0].headers["Host"] == f"feed.example:{server.port}"
    assert server.requests[0].headers["User-Agent"] == USER_AGENT
    assert server.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_dns_rebinding_cannot_swap_the_address_after_the_check(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    # "Connection: close" forces a new connection, hence a new lookup, per fetch.
    server.serve("/feed", RSS, headers={"Connection": "close"})
    nat = NatBackend()
    resolver = StubResolver({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    fetcher = await make_fetcher(resolver=resolver, nat=nat)
    url = public_url(server, "/feed", host="rebind.example")

    first = await fetcher.fetch(url)
    assert first.body == RSS
    # Exactly one lookup per connection, and the connect went to the very address it gave.
    assert resolver.calls == ["rebind.example"]
    assert nat.connected == [PUBLIC_IP]

    err = await fetch_error(fetcher, url)  # the DNS answer now points inside
    assert (err.kind, err.reason) == ("blocked_address", REASON_BLOCKED)
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert nat.connected == [PUBLIC_IP]
    assert server.request_count("/feed") == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.1"])
async def test_the_session_itself_refuses_ip_literals_at_connect_time(
    server: FeedServer, host: str
) -> None:
    """The connector's socket factory: even a request that skips the Fetcher's URL checks
    (aiohttp never asks a resolver about an IP literal) gets no socket to a private address."""
    server.serve("/feed", RSS)
    client = create_http_client(allow_private=False, resolver=refusing_resolver)
    try:
        with pytest.raises(BlockedAddressError):
            await client.get(f"http://{host}:{server.port}/feed")
    finally:
        await client.close()
    assert server.requests == []


async def test_the_session_refuses_a_private_answer_without_the_fetcher(
    server: FeedServer,
) -> None:
    server.serve("/feed", RSS)
    nat = NatBackend()
    client = create_http_client(
        allow_private=False,
        resolver=StubResolver({"inside.example": [["10.0.0.1"]]}),
        socket_factory=nat,
    )
    try:
        with pytest.raises(BlockedAddressError):
            await client.get(f"http://inside.example:{server.port}/feed")
    finally:
        await client.close()
    assert nat.connected == []
    assert server.requests == []


async def test_unguarded_client_is_still_caught_by_the_peer_address_check(
    server: FeedServer,
) -> None:
    """Defence in depth: a client not built by create_http_client (mis-wiring)."""

    class NameNat(AbstractResolver):
        """Answers 127.0.0.1 for every name without any check, like plain DNS."""

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                ResolveResult(
                    hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                    proto=0, flags=0,
                )
            ]  # fmt: skip

        async def close(self) -> None:
            pass

    server.serve("/feed", RSS)
    connector = aiohttp.TCPConnector(resolver=NameNat())
    async with aiohttp.ClientSession(connector=connector) as client:
        fetcher = Fetcher(client, allow_private=False, max_bytes=MiB)
        err = await fetch_error(fetcher, public_url(server, "/feed"))
    assert (err.kind, err.reason) == ("blocked_address", REASON_BLOCKED)


# --------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", REASON_SCHEME),
        ("ftp://feed.example/rss.xml", REASON_SCHEME),
        ("gopher://feed.example:70/_GET", REASON_SCHEME),
        ("javascript:alert(1)", REASON_SCHEME),
        ("data:text/xml,<rss/>", REASON_SCHEME),
        ("feed.example/rss.xml", REASON_SCHEME),
        ("http://user:pass@feed.example/rss", REASON_USERINFO),
        ("http://user@feed.example/rss", REASON_USERINFO),
        ("https://:@feed.example/rss", REASON_USERINFO),
        ("http:///rss", "that does not look like a web address"),
        ("http://feed.example:99999/rss", "that does not look like a web address"),
        ("http://feed.ex\x00ample/rss", "that does not look like a web address"),
        ("http://feed.example/r\nss", "that does not look like a web address"),
        ("http://feed.example/" + "a" * 3000, REASON_TOO_LONG),
    ],
)
async def test_bad_urls_are_refused_before_any_lookup(
    make_fetcher: FetcherFactory, url: str, reason: str
) -> None:
    nat = NatBackend()
    fetcher = await make_fetcher(resolver=refusing_resolver, nat=nat)
    err = await fetch_error(fetcher, url)
    assert (err.kind, err.reason) == ("bad_url", reason)
    assert nat.connected == []


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("target", "kind", "reason"),
    [
        ("http://127.0.0.1:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("http://2130706433:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("http://0x7f.1:{port}/secret", "blocked_address", REASON_BLOCKED),
        # Numeric spellings are canonicalised, then refused like the dotted quad.
        ("http://0177.0.0.1:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("http://[::1:{port}/secret", "bad_url", REASON_BAD_REDIRECT),  # no address at all
        ("http://[::ffff:7f00:1]:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("http://169.254.169.254/latest/meta-data/", "blocked_address", REASON_BLOCKED),
        ("http://internal.example:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("http://localhost:{port}/secret", "blocked_address", REASON_BLOCKED),
        ("file:///etc/passwd", "bad_url", REASON_SCHEME),
        ("gopher://feed.example:70/_x", "bad_url", REASON_SCHEME),
        ("http://user:pw@feed.example:{port}/secret", "bad_url", REASON_USERINFO),
    ],
)
async def test_redirect_targets_are_checked_like_the_first_url(
    server: FeedServer, make_fetcher: FetcherFactory, target: str, kind: str, reason: str
) -> None:
    server.redirect("/start", target.format(port=server.port))
    server.serve("/secret", b"internal data")
    nat = NatBackend()
    resolver = StubResolver({"feed.example": [[PUBLIC_IP]], "internal.example": [["10.0.0.7"]]})
    fetcher = await make_fetcher(resolver=resolver, nat=nat)
    err = await fetch_error(fetcher, public_url(server, "/start"))
    assert (err.kind, err.reason) == (kind, reason)
    assert server.request_count("/start") == 1
    assert server.request_count("/secret") == 0
    assert nat.connected == [PUBLIC_IP]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_relative_redirects_are_followed(
    server: FeedServer, make_fetcher: FetcherFactory, status: int
) -> None:
    server.redirect("/old/feed", "../new/rss.xml?x=1", status=status)
    server.serve("/new/rss.xml", RSS)
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    result = await fetcher.fetch(public_url(server, "/old/feed"))
    assert result.body == RSS
    assert result.url == public_url(server, "/new/rss.xml?x=1")


async def test_redirect_chain_of_max_redirects_is_followed(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    for i in range(5):
        server.redirect(f"/r{i}", f"/r{i + 1}")
    server.serve("/r5", RSS)
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    result = await fetcher.fetch(public_url(server, "/r0"))
    assert result.body == RSS
    assert result.url == public_url(server, "/r5")


async def test_one_redirect_too_many_is_refused(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    for i in range(6):
        server.redirect(f"/r{i}", f"/r{i + 1}")
    server.serve("/r6", RSS)
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    err = await fetch_error(fetcher, public_url(server, "/r0"))
    assert (err.kind, err.reason) == ("too_many_redirects", REASON_REDIRECTS)
    assert server.request_count("/r5") == 1
    assert server.request_count("/r6") == 0


async def test_redirect_loop_ends(server: FeedServer, make_fetcher: FetcherFactory) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    err = await fetch_error(fetcher, public_url(server, "/a"))
    assert (err.kind, err.reason) == ("too_many_redirects", REASON_REDIRECTS)
    assert server.request_count("/a") + server.request_count("/b") == 6


async def test_redirect_without_location_is_an_error(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/moved", b"", status=302)
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    err = await fetch_error(fetcher, public_url(server, "/moved"))
    assert (err.kind, err.reason) == ("http_status", "the server answered 302 without a target")


# --------------------------------------------------------------------------- size


async def test_body_of_exactly_max_bytes_is_accepted(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.sized("/big", 64 * 1024, declare_length=False)
    fetcher = await make_fetcher(allow_private=True, max_bytes=64 * 1024)
    result = await fetcher.fetch(server.url("/big"))
    assert result.body is not None
    assert len(result.body) == 64 * 1024


@pytest.mark.parametrize("declare_length", [True, False])
async def test_oversized_body_is_refused(
    server: FeedServer, make_fetcher: FetcherFactory, declare_length: bool
) -> None:
    server.sized("/big", 64 * 1024 + 1, declare_length=declare_length)
    fetcher = await make_fetcher(allow_private=True, max_bytes=64 * 1024)
    err = await fetch_error(fetcher, server.url("/big"))
    assert (err.kind, err.reason) == ("too_large", "the feed is larger than 64 KiB")


async def test_huge_content_length_is_refused_before_reading(
    make_fetcher: FetcherFactory,
) -> None:
    # The server promises 10 GB, sends 10 bytes and hangs: only an up-front check can answer
    # "too large" (reading would end in a timeout instead).
    response = raw_response({"Content-Length": str(10**10)}, b"<rss>0123")
    async with RawServer(response, hang=True) as raw:
        fetcher = await make_fetcher(allow_private=True, max_bytes=5 * MiB, total_timeout=30)
        err = await fetch_error(fetcher, f"http://127.0.0.1:{raw.port}/feed")
    assert (err.kind, err.reason) == ("too_large", "the feed is larger than 5 MiB")


def gzip_bomb(gib: int = 1) -> bytes:
    """A valid gzip stream of ``gib`` GiB of zeros (~1 MB), built without compressing 1 GiB.

    A raw-deflate block ending in a full flush references nothing before it, so repeating it
    repeats its 16 MiB of output; the CRC is computed over the real content.
    """
    zeros = bytes(16 * MiB)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    final = comp.flush()
    copies = gib * 64
    crc = 0
    for _ in range(copies):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (copies * 16 * MiB) & 0xFFFFFFFF)
    return header + block * copies + final + trailer


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb()


async def test_gzip_bomb_stops_at_max_bytes_without_inflating_it(
    server: FeedServer, make_fetcher: FetcherFactory, bomb: bytes
) -> None:
    assert len(bomb) < 2 * MiB
    server.serve("/bomb", b"", raw_gzip=bomb)
    fetcher = await make_fetcher(allow_private=True, max_bytes=4 * MiB)
    tracemalloc.start()
    try:
        err = await fetch_error(fetcher, server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (err.kind, err.reason) == ("too_large", "the feed is larger than 4 MiB")
    # Inflating one 64 KiB network chunk at once would already be ~64 MiB.
    assert peak < 16 * MiB


async def test_gzip_body_is_decompressed(server: FeedServer, make_fetcher: FetcherFactory) -> None:
    server.serve("/feed", RSS * 50, gzip=True)
    fetcher = await make_fetcher(allow_private=True)
    result = await fetcher.fetch(server.url("/feed"))
    assert result.body == RSS * 50


async def test_compressed_size_counts_after_decompression(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    body = b"<rss>" + b"a" * (200 * 1024) + b"</rss>"
    server.serve("/feed", body, gzip=True)
    fetcher = await make_fetcher(allow_private=True, max_bytes=100 * 1024)
    err = await fetch_error(fetcher, server.url("/feed"))
    assert (err.kind, err.reason) == ("too_large", "the feed is larger than 100 KiB")


@pytest.mark.parametrize(
    "payload",
    [
        zlib.compress(RSS),  # RFC "deflate": zlib-wrapped
        zlib.compress(RSS)[2:-4],  # what many servers send: raw deflate
    ],
    ids=["zlib", "raw"],
)
async def test_deflate_bodies_are_decompressed(
    make_fetcher: FetcherFactory, payload: bytes
) -> None:
    headers = {"Content-Encoding": "deflate", "Content-Length": str(len(payload))}
    async with RawServer(raw_response(headers, payload)) as raw:
        fetcher = await make_fetcher(allow_private=True)
        result = await fetcher.fetch(f"http://127.0.0.1:{raw.port}/feed")
    assert result.body == RSS


@pytest.mark.parametrize(
    ("encoding", "payload", "reason"),
    [
        ("br", b"\x0b\x02\x80hello\x03", "the server used an unsupported compression"),
        (
            "gzip, gzip",
            gzip.compress(gzip.compress(RSS)),
            "the server used an unsupported compression",
        ),
        (
            "gzip",
            b"\x1f\x8b\x08\x00garbage-not-deflate",
            "the server sent a corrupt compressed body",
        ),
    ],
    ids=["br", "stacked", "corrupt"],
)
async def test_unsupported_or_corrupt_encodings_are_refused(
    make_fetcher: FetcherFactory, encoding: str, payload: bytes, reason: str
) -> None:
    headers = {"Content-Encoding": encoding, "Content-Length": str(len(payload))}
    async with RawServer(raw_response(headers, payload)) as raw:
        fetcher = await make_fetcher(allow_private=True)
        err = await fetch_error(fetcher, f"http://127.0.0.1:{raw.port}/feed")
    assert (err.kind, err.reason) == ("network", reason)


async def test_big_response_headers_are_accepted(make_fetcher: FetcherFactory) -> None:
    # Real sites send Content-Security-Policy or Set-Cookie lines of tens of KiB; aiohttp's
    # default limit (8 KiB a line) would refuse them, httpx accepted a 100 KiB head.
    headers = {"Content-Security-Policy": "default-src " + "a" * 30_000, "X-Pad": "b" * 20_000}
    headers["Content-Length"] = str(len(RSS))
    async with RawServer(raw_response(headers, RSS)) as raw:
        fetcher = await make_fetcher(allow_private=True)
        result = await fetcher.fetch(f"http://127.0.0.1:{raw.port}/feed")
    assert result.body == RSS


async def test_truncated_body_is_a_network_error(make_fetcher: FetcherFactory) -> None:
    async with RawServer(raw_response({"Content-Length": "1000"}, b"<rss>short")) as raw:
        fetcher = await make_fetcher(allow_private=True)
        err = await fetch_error(fetcher, f"http://127.0.0.1:{raw.port}/feed")
    assert (err.kind, err.reason) == ("network", REASON_NETWORK)


# --------------------------------------------------------------------------- deadlines, errors


async def test_slow_drip_ends_at_the_total_deadline(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    # Each chunk arrives well within any read timeout; only the total deadline can stop it.
    server.slow_drip("/drip", chunk=b"<", interval=0.1, total_chunks=10_000)
    fetcher = await make_fetcher(allow_private=True, total_timeout=1.0)
    err = await fetch_error(fetcher, server.url("/drip"))
    assert (err.kind, err.reason) == ("timeout", REASON_TIMEOUT)
    assert server.request_count("/drip") == 1


async def test_server_that_never_answers_times_out(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/slow", RSS, delay=30)
    fetcher = await make_fetcher(allow_private=True, total_timeout=0.5)
    err = await fetch_error(fetcher, server.url("/slow"))
    assert (err.kind, err.reason) == ("timeout", REASON_TIMEOUT)


async def test_hanging_dns_lookup_is_bounded_by_the_connect_timeout(
    make_fetcher: FetcherFactory,
) -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fetcher = await make_fetcher(resolver=hang, connect_timeout=0.2, total_timeout=30)
    err = await fetch_error(fetcher, "http://slow-dns.example/feed")
    assert (err.kind, err.reason) == ("timeout", REASON_TIMEOUT)


@pytest.mark.parametrize(
    "entry",
    [socket.gaierror(socket.EAI_NONAME, "unknown"), []],
    ids=["nxdomain", "empty-answer"],
)
async def test_dns_failure(make_fetcher: FetcherFactory, entry: Any) -> None:
    table: dict[str, Sequence[Sequence[str]] | Exception] = {
        "gone.example": entry if isinstance(entry, Exception) else [entry]
    }
    fetcher = await make_fetcher(resolver=StubResolver(table), nat=NatBackend())
    err = await fetch_error(fetcher, "https://gone.example/feed")
    assert (err.kind, err.reason) == ("dns", REASON_DNS)


async def test_connection_refused(make_fetcher: FetcherFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the fetch: nobody listens
    fetcher = await make_fetcher(allow_private=True)
    err = await fetch_error(fetcher, f"http://127.0.0.1:{port}/feed")
    assert (err.kind, err.reason) == ("connect", REASON_CONNECT)
    assert not isinstance(err, TLSError)
    assert isinstance(err.__cause__, aiohttp.ClientConnectorError)


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_error_statuses(
    server: FeedServer, make_fetcher: FetcherFactory, status: int
) -> None:
    server.serve("/feed", b"nope", status=status)
    fetcher = await make_fetcher(allow_private=True)
    err = await fetch_error(fetcher, server.url("/feed"))
    assert (err.kind, err.reason) == ("http_status", f"the server answered {status}")


async def test_unknown_path_is_404(server: FeedServer, make_fetcher: FetcherFactory) -> None:
    fetcher = await make_fetcher(allow_private=True)
    err = await fetch_error(fetcher, server.url("/missing"))
    assert (err.kind, err.reason) == ("http_status", "the server answered 404")
    assert isinstance(err, HTTPStatusError)
    assert err.status == 404


# --------------------------------------------------------------------------- conditional GET


async def test_etag_round_trip_gives_not_modified(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/feed", RSS, etag="v1")
    fetcher = await make_fetcher(allow_private=True)
    first = await fetcher.fetch(server.url("/feed"))
    assert (first.status, first.body, first.etag) == ("ok", RSS, '"v1"')

    second = await fetcher.fetch(server.url("/feed"), etag=first.etag)
    assert second == FetchResult(
        url=server.url("/feed"),
        status="not_modified",
        body=None,
        etag='"v1"',
        last_modified=None,
        content_type=None,
    )
    assert server.requests[1].headers["If-None-Match"] == '"v1"'
    assert "If-None-Match" not in server.requests[0].headers


async def test_last_modified_round_trip_gives_not_modified(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    stamp = "Wed, 01 May 2024 10:00:00 GMT"
    server.serve("/feed", RSS, last_modified=stamp)
    fetcher = await make_fetcher(allow_private=True)
    first = await fetcher.fetch(server.url("/feed"))
    assert first.last_modified == stamp
    second = await fetcher.fetch(server.url("/feed"), last_modified=stamp)
    assert (second.status, second.body, second.last_modified) == ("not_modified", None, stamp)
    assert server.requests[1].headers["If-Modified-Since"] == stamp


async def test_changed_feed_is_fetched_again_despite_old_etag(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    server.serve("/feed", RSS, etag="v2")
    fetcher = await make_fetcher(allow_private=True)
    result = await fetcher.fetch(server.url("/feed"), etag='"v1"')
    assert (result.status, result.body, result.etag) == ("ok", RSS, '"v2"')


async def test_unrequested_304_is_an_error(make_fetcher: FetcherFactory) -> None:
    async with RawServer(raw_response({}, b"", status="304 Not Modified")) as raw:
        fetcher = await make_fetcher(allow_private=True)
        err = await fetch_error(fetcher, f"http://127.0.0.1:{raw.port}/feed")
    assert (err.kind, err.reason) == ("http_status", "the server answered 304")


# --------------------------------------------------------------------------- TLS, logging, load


def _make_cert(directory: Path, hostname: str) -> tuple[Path, Path]:
    cert, key = directory / f"{hostname}.pem", directory / f"{hostname}.key"
    subprocess.run(
        [
            shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={hostname}",
            "-addext", f"subjectAltName=DNS:{hostname}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_verifies_the_hostname_although_the_connect_goes_to_an_ip(
    tmp_path: Path, make_fetcher: FetcherFactory
) -> None:
    cert, key = _make_cert(tmp_path, "feed.example")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    app = web.Application()

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=RSS, content_type="application/rss+xml")

    app.router.add_get("/feed", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        nat = NatBackend()
        fetcher = await make_fetcher(
            resolver=public("feed.example", "other.example"), nat=nat, ssl_context=client_ctx
        )
        result = await fetcher.fetch(f"https://feed.example:{port}/feed")
        assert result.body == RSS
        # Same server, same IP, but the certificate does not name this host.
        err = await fetch_error(fetcher, f"https://other.example:{port}/feed")
        assert (err.kind, err.reason) == ("connect", REASON_CERT)
        assert isinstance(err, TLSError)
        assert nat.connected == [PUBLIC_IP, PUBLIC_IP]
    finally:
        await runner.cleanup()


async def test_query_strings_never_reach_the_logs(
    server: FeedServer, make_fetcher: FetcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server.redirect("/feed", "/final?token=SECRET-TWO")
    server.serve("/final", b"gone", status=410)
    lenient = await make_fetcher(allow_private=True)
    strict = await make_fetcher(resolver=StubResolver({}))
    with caplog.at_level(logging.DEBUG):
        await fetch_error(lenient, server.url("/feed?token=SECRET-ONE"))
        await fetch_error(strict, "http://10.0.0.1/feed?token=SECRET-THREE")
        await fetch_error(strict, "http://feed.example/feed?token=SECRET-FOUR")
    ours = [r for r in caplog.records if r.name == "bot.services.fetcher"]
    text = "\n".join(r.getMessage() for r in ours)
    assert "127.0.0.1/final" in text  # host + path are logged, at DEBUG only
    assert "SECRET" not in text
    assert all(r.levelno == logging.DEBUG for r in ours)
    # (httpx/httpcore log full URLs themselves; bot/logging_setup.py quiets those loggers.)


async def test_concurrent_fetches_share_one_client(
    server: FeedServer, make_fetcher: FetcherFactory
) -> None:
    for i in range(10):
        server.serve(f"/f{i}", RSS + str(i).encode(), delay=0.05)
    fetcher = await make_fetcher(resolver=public("feed.example"), nat=NatBackend())
    urls = [public_url(server, f"/f{i}") for i in range(10)]
    results = await asyncio.gather(
        *(fetcher.fetch(u) for u in urls),
        fetcher.fetch(f"http://127.0.0.1:{server.port}/f0"),
        return_exceptions=True,
    )
    assert [r.body for r in results[:10] if isinstance(r, FetchResult)] == [
        RSS + str(i).encode() for i in range(10)
    ]
    assert isinstance(results[10], FeedFetchError)  # the old name still catches
    assert results[10].kind == "blocked_address"
