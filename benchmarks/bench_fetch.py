"""CPU per feed request of the feed fetcher, beside bare aiohttp and bare httpx, on one core.

Why this exists: per-feed CPU in a poll cycle was mostly the HTTP client's own request
machinery, and which client to use was to be decided by measurement. This runs the candidates
in the same process, against the same local feed server (another process, pinned to the
other CPU), interleaved round by round (the order rotates), and reports the median CPU per
request (``time.process_time``: this process only, immune to what else runs on the machine).

Variants (each round builds a fresh client, warms it up, then times two passes):

* ``fetcher`` — the bot's :class:`~bot.services.fetcher.Fetcher` on its guarded session
  (``create_http_client``): URL checks, SSRF guard, bounded decoding, all of it;
* ``aiohttp`` — a bare ``aiohttp.ClientSession`` GET + ``read()``: the library's floor;
* ``httpx`` — a bare ``httpx.AsyncClient`` streamed GET: the client feeds used before.

Passes: ``200`` (no validators: every feed sends its body) and ``304`` (each feed's ETag
sent: every answer is 304). ``--connection-close`` makes the server close every connection,
so each request pays for a new one, as polling feeds on many different hosts does.
``--concurrency`` requests are in flight at once (the poll's 16).

Run: ``python -m benchmarks.bench_fetch [--feeds 1000] [--rounds 5]``; see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx

from benchmarks._common import (
    FeedServerProcess,
    feed_etag,
    other_cpu,
    pinned_to_one_core,
    positive_int,
    print_table,
)

logger = logging.getLogger(__name__)

WARM_UP = 32  # requests per fresh client before timing (connections, imports, caches)
PASSES = ("200", "304")
VARIANTS = ("fetcher", "aiohttp", "httpx")

FetchOne = Callable[[str, str | None], Awaitable[int]]
"""``(url, etag) -> HTTP status``."""


async def _client(variant: str) -> tuple[FetchOne, Callable[[], Awaitable[None]]]:
    """A fetch function for ``variant`` and the coroutine that closes its client."""
    from bot.services.fetcher import Fetcher  # noqa: PLC0415
    from bot.services.netguard import ACCEPT_ENCODING, USER_AGENT, create_http_client  # noqa: PLC0415

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
    if variant == "fetcher":
        session = create_http_client(allow_private=True)
        fetcher = Fetcher(session, allow_private=True, max_bytes=5 << 20)

        async def via_fetcher(url: str, etag: str | None) -> int:
            result = await fetcher.fetch(url, etag=etag)
            return 200 if result.status == "ok" else 304

        return via_fetcher, session.close
    if variant == "aiohttp":
        bare = aiohttp.ClientSession(headers=headers, auto_decompress=False, trust_env=False)

        async def via_aiohttp(url: str, etag: str | None) -> int:
            extra = {"If-None-Match": etag} if etag else {}
            async with bare.get(url, headers=extra, allow_redirects=False) as response:
                await response.read()
                return response.status

        return via_aiohttp, bare.close
    client = httpx.AsyncClient(headers=headers, trust_env=False, follow_redirects=False)

    async def via_httpx(url: str, etag: str | None) -> int:
        extra = {"If-None-Match": etag} if etag else {}
        async with client.stream("GET", url, headers=extra) as response:
            async for _ in response.aiter_raw():
                pass
            return response.status_code

    return via_httpx, client.aclose


async def _pass(fetch: FetchOne, jobs: list[tuple[str, str | None]], concurrency: int) -> list[int]:
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str, etag: str | None) -> int:
        async with gate:
            return await fetch(url, etag)

    return await asyncio.gather(*(one(url, etag) for url, etag in jobs))


async def run_round(variant: str, urls: list[str], concurrency: int) -> dict[str, float]:
    """One fresh client of ``variant``: CPU ms per request of each pass."""
    fetch, close = await _client(variant)
    out: dict[str, float] = {}
    try:
        await _pass(fetch, [(u, None) for u in urls[:WARM_UP]], concurrency)
        for name in PASSES:
            jobs = [(u, feed_etag(n, 0) if name == "304" else None) for n, u in enumerate(urls)]
            started = time.process_time()
            statuses = await _pass(fetch, jobs, concurrency)
            out[name] = (time.process_time() - started) * 1000 / len(urls)
            if set(statuses) != {int(name)}:
                raise RuntimeError(f"{variant}: expected only {name}, got {set(statuses)}")
    finally:
        await close()
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (sizes, rounds, connection reuse)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fetch",
        description="CPU per feed request: the bot's fetcher vs bare aiohttp vs bare httpx.",
    )
    parser.add_argument("--feeds", type=positive_int, default=1000, help="feeds (1000)")
    parser.add_argument("--items", type=positive_int, default=20, help="items per feed (20)")
    parser.add_argument("--rounds", type=positive_int, default=5, help="rounds (5)")
    parser.add_argument("--concurrency", type=positive_int, default=16, help="in flight (16)")
    parser.add_argument(
        "--connection-close", action="store_true", help="a new connection per request"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the rounds; print and return ``{"variants": {name: {pass: {median, runs}}}}``."""
    args = build_parser().parse_args(argv)
    runs: dict[str, dict[str, list[float]]] = {v: {p: [] for p in PASSES} for v in VARIANTS}
    with (
        FeedServerProcess(
            args.feeds, args.items, cpu=other_cpu(), connection_close=args.connection_close
        ) as server,
        pinned_to_one_core(not args.no_pin) as cpu,
    ):
        urls = server.urls()
        for r in range(args.rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for variant in order:
                figures = asyncio.run(run_round(variant, urls, args.concurrency))
                for name, ms in figures.items():
                    runs[variant][name].append(ms)
        requests = server.request_count()
    result: dict[str, Any] = {
        "cpu": cpu,
        "requests": requests,
        "variants": {
            v: {p: {"median_ms": statistics.median(ms), "runs_ms": ms} for p, ms in by.items()}
            for v, by in runs.items()
        },
    }
    if not args.quiet:
        _report(args, result)
    return result


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    reuse = "a new connection per request" if args.connection_close else "keep-alive"
    print(
        f"fetch benchmark: {args.feeds} feeds × {args.items} items, {args.rounds} interleaved "
        f"rounds, {args.concurrency} in flight, {reuse}; {result['cpu']}; CPU = process time "
        "of this process per request (median of rounds)"
    )
    variants = result["variants"]
    reference = variants["httpx"]
    for name in PASSES:
        rows = []
        for v in VARIANTS:
            fig = variants[v][name]
            ratio = reference[name]["median_ms"] / fig["median_ms"]
            versus = "the reference" if v == "httpx" else f"{ratio:.1f}× less CPU than httpx"
            runs = ", ".join(f"{x:.2f}" for x in fig["runs_ms"])
            rows.append((v, f"{fig['median_ms']:.3f} ms per request ({versus}); rounds {runs}"))
        print_table(f"pass {name}", rows)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
