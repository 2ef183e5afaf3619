"""The poll cycle: how long refreshing many feeds takes, and how much it stalls the event loop.

What runs: the real :class:`~bot.services.news.NewsService` with the real
:class:`~bot.services.fetcher.Fetcher` (``create_http_client(allow_private=True)``) and the
real StorageService on a temp dir, polling ``--feeds`` feeds (``--items`` items each) served
by the tests' FeedServer **in another process** (so the server's CPU does not show up as
event-loop lag here).

Per configuration (parser × concurrency): one warm-up cycle (every feed 200, every body
parsed), then ``--cycles`` measured cycles in which half the feeds are unchanged (conditional
GET → 304, no parse) and half have a new version (new ETag, new item → 200 and a parse).
A sampler task sleeps 5 ms in a loop during each cycle and records the overshoot: that is
how long a ``/news`` arriving at that moment would have waited for the loop.

Parsers (``--parser``):

* ``thread``: the bot as it is: ``asyncio.to_thread(parse_feed, ...)``. feedparser is pure
  Python, so the worker thread holds the GIL while it parses and the loop waits for it.
* ``process``: the same ``parse_feed`` run in a ``ProcessPoolExecutor`` (passed to
  ``NewsService`` as its ``parse`` callable; the worker thread just waits on the future),
  so parsing no longer competes for this process's GIL. An experiment, for the lead to
  decide on.

Run: ``python -m benchmarks.bench_poll [--parser thread,process] [--concurrency 1,8,32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import logging
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    FeedServerProcess,
    fmt_ms,
    latency_summary,
    positive_int,
    print_table,
    profile_summary,
    verdict,
)
from bot.models import ParsedFeed

logger = logging.getLogger(__name__)

TARGET_LAG_P99_MS = 50.0
LAG_TICK_S = 0.005
PARSERS = ("thread", "process")


class ProcessPoolParse:
    """A ``parse`` callable for NewsService that parses in a process pool.

    NewsService calls ``parse`` inside ``asyncio.to_thread``; this blocks that worker thread
    on the pool's future, which releases the GIL, so the event loop keeps running while a
    child process does the parsing.
    """

    def __init__(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        self._pool = pool

    def __call__(self, body: bytes, feed_url: str) -> ParsedFeed:
        """Parse ``body`` in the pool and wait for the result (called off the loop)."""
        from bot.services.feed_parser import parse_feed  # noqa: PLC0415

        return self._pool.submit(parse_feed, body, feed_url).result()


async def sample_lag(stop: asyncio.Event, out: list[float]) -> None:
    """Sleep ``LAG_TICK_S`` until ``stop`` is set; record how late each wake-up was."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        out.append(max(0.0, time.perf_counter() - started - LAG_TICK_S))


async def timed_cycle(
    news: Any, urls: list[str], concurrency: int
) -> tuple[float, list[float], Any]:
    """Run one poll cycle with the lag sampler; return (seconds, lag samples, report)."""
    lags: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_lag(stop, lags), name="lag-sampler")
    await asyncio.sleep(0)  # let the sampler take its first timestamp
    started = time.perf_counter()
    report = await news.poll(urls, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    stop.set()
    await sampler
    return elapsed, lags, report


async def run_config(
    args: argparse.Namespace,
    server: FeedServerProcess,
    parser_mode: str,
    concurrency: int,
    root: Path,
    profile: bool = False,
) -> dict[str, Any]:
    """Warm-up cycle plus ``args.cycles`` measured cycles for one parser × concurrency.

    With ``profile``, one extra (unreported) cycle runs under cProfile afterwards.
    """
    from bot.services.feed_parser import parse_feed  # noqa: PLC0415
    from bot.services.fetcher import Fetcher, create_http_client  # noqa: PLC0415
    from bot.services.metrics import Metrics  # noqa: PLC0415
    from bot.services.news import NewsService  # noqa: PLC0415
    from bot.services.storage import (  # noqa: PLC0415
        configure_storage,
        reset_storage_service,
    )

    urls = server.urls()
    odd = [n for n in range(server.feeds) if n % 2]
    pool: concurrent.futures.ProcessPoolExecutor | None = None
    parse: Any = parse_feed
    if parser_mode == "process":
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")
        )
        parse = ProcessPoolParse(pool)
    skew = [0.0]  # advanced past the poll interval so every feed is due each cycle

    def clock() -> float:
        return time.monotonic() + skew[0]

    reset_storage_service()
    storage = configure_storage(root / "data", root / "backups", 2)
    await storage.load()
    client = create_http_client(allow_private=True)
    interval = 600
    news = NewsService(
        Fetcher(client, allow_private=True, max_bytes=5 << 20),
        storage,
        Metrics(),
        poll_interval_s=interval,
        parse=parse,
        clock=clock,
    )
    profiled: str | None = None
    try:
        warm_s, warm_lags, warm = await timed_cycle(news, urls, concurrency)
        cycles: list[dict[str, Any]] = []
        for _ in range(args.cycles):
            await asyncio.to_thread(server.bump, odd)
            skew[0] += interval + 1
            writes_before = storage.write_count
            elapsed, lags, report = await timed_cycle(news, urls, concurrency)
            cycles.append(
                {
                    "seconds": elapsed,
                    "lags": lags,
                    "refreshed": report.refreshed,
                    "not_modified": report.not_modified,
                    "failed": report.failed,
                    "writes": storage.write_count - writes_before,
                }
            )
        if profile:
            await asyncio.to_thread(server.bump, odd)
            skew[0] += interval + 1
            profiler = cProfile.Profile()
            profiler.enable()
            await timed_cycle(news, urls, concurrency)
            profiler.disable()
            profiled = profile_summary(profiler, 15)
    finally:
        await client.aclose()
        await storage.close()
        reset_storage_service()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    seconds = [c["seconds"] for c in cycles]
    median_s = statistics.median(seconds) if seconds else 0.0
    all_lags = [lag for c in cycles for lag in c["lags"]]
    return {
        "profile": profiled,
        "parser": parser_mode,
        "concurrency": concurrency,
        "feeds": len(urls),
        "warmup": {
            "seconds": warm_s,
            "refreshed": warm.refreshed,
            "failed": warm.failed,
            "lag": latency_summary(warm_lags),
        },
        "cycles": [{k: v for k, v in c.items() if k != "lags"} for c in cycles],
        "cycle_seconds_median": median_s,
        "feeds_per_s": len(urls) / median_s if median_s > 0 else 0.0,
        "lag": latency_summary(all_lags),
        "lag_p99_met": latency_summary(all_lags)["p99_ms"] < TARGET_LAG_P99_MS,
        "refreshed": sum(c["refreshed"] for c in cycles),
        "not_modified": sum(c["not_modified"] for c in cycles),
        "failed": sum(c["failed"] for c in cycles) + warm.failed,
        "writes_per_cycle": statistics.median(c["writes"] for c in cycles) if cycles else 0,
    }


def _csv(kind: type, raw: str) -> list[Any]:
    return [kind(part) for part in raw.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (sizes, parsers, concurrency levels)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_poll",
        description="Poll-cycle time and event-loop lag of the real NewsService.",
    )
    parser.add_argument("--feeds", type=positive_int, default=500, help="feeds polled (500)")
    parser.add_argument("--items", type=positive_int, default=30, help="items per feed (30)")
    parser.add_argument(
        "--cycles", type=positive_int, default=3, help="measured cycles (median shown)"
    )
    parser.add_argument(
        "--parser",
        default="thread,process",
        help="comma list of parsers to compare: thread (the bot today), process",
    )
    parser.add_argument(
        "--concurrency", default="8", help="comma list of NewsService.poll concurrency levels"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 2,
        help="process-pool size for --parser process (CPU count)",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="where DATA_DIR goes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one extra cycle of the first configuration under cProfile: top 15",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    return parser


def _report(args: argparse.Namespace, configs: list[dict[str, Any]]) -> None:
    print(
        f"poll-cycle benchmark: {args.feeds} feeds × {args.items} items from a feed server in "
        f"another process; {args.cycles} measured cycle(s) per configuration, each with half "
        "the feeds unchanged (304) and half changed (200 + parse); not pinned"
    )
    for c in configs:
        warm = c["warmup"]
        each = ", ".join(f"{x['seconds']:.2f}" for x in c["cycles"])
        print_table(
            f"parser={c['parser']} concurrency={c['concurrency']}",
            [
                (
                    "warm-up cycle",
                    f"{warm['seconds']:.2f} s for {warm['refreshed']} feeds (all 200 + parse); "
                    f"lag {fmt_ms(warm['lag'])}",
                ),
                (
                    "measured cycle",
                    f"median {c['cycle_seconds_median']:.2f} s "
                    f"({each}) → "
                    f"{c['feeds_per_s']:.0f} feeds/s",
                ),
                (
                    "outcomes",
                    f"{c['refreshed']} changed, {c['not_modified']} not modified (304), "
                    f"{c['failed']} failed; {c['writes_per_cycle']} storage writes per cycle",
                ),
                (
                    "event-loop lag",
                    f"{fmt_ms(c['lag'])}  target p99 < {TARGET_LAG_P99_MS:.0f} ms: "
                    f"{verdict(c['lag_p99_met'])}",
                ),
            ],
        )
        if c["profile"]:
            print("cProfile of one extra (unreported) measured cycle:")
            print(c["profile"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every configuration; print and return ``{"configs": [...]}``."""
    args = build_parser().parse_args(argv)
    parsers = _csv(str, args.parser)
    unknown = set(parsers) - set(PARSERS)
    if unknown:
        build_parser().error(f"unknown --parser {sorted(unknown)}; choose from {PARSERS}")
    levels = _csv(int, args.concurrency)
    root = Path(tempfile.mkdtemp(prefix="newsbot-bench-poll-", dir=args.data_root))
    configs: list[dict[str, Any]] = []
    try:
        with FeedServerProcess(args.feeds, args.items) as server:
            for parser_mode in parsers:
                for level in levels:
                    where = root / f"{parser_mode}-{level}"
                    first = not configs
                    configs.append(
                        asyncio.run(
                            run_config(
                                args, server, parser_mode, level, where, args.profile and first
                            )
                        )
                    )
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    if not args.quiet:
        _report(args, configs)
    return {"configs": configs}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
