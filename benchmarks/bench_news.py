"""``/news`` under load, through the real ``Application``, with no network in the measurement.

What runs: the real bot (``build_application``: handlers, rate limiter, NewsService,
StorageService with fsync'd group commits on a temp dir) with an in-memory Bot API transport
(:class:`InMemoryRequest`) and without the updater. The feed cache is warmed through the real
fetch/parse path from a local FeedServer, which is then stopped, so ``/news`` is served from
the cache as in production between poll cycles.

Two phases per round, each with fresh users (so the per-user rate limit never triggers):

* **burst**: N ``/news`` updates put on ``app.update_queue`` at once → throughput (updates/s).
  Latency here is mostly queueing (the last update waits for the N-1 before it).
* **paced**: N updates offered at ``--rate`` per second (open loop) → per-update latency at
  that load, from the *intended* enqueue time (a stalled loop counts against the bot) to the
  moment its ``sendMessage`` reaches the transport.

After shutdown ``counters.json`` is re-read: ``global.news_requests`` must equal 2N (every
counted request is durable).

Run: ``python -m benchmarks.bench_news [--updates 1000] [--profile]``; see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Update

from benchmarks._common import (
    feed_document,
    fmt_ms,
    latency_summary,
    median_by,
    pinned_to_one_core,
    positive_float,
    positive_int,
    print_table,
    profile_summary,
    read_state,
    stop_poll_job,
    verdict,
    write_snapshot,
)
from benchmarks._telegram import (
    API_BASE_URL,
    NEWS_MARK,
    TOKEN,
    InMemoryRequest,
    MessageKey,
    group_title,
    news_update,
)

logger = logging.getLogger(__name__)

TARGET_RATE = 1000.0  # /news per second on one core
TARGET_P99_MS = 50.0
STORED_CHAT_BASE = 20_000_000  # the big storage's other chats (never send /news)


@dataclass
class Phase:
    """One batch of updates and what happened to them."""

    name: str
    updates: list[tuple[MessageKey, Update]]
    enqueued: dict[MessageKey, float] = field(default_factory=dict)
    elapsed_s: float = 0.0
    writes: int = 0


def make_updates(
    bot: Any, count: int, chats: int, phase: int, round_no: int
) -> list[tuple[MessageKey, Update]]:
    """``count`` distinct users sending ``/news`` in ``chats`` groups (message ids unique)."""
    out: list[tuple[MessageKey, Update]] = []
    for i in range(count):
        chat_id = -(1_000_000 + i % chats)
        user_id = 10_000_000 * (round_no + 1) + 1_000_000 * phase + i
        message_id = phase * count + i + 1
        update_id = round_no * 10_000_000 + phase * 1_000_000 + i + 1
        out.append(
            ((chat_id, message_id), news_update(bot, update_id, chat_id, user_id, message_id))
        )
    return out


async def _run_phase(
    app: Any, request: InMemoryRequest, phase: Phase, rate: float | None, timeout_s: float
) -> None:
    """Offer the phase's updates (all at once, or paced) and wait for every reply."""
    from bot.storage import get_storage_service  # noqa: PLC0415

    storage = get_storage_service()
    done = request.expect(len(request.sent_at) + len(phase.updates))
    writes_before = storage.write_count
    queue = app.update_queue
    start = time.perf_counter()
    if rate is None:
        for key, update in phase.updates:
            phase.enqueued[key] = time.perf_counter()
            queue.put_nowait(update)
    else:
        i = 0
        while i < len(phase.updates):
            now = time.perf_counter()
            while i < len(phase.updates) and start + i / rate <= now:
                key, update = phase.updates[i]
                phase.enqueued[key] = start + i / rate  # intended time: stalls count
                queue.put_nowait(update)
                i += 1
            if i < len(phase.updates):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout_s)
    answered = [request.sent_at[k] for k in phase.enqueued if k in request.sent_at]
    phase.elapsed_s = (max(answered) if answered else time.perf_counter()) - start
    phase.writes = storage.write_count - writes_before


def _phase_figures(phase: Phase, request: InMemoryRequest) -> dict[str, Any]:
    keys = list(phase.enqueued)
    latencies = [request.sent_at[k] - phase.enqueued[k] for k in keys if k in request.sent_at]
    news_replies = sum(1 for k in keys if NEWS_MARK in request.texts.get(k, ""))
    return {
        "updates": len(keys),
        "answered": len(latencies),
        "news_replies": news_replies,
        "elapsed_s": phase.elapsed_s,
        "throughput": len(latencies) / phase.elapsed_s if phase.elapsed_s > 0 else 0.0,
        "latency": latency_summary(latencies),
        "storage_writes": phase.writes,
    }


async def _setup_chats(storage: Any, urls: list[str], chats: int) -> None:
    """The groups that send /news: known chats (as after their first command) that follow
    every feed, so a /news is answered from memory."""
    ids = [-(1_000_000 + n) for n in range(chats)]
    await asyncio.gather(*(storage.ensure_chat(c, "group", group_title(c)) for c in ids))
    await asyncio.gather(*(storage.subscribe(c, u, limit=len(urls)) for c in ids for u in urls))


async def run_round(
    args: argparse.Namespace,
    root: Path,
    round_no: int,
    profiler: cProfile.Profile | None,
    snapshot: bytes | None,
) -> dict[str, Any]:
    """One full bot lifecycle: warm the cache, burst phase, paced phase, shutdown, verify."""
    # Imported here: the bot's modules are only needed once a round really runs.
    from bot.context import services_of  # noqa: PLC0415
    from bot.storage import get_storage_service  # noqa: PLC0415
    from tests.helpers.bot_runner import make_settings, running_bot  # noqa: PLC0415
    from tests.helpers.feed_server import FeedServer  # noqa: PLC0415

    if snapshot is not None:  # the other chats of a big bot, as its snapshot on disk
        await asyncio.to_thread(write_snapshot, root / "data", snapshot)
    feeds = FeedServer()
    await feeds.start()
    urls = []
    for n in range(args.feeds):
        feeds.serve(f"/f{n}.xml", feed_document(n, 0, args.items), etag=f'"f{n}"')
        urls.append(feeds.url(f"/f{n}.xml"))
    settings = make_settings(
        root, API_BASE_URL, TOKEN, feed_poll_interval_s=3600, parser_processes=0
    )
    request = InMemoryRequest()
    try:
        async with running_bot(
            settings, rate_limit_outgoing=False, request=request, poll=False
        ) as app:
            stop_poll_job(app)
            storage = get_storage_service()
            stored_chats = len(storage.chats())
            await _setup_chats(storage, urls, args.chats)
            phases = [
                Phase("burst", make_updates(app.bot, args.updates, args.chats, 0, round_no)),
                Phase("paced", make_updates(app.bot, args.updates, args.chats, 1, round_no)),
            ]
            service = services_of(app).feeds
            await asyncio.gather(*(service.refresh(u) for u in urls))
            cached_items = sum(len(v.items) for u in urls if (v := service.view(u)) is not None)
            await feeds.stop()  # from here on, any fetch would fail: no network in the run
            if profiler is not None:
                profiler.enable()
            await _run_phase(app, request, phases[0], None, args.timeout)
            await _run_phase(app, request, phases[1], args.rate, args.timeout)
            if profiler is not None:
                profiler.disable()
    finally:
        await feeds.stop()  # idempotent; here for the error paths
    state = await asyncio.to_thread(read_state, settings.data_dir)
    durable = int(state.counters.get("news_requests", 0))
    burst, paced = (_phase_figures(p, request) for p in phases)
    return {
        "round": round_no + 1,
        "stored_chats": stored_chats,
        "cached_items": cached_items,
        "burst": burst,
        "paced": paced,
        "throughput": burst["throughput"],
        "durable_news_requests": durable,
        "expected_news_requests": 2 * args.updates,
        "durable_ok": durable == 2 * args.updates,
    }


def big_snapshot(chats: int) -> bytes:
    """A snapshot of ``chats`` other chats (2 subscriptions each, ``chats / 10`` feeds with
    25-item logs; no counters, so the durability check can count this run's /news)."""
    from benchmarks.bench_storage import build_state  # noqa: PLC0415
    from bot.storage import journal  # noqa: PLC0415

    state = build_state(chats, max(3, chats // 10), 2, 25)
    state.counters.clear()
    state.chat_counters.clear()
    return journal.encode_snapshot(state.to_snapshot(1))


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (sizes, rounds, pinning, profiling)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_news",
        description="/news throughput and latency through the real Application, in memory.",
    )
    parser.add_argument(
        "--updates", type=positive_int, default=1000, help="updates per phase (1000)"
    )
    parser.add_argument(
        "--chats", type=positive_int, default=100, help="group chats they come from"
    )
    parser.add_argument("--feeds", type=positive_int, default=20, help="feeds in the cache (20)")
    parser.add_argument(
        "--stored-chats",
        type=int,
        default=100_000,
        help="other chats in the storage (100000; 0 for an empty storage)",
    )
    parser.add_argument("--items", type=positive_int, default=50, help="items per feed (50)")
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=TARGET_RATE,
        help="offered /news per second, paced phase",
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=3, help="rounds; the median is shown"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=60.0, help="max wait per phase (s)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")
    parser.add_argument(
        "--profile", action="store_true", help="extra profiled round: cProfile top 15"
    )
    parser.add_argument("--data-root", type=Path, default=None, help="where DATA_DIR goes")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    return parser


def per_news(phase: dict[str, Any]) -> float:
    """Storage writes per answered /news in a phase (group commit makes this < 1)."""
    return float(phase["storage_writes"]) / max(1, int(phase["answered"]))


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    best = result["median"]
    burst, paced = best["burst"], best["paced"]
    print_table(
        f"/news benchmark: {args.updates} updates per phase from {args.chats} group chats, "
        f"{args.feeds} feeds × {args.items} items cached ({best['cached_items']} items), "
        f"storage holding {best['stored_chats']} chats, {args.rounds} round(s)",
        [
            ("CPU", result["cpu"]),
            ("transport", "in-memory Bot API (InMemoryRequest); no network during the run"),
            ("storage", f"real StorageService, fsync'd journal under {result['data_root']}"),
        ],
    )
    for r in result["rounds"]:
        print(
            f"  round {r['round']}: burst {r['burst']['throughput']:.0f} /news/s, "
            f"paced p99 {r['paced']['latency']['p99_ms']:.1f} ms, "
            f"writes {r['burst']['storage_writes']}+{r['paced']['storage_writes']}, "
            f"durable {r['durable_news_requests']}/{r['expected_news_requests']}"
        )
    rate_ok = burst["throughput"] >= TARGET_RATE
    p99_ok = paced["latency"]["p99_ms"] < TARGET_P99_MS
    print_table(
        f"median round (by burst throughput): round {best['round']}",
        [
            (
                "burst throughput",
                f"{burst['throughput']:.0f} /news/s ({burst['answered']}/{burst['updates']} "
                f"answered in {burst['elapsed_s'] * 1000:.0f} ms)  target ≥ {TARGET_RATE:.0f}/s "
                f"on one core: {verdict(rate_ok)}",
            ),
            ("burst latency", f"{fmt_ms(burst['latency'])}  (queueing: all enqueued at t=0)"),
            (
                f"paced @ {args.rate:.0f}/s latency",
                f"{fmt_ms(paced['latency'])}  target p99 < {TARGET_P99_MS:.0f} ms: "
                f"{verdict(p99_ok)}",
            ),
            ("paced throughput", f"{paced['throughput']:.0f} /news/s (offered {args.rate:.0f})"),
            (
                "storage writes",
                f"burst {burst['storage_writes']} ({per_news(burst):.3f} per /news), "
                f"paced {paced['storage_writes']} ({per_news(paced):.3f} per /news)",
            ),
            (
                "news replies",
                f"{burst['news_replies'] + paced['news_replies']} of "
                f"{burst['updates'] + paced['updates']} carried a news list",
            ),
            (
                "durable",
                f"persisted news_requests counter = {best['durable_news_requests']} "
                f"(expected {best['expected_news_requests']}): {verdict(best['durable_ok'])}",
            ),
        ],
    )
    if result.get("profile"):
        print("cProfile of one extra (unreported) round, both phases:")
        print(result["profile"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print and return its figures (``rounds``, ``median``, targets)."""
    args = build_parser().parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="newsbot-bench-news-", dir=args.data_root))
    result: dict[str, Any] = {"data_root": str(root)}
    try:
        with pinned_to_one_core(not args.no_pin) as cpu:
            result["cpu"] = cpu
            snapshot = big_snapshot(args.stored_chats) if args.stored_chats > 0 else None
            rounds = [
                asyncio.run(run_round(args, root / f"round{n}", n, None, snapshot))
                for n in range(args.rounds)
            ]
            if args.profile:
                profiler = cProfile.Profile()
                asyncio.run(run_round(args, root / "profiled", args.rounds, profiler, snapshot))
                result["profile"] = profile_summary(profiler, 15)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["rounds"] = rounds
    result["median"] = median_by(rounds, "throughput")
    result["target_rate_met"] = result["median"]["burst"]["throughput"] >= TARGET_RATE
    result["target_p99_met"] = result["median"]["paced"]["latency"]["p99_ms"] < TARGET_P99_MS
    if not args.quiet:
        _report(args, result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
