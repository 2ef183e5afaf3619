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
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.request import BaseRequest, RequestData

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
    verdict,
)

logger = logging.getLogger(__name__)

# A made-up token of the right shape: the transport is in memory, nothing ever sees it.
TOKEN = "123456789:" + "B" * 35
# Never contacted: every Bot API call is answered by InMemoryRequest.
API_BASE_URL = "http://127.0.0.1:9"
BOT_USER: dict[str, Any] = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "NewsBot Bench",
    "username": "newsbot_bench_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
TARGET_RATE = 1000.0  # /news per second on one core
TARGET_P99_MS = 50.0
MessageKey = tuple[int, int]  # (chat id, message id of the /news command)


class InMemoryRequest(BaseRequest):
    """A Bot API transport that answers in memory and timestamps every ``sendMessage``.

    Answers ``getMe``, ``sendMessage`` (a valid Message) and anything else with ``true``, as
    Telegram would, so PTB's request/response code runs in full; only the HTTP round trip is
    missing. Replies are keyed by ``(chat_id, reply_parameters.message_id)``: the bot quotes
    the command in groups, which is what the benchmark's updates come from.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: dict[MessageKey, float] = {}
        self.texts: dict[MessageKey, str] = {}
        self.calls: Counter[str] = Counter()
        self._message_ids: Counter[int] = Counter()
        self._wanted = 0
        self._enough: asyncio.Event | None = None

    @property
    def read_timeout(self) -> float:
        """Nothing here ever waits, but PTB asks."""
        return 5.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    def expect(self, total_sends: int) -> asyncio.Event:
        """An event set once ``total_sends`` messages have been sent in all."""
        self._wanted = total_sends
        self._enough = asyncio.Event()
        if len(self.sent_at) >= total_sends:
            self._enough.set()
        return self._enough

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        # PTB types these as ODVInput[float] from a private module.
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Answer one Bot API call with a Telegram-shaped JSON body."""
        endpoint = url.rsplit("/", 1)[-1].lower()
        self.calls[endpoint] += 1
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if endpoint == "getme":
            result = BOT_USER
        elif endpoint == "sendmessage":
            result = self._send(params)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        now = time.perf_counter()
        chat_id = int(params["chat_id"])
        quoted = params.get("reply_parameters")
        key = (chat_id, int(quoted["message_id"]) if isinstance(quoted, dict) else 0)
        self.sent_at.setdefault(key, now)
        self.texts.setdefault(key, str(params.get("text", "")))
        if self._enough is not None and len(self.sent_at) >= self._wanted:
            self._enough.set()
        self._message_ids[chat_id] += 1
        return {
            "message_id": 1_000_000 + self._message_ids[chat_id],
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group", "title": f"Chat {chat_id}"},
            "from": BOT_USER,
            "text": str(params.get("text", "")),
        }


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
    now = int(time.time())
    for i in range(count):
        chat_id = -(1_000_000 + i % chats)
        user_id = 10_000_000 * (round_no + 1) + 1_000_000 * phase + i
        message_id = phase * count + i + 1
        data = {
            "update_id": round_no * 10_000_000 + phase * 1_000_000 + i + 1,
            "message": {
                "message_id": message_id,
                "date": now,
                "chat": {"id": chat_id, "type": "group", "title": f"Bench group {i % chats}"},
                "from": {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"},
                "text": "/news",
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            },
        }
        update = Update.de_json(data, bot)
        out.append(((chat_id, message_id), update))
    return out


async def _run_phase(
    app: Any, request: InMemoryRequest, phase: Phase, rate: float | None, timeout_s: float
) -> None:
    """Offer the phase's updates (all at once, or paced) and wait for every reply."""
    from bot.services.storage import get_storage_service  # noqa: PLC0415

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
    news_replies = sum(1 for k in keys if request.texts.get(k, "").startswith("<b>📰 Latest"))
    return {
        "updates": len(keys),
        "answered": len(latencies),
        "news_replies": news_replies,
        "elapsed_s": phase.elapsed_s,
        "throughput": len(latencies) / phase.elapsed_s if phase.elapsed_s > 0 else 0.0,
        "latency": latency_summary(latencies),
        "storage_writes": phase.writes,
    }


async def run_round(
    args: argparse.Namespace, root: Path, round_no: int, profiler: cProfile.Profile | None
) -> dict[str, Any]:
    """One full bot lifecycle: warm the cache, burst phase, paced phase, shutdown, verify."""
    # Imported here: the bot's modules are only needed once a round really runs.
    from bot.context import services_of  # noqa: PLC0415
    from tests.helpers.bot_runner import make_settings, running_bot  # noqa: PLC0415
    from tests.helpers.feed_server import FeedServer  # noqa: PLC0415

    feeds = FeedServer()
    await feeds.start()
    urls = []
    for n in range(args.feeds):
        feeds.serve(f"/f{n}.xml", feed_document(n, 0, args.items), etag=f'"f{n}"')
        urls.append(feeds.url(f"/f{n}.xml"))
    settings = make_settings(
        root, API_BASE_URL, TOKEN, default_feeds=tuple(urls), feed_poll_interval_s=3600
    )
    request = InMemoryRequest()
    try:
        async with running_bot(
            settings, rate_limit_outgoing=False, request=request, poll=False
        ) as app:
            phases = [
                Phase("burst", make_updates(app.bot, args.updates, args.chats, 0, round_no)),
                Phase("paced", make_updates(app.bot, args.updates, args.chats, 1, round_no)),
            ]
            news = services_of(app).news
            await asyncio.gather(*(news.refresh(u) for u in urls))
            cached_items = sum(len(c.items) for u in urls if (c := news.cached(u)) is not None)
            await feeds.stop()  # from here on, any fetch would fail: no network in the run
            if profiler is not None:
                profiler.enable()
            await _run_phase(app, request, phases[0], None, args.timeout)
            await _run_phase(app, request, phases[1], args.rate, args.timeout)
            if profiler is not None:
                profiler.disable()
    finally:
        await feeds.stop()  # idempotent; here for the error paths
    counters = json.loads((settings.data_dir / "counters.json").read_text("utf-8"))
    durable = int(counters.get("global", {}).get("news_requests", 0))
    burst, paced = (_phase_figures(p, request) for p in phases)
    return {
        "round": round_no + 1,
        "cached_items": cached_items,
        "burst": burst,
        "paced": paced,
        "throughput": burst["throughput"],
        "durable_news_requests": durable,
        "expected_news_requests": 2 * args.updates,
        "durable_ok": durable == 2 * args.updates,
    }


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
        f"{args.rounds} round(s)",
        [
            ("CPU", result["cpu"]),
            ("transport", "in-memory Bot API (InMemoryRequest); no network during the run"),
            ("storage", f"real StorageService, fsync'd group commit under {result['data_root']}"),
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
                f"counters.json global.news_requests = {best['durable_news_requests']} "
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
            rounds = [
                asyncio.run(run_round(args, root / f"round{n}", n, None))
                for n in range(args.rounds)
            ]
            if args.profile:
                profiler = cProfile.Profile()
                asyncio.run(run_round(args, root / "profiled", args.rounds, profiler))
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
