"""Fan-out: one new item in a feed that ``--chats`` instant chats follow, through the real bot.

What runs: the real ``Application`` (``running_bot``: handlers, FeedService, Dispatcher,
TelegramRateLimiter, StorageService with fsync'd group commits on a temp dir) against the
fake Bot API **in its own process** (pinned to the other CPU, so its work is not counted
against the bot, which is pinned to one core). The chats and their subscriptions are created
through the storage service; the feed is served by the tests' FeedServer. One poll logs the
feed's baseline (nothing is sent); then one new item is logged through
``storage.record_fetch`` exactly as the poll's parse step logs it — with a summary of about
1,000 UTF-16 units converted by ``bot.richtext`` from a realistic article, which feed parsing
does in a worker process, not in the fan-out — and ``dispatcher.feed_updated`` queues every
follower, as the poll does. The run ends when the dispatcher is idle; messages are counted
at the fake.

Modes (``--mode``):

* ``limited``: the fake enforces Telegram's flood limits (answers 429 above 30 messages/s,
  1/s per chat) and the bot paces as in production. Figures: time to deliver against the
  ``chats / 30`` seconds the limit implies (target ≤ 1.1×), 429s provoked (target 0), and
  ``/news`` reply latency for users asking *during* the fan-out (interactive replies must not
  queue behind it).
* ``unlimited``: no limits at the fake, ``build_application(rate_limit_outgoing=False)``:
  the bot's own throughput in messages/s and CPU per message.
* ``filtered``: as ``unlimited``, but the chats have keyword filters (:func:`filter_mix`):
  a quarter none, a quarter a chat-wide include list the item matches, a quarter an exclude
  list of their own (2,500 distinct filters at 10,000 chats), a quarter an include list plus
  a subscription exclude list that drops the item (not sent; cursor advanced). CPU per chat
  against ``unlimited`` is the cost of filtering.

Post formats (``--format``, default ``summary`` — the bot's default): every chat posts the
item in that format. ``--format title,summary`` runs each mode once per format and prints
what a ``summary`` post costs against a ``title`` one (CPU per message, message size).

The 10,000-chat limited run takes about 6 minutes by design (10,000 / 30 s).

Run: ``python -m benchmarks.bench_fanout [--chats 10000] [--mode limited,unlimited,filtered]
[--format title,summary]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import math
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._common import (
    feed_document,
    feed_etag,
    fmt_ms,
    latency_summary,
    other_cpu,
    pinned_to_one_core,
    positive_float,
    positive_int,
    print_table,
    profile_summary,
    stop_poll_job,
    verdict,
)
from benchmarks._telegram import NEWS_MARK, TOKEN, FakeBotProcess, group_title

if TYPE_CHECKING:
    from bot.models import Filters

logger = logging.getLogger(__name__)

MODES = ("limited", "unlimited", "filtered")
FORMATS = ("title", "summary", "full")
TELEGRAM_RATE = 30.0  # messages per second per bot
TARGET_RATIO = 1.1
TARGET_NEWS_P99_MS = 50.0
FEED_PATH = "/fanout.xml"
CHAT_BASE = 1_000_000  # fan-out chats are private chats CHAT_BASE + n
PROBE_CHAT_BASE = 3_000_000  # /news probes come from groups -(PROBE_CHAT_BASE + k)
PROBE_USER_BASE = 4_000_000
IDLE_PROBES = 10  # /news sent before the fan-out, for comparison
SETUP_BATCH = 2000  # storage calls started at once while creating the chats
# A summary as long as richtext keeps them, for timing one item's normalisation when the
# parsed item has none yet.
_LONG_SUMMARY = "<p>Story <b>of</b> the day: " + "Lorem ipsum dolor sit amet, " * 60 + "</p>"


def filter_mix(n: int) -> tuple[Filters, Filters, bool]:
    """Chat ``n``'s (chat filters, subscription filters, whether the new item gets through).

    The new item is titled "Feed 0 story: council approves…" (:func:`_new_item`; its summary
    is about a transit plan); the words below match or miss it on purpose.
    """
    from bot.models import NO_FILTERS, Filters  # noqa: PLC0415 - bot modules load per run

    kind = n % 4
    if kind == 1:  # the same include list for a quarter of the chats: one compiled matcher
        return Filters(include=("python", "story", "machine learning")), NO_FILTERS, True
    if kind == 2:  # an exclude list of its own: a distinct filter per chat
        return Filters(exclude=("sponsored", f"promo{n}", "crypto news")), NO_FILTERS, True
    if kind == 3:  # passes the chat's include list, dropped by the subscription's exclude list
        return Filters(include=("story",)), Filters(exclude=("story",)), False
    return NO_FILTERS, NO_FILTERS, True


async def _create_chats(
    storage: Any, url: str, chats: int, *, filtered: bool, fmt: str = "summary"
) -> list[int]:
    """Instant private chats posting in ``fmt`` and following ``url``, in batches; their ids."""
    ids = [CHAT_BASE + n for n in range(chats)]

    def choose(chat: Any) -> None:
        chat.format = fmt

    for start in range(0, chats, SETUP_BATCH):
        batch = ids[start : start + SETUP_BATCH]
        await asyncio.gather(*(storage.ensure_chat(c, "private", f"U{c}") for c in batch))
        await asyncio.gather(*(storage.update_chat(c, choose) for c in batch))
        await asyncio.gather(*(storage.subscribe(c, url, limit=100) for c in batch))
        if filtered:
            await asyncio.gather(*(_set_filters(storage, url, c) for c in batch))
    return ids


def _article_html() -> str:
    """A news article's body as feeds carry it: paragraphs, links, emphasis, an image."""
    paragraph = (
        "<p>The city council <b>approved</b> the new transit plan on Tuesday after a "
        'long debate, <a href="/transit/plan">the documents show</a>. Officials said the '
        "first lines would open next spring, with <i>more frequent</i> buses at night.</p>"
    )
    return '<img src="https://img.example/lead.jpg" alt="">' + paragraph * 12


def _new_item(url: str) -> Any:
    """The fan-out's new item, with its summary converted as the feed parser does it."""
    from bot.models import FeedItem  # noqa: PLC0415
    from bot.richtext import convert  # noqa: PLC0415

    link = "https://news.example/fanout/1"
    body = convert(_article_html(), link)
    return FeedItem(
        id="urn:newsbot-bench:fanout:new", title="Feed 0 story: council approves the transit "
        "plan after a long debate", link=link, published=None,
        source_title="Bench feed", feed_url=url, summary=body.html, image=body.image,
    )  # fmt: skip


async def _set_filters(storage: Any, url: str, chat_id: int) -> None:
    chat_filters, sub_filters, _ = filter_mix(chat_id - CHAT_BASE)
    if chat_filters:
        await storage.update_chat(chat_id, lambda c: setattr(c, "filters", chat_filters))
    if sub_filters:
        await storage.update_subscription(
            chat_id, url, lambda s: setattr(s, "filters", sub_filters)
        )


def probe_pool(args: argparse.Namespace, limited: bool) -> int:
    """How many probe chats to register: enough for the whole fan-out at ``--probe-rate``."""
    expected_s = args.chats / TELEGRAM_RATE * 1.5 if limited else args.chats / 100
    return math.ceil(args.probe_rate * (expected_s + 10))


async def _probe(
    fake: FakeBotProcess, stop: asyncio.Event, rate: float, chats: range, out: dict[int, float]
) -> None:
    """Send ``/news`` at ``rate``/s until ``stop``, each from its own (known) group; record
    post times. Each group is used once, so a reply is matched by its chat alone."""
    started = time.monotonic()
    for n, k in enumerate(chats):
        if stop.is_set():
            return
        chat_id = -(PROBE_CHAT_BASE + k)
        body = {
            "text": "/news",
            "chat_id": chat_id,
            "user_id": PROBE_USER_BASE + k,
            "chat_type": "group",
            "chat_title": group_title(chat_id),
        }
        out[k] = time.monotonic()
        await fake.post("command", body)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                stop.wait(), max(0.0, started + (n + 1) / rate - time.monotonic())
            )


async def _wait_idle(dispatcher: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not dispatcher.idle():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def run_mode(
    args: argparse.Namespace, root: Path, mode: str, fmt: str = "summary"
) -> dict[str, Any]:
    """One bot lifecycle: set up the chats, log one new item, deliver it to every chat."""
    # Imported here: the bot's modules are only needed once a run really starts.
    from bot.context import services_of  # noqa: PLC0415
    from bot.storage import get_storage_service  # noqa: PLC0415
    from tests.helpers.bot_runner import make_settings, running_bot  # noqa: PLC0415
    from tests.helpers.feed_server import FeedServer  # noqa: PLC0415

    limited = mode == "limited"
    await asyncio.to_thread(root.mkdir, parents=True)
    feeds = FeedServer()
    await feeds.start()
    feeds.serve(FEED_PATH, feed_document(0, 0, args.items), etag=feed_etag(0, 0))
    url = feeds.url(FEED_PATH)
    try:
        async with FakeBotProcess(root, enforce_limits=limited, cpu=other_cpu()) as fake:
            settings = make_settings(
                root, fake.base_url, TOKEN, default_feeds=(url,), feed_poll_interval_s=3600,
                news_rate_count=1000,
            )  # fmt: skip
            async with running_bot(settings, rate_limit_outgoing=limited) as app:
                stop_poll_job(app)
                services = services_of(app)
                storage = get_storage_service()
                setup_started = time.perf_counter()
                chat_ids = await _create_chats(
                    storage, url, args.chats, filtered=mode == "filtered", fmt=fmt
                )
                # Their users started the bot (Telegram refuses a bot writing to anyone first).
                await fake.post("started", {"user_ids": chat_ids})
                # Probe groups are known chats (they have used the bot before), so /news is
                # answered from memory as for any returning user.
                pool = IDLE_PROBES + probe_pool(args, limited)
                await asyncio.gather(
                    *(
                        storage.ensure_chat(-(PROBE_CHAT_BASE + k), "group",
                                            group_title(-(PROBE_CHAT_BASE + k)))
                        for k in range(pool)
                    )
                )  # fmt: skip
                setup_s = time.perf_counter() - setup_started
                services.feeds.poll_soon(url)
                await services.feeds.poll_due()  # the baseline: nothing is sent
                baseline_sends = len(await fake.control("calls", method="sendMessage"))
                new_item = _new_item(url)  # converted before the clock starts, as in a parser
                state = storage.feed_state(url)
                assert state is not None, "the baseline poll records the feed's state"

                # /news while nothing else happens: the harness's own round trip.
                idle_posts: dict[int, float] = {}
                stop = asyncio.Event()
                await _probe(fake, stop, args.probe_rate, range(IDLE_PROBES), idle_posts)
                await asyncio.sleep(args.settle)
                probe_posts: dict[int, float] = {}
                profiler = cProfile.Profile() if args.profile else None
                if profiler is not None:
                    profiler.enable()
                cpu_before = resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                entries = await storage.record_fetch(url, [new_item], state)
                services.dispatcher.feed_updated(url, entries)
                prober = asyncio.create_task(
                    _probe(fake, stop, args.probe_rate, range(IDLE_PROBES, pool), probe_posts)
                )
                idle = await _wait_idle(services.dispatcher, args.timeout)
                idle_at = time.monotonic()
                cpu_after = resource.getrusage(resource.RUSAGE_SELF)
                if profiler is not None:
                    profiler.disable()
                stop.set()
                await prober
                await asyncio.sleep(args.settle)  # the last probes' replies
                calls = await fake.control("calls", method="sendMessage")
                calls += await fake.control("calls", method="sendPhoto")
                hits = (await fake.control("limits"))["hits"]
                screening = screen_cost(storage, url, args.chats) if mode == "filtered" else None
    finally:
        await feeds.stop()
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    figures = _figures(
        args, mode, calls, idle_posts, probe_posts, hits,
        started=started, idle_at=idle_at, idle=idle, cpu_s=cpu_s, setup_s=setup_s,
        baseline_sends=baseline_sends, new_items=len(entries), fmt=fmt,
    )  # fmt: skip
    figures["profile"] = profile_summary(profiler, 20) if profiler is not None else None
    figures["screening"] = screening
    return figures


def screen_cost(storage: Any, url: str, chats: int) -> dict[str, float]:
    """CPU of the filtering step alone, out of the fan-out: ``screen()`` for every chat.

    The same backlog (the feed's newest item, as the fan-out delivered it) is screened for
    each chat with its :func:`filter_mix` filters and a fresh text cache, then again with no
    filters (what every chat pays anyway); also one item's normalisation.
    """
    from bot.models import NO_FILTERS, Backlog, Subscription  # noqa: PLC0415
    from bot.services.filters import TextCache, item_text, screen  # noqa: PLC0415

    entry = storage.feed_log(url)[-1]
    mixes = [filter_mix(n) for n in range(chats)]

    def run(filtered: bool) -> float:
        texts = TextCache()
        started = time.process_time()
        for n, (chat_filters, sub_filters, _) in enumerate(mixes):
            sub = Subscription(CHAT_BASE + n, url, filters=sub_filters if filtered else NO_FILTERS)
            backlog = Backlog(url, "t", [entry], 0, entry.seq, sub)
            screen([backlog], chat_filters if filtered else NO_FILTERS, texts)
        return time.process_time() - started

    run(True)  # warm the matcher cache, as a running bot has it
    with_filters, without = run(True), run(False)
    started = time.process_time()
    for _ in range(100):
        item_text(entry.item.title, entry.item.summary or _LONG_SUMMARY)
    normalise = (time.process_time() - started) / 100
    return {
        "us_per_chat": with_filters * 1e6 / chats,
        "us_per_chat_unfiltered": without * 1e6 / chats,
        "normalise_us": normalise * 1e6,
    }


def _figures(
    args: argparse.Namespace,
    mode: str,
    calls: list[dict[str, Any]],
    idle_posts: dict[int, float],
    probe_posts: dict[int, float],
    hits: dict[str, int],
    **run: Any,
) -> dict[str, Any]:
    """Count deliveries and replies at the fake; latency of each probe's reply."""
    fanout = range(CHAT_BASE, CHAT_BASE + args.chats)
    wanted = args.chats
    if mode == "filtered":
        wanted = sum(1 for n in range(args.chats) if filter_mix(n)[2])
    delivered: Counter[int] = Counter()
    last_delivery = run["started"]
    statuses: Counter[int] = Counter()
    replies: dict[int, float] = {}
    text_chars = 0
    for call in calls:
        params = call.get("params") or {}
        chat_id = int(params.get("chat_id", 0))
        status = int(call.get("status", 0))
        statuses[status] += 1
        if status != 200:
            continue
        if chat_id in fanout:
            delivered[chat_id] += 1
            text_chars += len(str(params.get("text") or params.get("caption") or ""))
            last_delivery = max(last_delivery, float(call["time"]))
        elif chat_id <= -PROBE_CHAT_BASE and NEWS_MARK in str(params.get("text", "")):
            replies.setdefault(-chat_id - PROBE_CHAT_BASE, float(call["time"]))
    latencies = [replies[k] - t for k, t in probe_posts.items() if k in replies]
    idle_latencies = [replies[k] - t for k, t in idle_posts.items() if k in replies]
    elapsed = last_delivery - run["started"]
    ideal = args.chats / TELEGRAM_RATE
    sent = sum(delivered.values())
    return {
        "mode": mode,
        "format": run["fmt"],
        "message_chars": text_chars / max(1, sent),  # raw HTML per message, average
        "chats": args.chats,
        "setup_s": run["setup_s"],
        "new_items": run["new_items"],
        "baseline_sends": run["baseline_sends"],
        "idle": run["idle"],
        "delivered_chats": len(delivered),
        "wanted_chats": wanted,  # chats whose filters let the item through
        "messages": sent,
        "duplicates": sent - len(delivered),
        "deliver_s": elapsed,
        "idle_s": run["idle_at"] - run["started"],
        "ideal_s": ideal,
        "ratio": elapsed / ideal if ideal > 0 else 0.0,
        "throughput": sent / elapsed if elapsed > 0 else 0.0,
        "cpu_s": run["cpu_s"],
        "cpu_ms_per_message": run["cpu_s"] * 1000 / max(1, sent),
        "cpu_ms_per_chat": run["cpu_s"] * 1000 / max(1, args.chats),
        "statuses": dict(statuses),
        "limit_hits": sum(hits.values()),
        "limit_hits_by_scope": hits,
        "probes": len(probe_posts),
        "probe_replies": len(latencies),
        "news_latency": latency_summary(latencies),
        "idle_news_latency": latency_summary(idle_latencies),
    }


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (chats, modes, probe rate)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fanout",
        description="One new item delivered to many instant chats, with and without "
        "Telegram's flood limits enforced by the fake Bot API.",
    )
    parser.add_argument(
        "--chats", type=positive_int, default=10_000, help="instant chats following the feed"
    )
    parser.add_argument(
        "--mode", default=",".join(MODES), help="comma list: limited, unlimited, filtered (all)"
    )
    parser.add_argument(
        "--format", default="summary", help="comma list of post formats: title, summary, full"
    )
    parser.add_argument("--items", type=positive_int, default=20, help="items in the feed (20)")
    parser.add_argument(
        "--probe-rate", type=positive_float, default=2.0, help="/news per second during fan-out"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=1800.0, help="max wait for the fan-out (s)"
    )
    parser.add_argument(
        "--settle", type=positive_float, default=1.0, help="wait for the last replies (s)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the fan-out window: top 20"
    )
    parser.add_argument("--data-root", type=Path, default=None, help="where DATA_DIR goes")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    return parser


def _report(args: argparse.Namespace, cpu: str, runs: list[dict[str, Any]]) -> None:
    print(
        f"fan-out benchmark: 1 new item → {args.chats} instant chats, real Application, fake "
        f"Bot API in another process; bot {cpu}"
    )
    for r in runs:
        rows = [
            ("set-up", f"{r['chats']} chats + subscriptions in {r['setup_s']:.1f} s (not timed)"),
            (
                "delivered",
                f"{r['delivered_chats']}/{r['chats']} chats ({r['wanted_chats']} wanted it), "
                f"{r['messages']} messages, "
                f"{r['duplicates']} duplicates, {r['baseline_sends']} sent for the baseline; "
                f"idle: {r['idle']}",
            ),
            (
                "time to deliver",
                f"{r['deliver_s']:.2f} s (item logged → last message at the fake)",
            ),
            (
                "throughput",
                f"{r['throughput']:.0f} messages/s; bot CPU {r['cpu_ms_per_message']:.2f} ms "
                f"per message, {r['cpu_ms_per_chat']:.2f} ms per chat",
            ),
            ("answers", ", ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items()))),
            ("/news before it", f"{fmt_ms(r['idle_news_latency'])} (the harness's round trip)"),
            (
                "/news during it",
                f"{r['probe_replies']}/{r['probes']} answered; {fmt_ms(r['news_latency'])}",
            ),
        ]
        if r["mode"] == "limited":
            rows += [
                (
                    "vs the limit",
                    f"{r['ratio']:.3f} × the {r['ideal_s']:.1f} s that {TELEGRAM_RATE:.0f} "
                    f"msg/s implies  target ≤ {TARGET_RATIO}×: "
                    f"{verdict(r['ratio'] <= TARGET_RATIO)}",
                ),
                (
                    "429s provoked",
                    f"{r['limit_hits']} {r['limit_hits_by_scope']}  target 0: "
                    f"{verdict(r['limit_hits'] == 0)}",
                ),
                (
                    "/news p99",
                    f"{r['news_latency']['p99_ms']:.1f} ms (post to reply, via getUpdates)  "
                    f"target < {TARGET_NEWS_P99_MS:.0f} ms: "
                    f"{verdict(r['news_latency']['p99_ms'] < TARGET_NEWS_P99_MS)}",
                ),
            ]
        print_table(f"mode={r['mode']} format={r['format']}", rows)
        if r["profile"]:
            print(r["profile"])
    _compare_formats(runs)
    by_mode = {r["mode"]: r for r in runs}  # with several formats: each mode's last run
    if "unlimited" in by_mode and "filtered" in by_mode:
        plain, filtered = by_mode["unlimited"], by_mode["filtered"]
        print_table(
            "keyword filters (filtered vs unlimited, same sizes)",
            [
                (
                    "CPU per chat",
                    f"{filtered['cpu_ms_per_chat']:.3f} ms vs {plain['cpu_ms_per_chat']:.3f} ms"
                    f" = {filtered['cpu_ms_per_chat'] / plain['cpu_ms_per_chat']:.2f}× "
                    f"({args.chats} chats, {filtered['wanted_chats']} wanted the item)",
                ),
                (
                    "CPU per message",
                    f"{filtered['cpu_ms_per_message']:.3f} ms vs "
                    f"{plain['cpu_ms_per_message']:.3f} ms",
                ),
            ],
        )
    screening = by_mode.get("filtered", {}).get("screening")
    if screening:
        print_table(
            "filtering alone (screen() over the filtered mode's chats, out of the fan-out)",
            [
                (
                    "per chat",
                    f"{screening['us_per_chat']:.1f} µs with its filters vs "
                    f"{screening['us_per_chat_unfiltered']:.1f} µs with none",
                ),
                ("one item", f"{screening['normalise_us']:.0f} µs to normalise (once per item)"),
            ],
        )


def formatting_us(fmt: str, rounds: int = 2000) -> float:
    """Microseconds of CPU to render the fan-out's item as one chat's post in ``fmt``.

    In-process and alone (no I/O): the part of a message's cost the format decides, which
    the end-to-end figures above mix with sending.
    """
    from bot.formatting import format_instant  # noqa: PLC0415
    from bot.i18n import translator  # noqa: PLC0415
    from bot.models import POST_FORMATS, Backlog, LogEntry  # noqa: PLC0415

    post_format = next(f for f in POST_FORMATS if f == fmt)
    url = "https://news.example/fanout.xml"
    backlog = Backlog(url, "Bench feed", [LogEntry(1, _new_item(url))], 0, 1)
    t = translator("en")
    started = time.process_time()
    for _ in range(rounds):
        format_instant([backlog], chat_format=post_format, previews=True, t=t)
    return (time.process_time() - started) * 1e6 / rounds


def _compare_formats(runs: list[dict[str, Any]]) -> None:
    """Per mode: what a summary (or full) post costs against a title post."""
    for mode in MODES:
        by_format = {r["format"]: r for r in runs if r["mode"] == mode}
        title = by_format.get("title")
        if title is None:
            continue
        rows = []
        for fmt in FORMATS[1:]:
            other = by_format.get(fmt)
            if other is None:
                continue
            ratio = other["cpu_ms_per_message"] / max(title["cpu_ms_per_message"], 1e-9)
            rows.append(
                (
                    f"{fmt} rendering",
                    f"{other['formatting_us']:.1f} vs {title['formatting_us']:.1f} µs CPU per post "
                    "(rendering alone, in-process)",
                )
            )
            rows.append((
                f"{fmt} vs title",
                f"{other['cpu_ms_per_message']:.3f} vs {title['cpu_ms_per_message']:.3f} ms CPU "
                f"per message = {ratio:.2f}×; messages of {other['message_chars']:.0f} vs "
                f"{title['message_chars']:.0f} characters of HTML; {other['messages']} vs "
                f"{title['messages']} messages to {title['chats']} chats",
            ))  # fmt: skip
        if rows:
            print_table(f"formats, mode={mode}", rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the modes; print and return ``{"runs": [...]}``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"unknown --mode {sorted(unknown)}; choose from {MODES}")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if set(formats) - set(FORMATS) or not formats:
        parser.error(f"unknown --format {args.format!r}; choose from {FORMATS}")
    root = Path(tempfile.mkdtemp(prefix="newsbot-bench-fanout-", dir=args.data_root))
    runs: list[dict[str, Any]] = []
    try:
        with pinned_to_one_core(not args.no_pin) as cpu:
            for mode in modes:
                for fmt in formats:
                    where = root / f"{mode}-{fmt}"
                    runs.append(asyncio.run(run_mode(args, where, mode, fmt)))
                    runs[-1]["formatting_us"] = formatting_us(fmt)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not args.quiet:
        _report(args, cpu, runs)
    return {"runs": runs, "cpu": cpu}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
