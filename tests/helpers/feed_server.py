"""A local HTTP server that serves feeds the way real (and hostile) feed servers do.

Tests of the fetcher and the news service point at it instead of the internet: conditional
GET (ETag / Last-Modified → 304), gzip, redirects (including to addresses the SSRF guard must
refuse), slow-drip bodies for deadline tests, huge bodies for size caps and status changes.
It runs on the test's event loop; all state is touched from that loop only, so no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_module
import logging
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

from aiohttp import web

from tests.helpers.local_server import LocalServer

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
_STREAM_CHUNK = 64 * 1024
_SIZED_PREFIX = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
    b"<title>Big body</title><description>"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received (any path, served or not)."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    time: float


@dataclass
class _Route:
    kind: Literal["static", "redirect", "drip", "sized"]
    body: bytes = b""
    content_type: str = DEFAULT_CONTENT_TYPE
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    raw_gzip: bytes | None = None
    delay: float = 0.0
    location: str = ""
    chunk: bytes = b"<"
    interval: float = 0.5
    total_chunks: int = 1000
    n_bytes: int = 0
    declare_length: bool = True


def _key(path: str) -> str:
    return "/" + path.lstrip("/")


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison of an If-None-Match header against our ETag (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == ours for candidate in header.split(","))


def _not_modified_since(header: str, last_modified: str) -> bool:
    try:
        since = parsedate_to_datetime(header)
        modified = parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False
    return modified <= since


class FeedServer(LocalServer):
    """aiohttp server on 127.0.0.1 with per-path behaviours set by :meth:`serve` and friends."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, _Route] = {}
        self.requests: list[RecordedRequest] = []

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port>/<path>``."""
        return f"http://127.0.0.1:{self.port}{_key(path)}"

    # ------------------------------------------------------------------ behaviours

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        raw_gzip: bytes | None = None,
        delay: float = 0.0,
    ) -> None:
        """Serve ``body`` at ``path`` (replacing what was there).

        Args:
            path: URL path (a leading "/" is optional; may include a query string).
            body: the uncompressed body; ``str`` is UTF-8 encoded.
            content_type: Content-Type header.
            status: HTTP status for normal answers.
            headers: extra response headers.
            etag: ETag to send; a matching ``If-None-Match`` gets 304 with no body. Quoted
                automatically when given bare.
            last_modified: Last-Modified (HTTP date); ``If-Modified-Since`` at or after it
                gets 304 (only when the request has no ``If-None-Match``).
            gzip: send ``body`` gzip-compressed with ``Content-Encoding: gzip``.
            raw_gzip: pre-compressed bytes sent as-is with ``Content-Encoding: gzip`` (a gzip
                bomb); overrides ``body``/``gzip``.
            delay: seconds to wait before answering (to make concurrent fetches overlap).
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if etag is not None and not etag.removeprefix("W/").startswith('"'):
            etag = f'"{etag}"'
        self._routes[_key(path)] = _Route(
            kind="static",
            body=data,
            content_type=content_type,
            status=status,
            headers=dict(headers or {}),
            etag=etag,
            last_modified=last_modified,
            gzip=gzip,
            raw_gzip=raw_gzip,
            delay=delay,
        )

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``to`` (absolute URL or path), sent verbatim."""
        self._routes[_key(path)] = _Route(kind="redirect", status=status, location=to)

    def slow_drip(
        self,
        path: str,
        chunk: bytes = b"<",
        interval: float = 0.5,
        total_chunks: int = 1000,
    ) -> None:
        """Stream ``chunk`` every ``interval`` seconds, ``total_chunks`` times (no length)."""
        self._routes[_key(path)] = _Route(
            kind="drip", chunk=chunk, interval=interval, total_chunks=total_chunks
        )

    def sized(self, path: str, n_bytes: int, *, declare_length: bool = True) -> None:
        """Stream a body of exactly ``n_bytes`` (XML-ish filler).

        With ``declare_length=False`` it is sent chunked, without Content-Length, so a client
        must enforce its size cap while reading.
        """
        self._routes[_key(path)] = _Route(
            kind="sized", n_bytes=n_bytes, declare_length=declare_length
        )

    def set_status(self, path: str, status: int) -> None:
        """Change the status ``path`` answers (creates an empty route when missing)."""
        route = self._routes.get(_key(path))
        if route is None:
            self._routes[_key(path)] = _Route(kind="static", status=status)
        else:
            route.status = status

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (it answers 404 afterwards)."""
        self._routes.pop(_key(path), None)

    def request_count(self, path: str) -> int:
        """How many requests arrived for ``path`` (matched with or without query string)."""
        wanted = _key(path)
        return sum(
            1 for r in self.requests if r.path == wanted or f"{r.path}?{r.query_string}" == wanted
        )

    # ------------------------------------------------------------------ serving

    async def _pause(self, seconds: float) -> bool:
        """Sleep; return False when the server is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query_string=request.query_string,
                headers=dict(request.headers),
                time=time.monotonic(),
            )
        )
        route = self._routes.get(request.path_qs) or self._routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.kind == "redirect":
            return web.Response(status=route.status, headers={"Location": route.location})
        if route.kind == "drip":
            return await self._drip(request, route)
        if route.kind == "sized":
            return await self._sized(request, route)
        return await self._static(request, route)

    async def _static(self, request: web.Request, route: _Route) -> web.Response:
        if route.delay and not await self._pause(route.delay):
            return web.Response(status=503, text="server stopping")
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if route.status == 200:
            inm = request.headers.get("If-None-Match")
            ims = request.headers.get("If-Modified-Since")
            # If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
            if inm is not None and route.etag:
                not_modified = _etag_matches(inm, route.etag)
            elif ims is not None and route.last_modified:
                not_modified = _not_modified_since(ims, route.last_modified)
            else:
                not_modified = False
            if not_modified:
                return web.Response(status=304, headers=headers)
        body = route.body
        if route.raw_gzip is not None:
            body = route.raw_gzip
            headers["Content-Encoding"] = "gzip"
        elif route.gzip:
            body = gzip_module.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = route.content_type
        return web.Response(status=route.status, body=body, headers=headers)

    async def _drip(self, request: web.Request, route: _Route) -> web.StreamResponse:
        response = web.StreamResponse(status=route.status)
        response.content_type = "application/rss+xml"
        await response.prepare(request)
        try:
            for _ in range(route.total_chunks):
                await response.write(route.chunk)
                if not await self._pause(route.interval):
                    break
        except ConnectionError:
            logger.debug("slow-drip client went away")
        return response

    async def _sized(self, request: web.Request, route: _Route) -> web.StreamResponse:
        response = web.StreamResponse(status=route.status)
        response.content_type = "application/rss+xml"
        if route.declare_length:
            response.content_length = route.n_bytes
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        remaining = route.n_bytes
        filler = b"x" * _STREAM_CHUNK
        try:
            head = _SIZED_PREFIX[:remaining]
            await response.write(head)
            remaining -= len(head)
            while remaining > 0 and not self._stopping.is_set():
                piece = filler[: min(remaining, _STREAM_CHUNK)]
                await response.write(piece)
                remaining -= len(piece)
        except ConnectionError:
            logger.debug("sized-body client went away")
        return response
