"""Storage v2: the cost of a durable change must not grow with the state; start-up stays fast.

What runs: the real :class:`~bot.storage.StorageService` on a temp dir on the real disk
(fsync'd journal, group commit). For each size a state is built in memory (``State`` with
chats, subscriptions and feeds whose logs hold ``--log-items`` realistic items: ~60-character
URLs, ids and titles) and written directly as ``snapshot.json`` with
``snapshot.snapshot_chunks`` — the same file the service writes when it compacts — so a
100,000-chat state takes seconds to build rather than 300,000 fsyncs.

Measured:

* **durable change latency** at the small and the big size: ``--ops`` sequential calls of each
  kind (``update_chat`` of one chat, ``subscribe`` to one more feed, ``advance`` of one cursor,
  ``unsubscribe``) on random chats; each call returns once its record is fsynced, so this is
  what a user waits for. Target: big p50 and p99 ≤ 2 × small.
* **group commit**: ``--ops`` concurrent ``advance`` calls (a fan-out's cursor writes): wall
  time and fsyncs.
* **start-up** at the big size, in a fresh ``python`` process (so nothing is warm): time of
  ``StorageService.load()`` (streamed read + decode of the snapshot, start-up backup; with no
  journal to replay the snapshot is not rewritten) and the process's peak RSS (``VmHWM``).
  Targets: ≤ 10 s and ≤ 300 MB.

Run: ``python -m benchmarks.bench_storage [--chats 100000 --feeds 10000]``; see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import (
    fmt_ms,
    latency_summary,
    positive_int,
    print_table,
    process_memory_mb,
    verdict,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
TARGET_LOAD_S = 10.0
TARGET_RSS_MB = 300.0
OP_KINDS = ("update_chat", "subscribe", "advance", "unsubscribe")
_BASE = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
_LOAD_MARK = "BENCH_STORAGE_LOAD "


# --------------------------------------------------------------------------- building states


def feed_url(n: int) -> str:
    """A realistic feed URL (~50 characters)."""
    return f"https://news-site-{n % 997}.example.com/section/{n}/feed.rss"


def build_state(chats: int, feeds: int, subs_per_chat: int, log_items: int) -> Any:
    """A ``State`` of the given size (objects built directly; records would be slower)."""
    from bot.models import (  # noqa: PLC0415 - the bot is imported only when a run starts
        Chat,
        Delivery,
        FeedItem,
        FeedState,
        LogEntry,
        Subscription,
    )
    from bot.storage.state import FeedRecord, State, id_key  # noqa: PLC0415

    state = State()
    every = Delivery(mode="every", interval_s=3600)
    for n in range(feeds):
        url = feed_url(n)
        title = f"Site {n}: news, analysis and opinion"
        record = FeedRecord(
            FeedState(
                url=url, title=title, etag=f'W/"{n:08x}-5f3a9c"',
                last_modified="Fri, 01 Mar 2024 08:00:00 GMT", last_attempt=1_709_280_000.0,
            ),
            head=log_items,
        )  # fmt: skip
        for seq in range(1, log_items + 1):
            link = f"https://news-site-{n % 997}.example.com/2024/03/01/story-{n}-{seq:04d}.html"
            item = FeedItem(
                id=link,
                title=f"Story {seq} of site {n}: a headline of about sixty characters",
                link=link,
                published=_BASE + timedelta(minutes=seq),
                source_title=title,
                feed_url=url,
            )
            record.log.append(LogEntry(seq, item))
            record.known.add(id_key(link))
        state.feeds[url] = record
    for n in range(chats):
        chat_id = -(1_000_000_000 + n) if n % 2 else 10_000_000 + n
        kind = "supergroup" if n % 2 else "private"
        state.chats[chat_id] = Chat(
            chat_id=chat_id, type=kind, title=f"Chat number {n}",
            delivery=every if n % 5 == 0 else Delivery(),
        )  # fmt: skip
        for k in range(subs_per_chat):
            url = feed_url((n * subs_per_chat + k) % feeds)
            state.put_sub(Subscription(chat_id, url, log_items, 1_709_280_000.0))
        state.chat_counters[chat_id] = {"news_requests": n % 50, "items_sent": n % 700}
    state.counters.update({"news_requests": 123_456, "items_sent": 9_876_543})
    return state


def write_state(data_dir: Path, state: Any) -> int:
    """Write ``state`` as the snapshot the service loads; return its size in bytes.

    Streamed a chunk at a time, as the service writes it (``snapshot.snapshot_chunks``).
    """
    from bot.storage.journal import SNAPSHOT_NAME  # noqa: PLC0415
    from bot.storage.snapshot import snapshot_chunks  # noqa: PLC0415

    data_dir.mkdir(parents=True, mode=0o700)
    path = data_dir / SNAPSHOT_NAME
    size = 0
    with path.open("wb") as handle:
        for chunk in snapshot_chunks(state.to_snapshot(1)):
            handle.write(chunk)
            size += len(chunk)
    path.chmod(0o600)
    return size


# --------------------------------------------------------------------------- measuring


def _retitle(chat: Any, title: str) -> None:
    chat.title = title


async def _durable_ops(root: Path, args: argparse.Namespace, chats: int) -> dict[str, Any]:
    """Load the service and time ``--ops`` sequential calls of each kind, then a group commit."""
    from bot.storage import StorageService  # noqa: PLC0415

    service = StorageService(root / "data", root / "backups", 2)
    await service.load()
    rng = random.Random(chats)
    ids = [c.chat_id for c in service.chats()]
    feeds = service.followed_urls()
    times: dict[str, list[float]] = {kind: [] for kind in OP_KINDS}
    picked = [rng.choice(ids) for _ in range(args.ops)]
    extra: dict[int, str] = {}
    try:
        for n, chat_id in enumerate(picked):
            started = time.perf_counter()
            await service.update_chat(chat_id, functools.partial(_retitle, title=f"T{n}"))
            times["update_chat"].append(time.perf_counter() - started)
        for chat_id in dict.fromkeys(picked):
            following = set(service.feed_urls(chat_id))
            url = next(u for u in (rng.choice(feeds) for _ in range(100)) if u not in following)
            started = time.perf_counter()
            await service.subscribe(chat_id, url, limit=1000)
            times["subscribe"].append(time.perf_counter() - started)
            extra[chat_id] = url
        for chat_id in picked:
            url = service.feed_urls(chat_id)[0]
            started = time.perf_counter()
            await service.advance(chat_id, {url: service.feed_head(url)})
            times["advance"].append(time.perf_counter() - started)
        for chat_id, url in extra.items():
            started = time.perf_counter()
            await service.unsubscribe(chat_id, url)
            times["unsubscribe"].append(time.perf_counter() - started)
        writes_before = service.write_count
        started = time.perf_counter()
        await asyncio.gather(
            *(service.advance(c, {service.feed_urls(c)[0]: 10**6}) for c in picked)
        )
        group_s = time.perf_counter() - started
        group_writes = service.write_count - writes_before
    finally:
        await service.close()
    every = [t for kind in OP_KINDS for t in times[kind]]
    return {
        "chats": chats,
        "by_kind": {kind: latency_summary(values) for kind, values in times.items()},
        "all": latency_summary(every),
        "group_commit": {"calls": len(picked), "seconds": group_s, "fsyncs": group_writes},
    }


def _measure_load(data_dir: Path, backup_dir: Path) -> None:
    """Child-process body: load the storage once and print the figures as one JSON line."""
    from bot.storage import StorageService  # noqa: PLC0415

    async def load() -> dict[str, Any]:
        service = StorageService(data_dir, backup_dir, 2)
        rss_before = process_memory_mb(os.getpid(), "VmRSS")
        started = time.perf_counter()
        await service.load()
        seconds = time.perf_counter() - started
        figures = {
            "load_s": seconds,
            "rss_before_mb": rss_before,
            "rss_after_mb": process_memory_mb(os.getpid(), "VmRSS"),
            "rss_peak_mb": process_memory_mb(os.getpid(), "VmHWM"),
            "chats": len(service.chats()),
            "subscriptions": sum(len(service.feed_urls(c.chat_id)) for c in service.chats()),
            "feeds": len(service.followed_urls()),
            "log_items": sum(len(service.feed_log(u)) for u in service.followed_urls()),
        }
        await service.close()
        return figures

    print(_LOAD_MARK + json.dumps(asyncio.run(load())), flush=True)


def measure_load(root: Path) -> dict[str, Any]:
    """Run :func:`_measure_load` in a fresh interpreter and return its figures."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [
        sys.executable, "-m", "benchmarks.bench_storage", "--load-only",
        str(root / "data"), str(root / "backups"),
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(_LOAD_MARK):
            figures: dict[str, Any] = json.loads(line.removeprefix(_LOAD_MARK))
            return figures
    raise RuntimeError(f"the load process failed ({done.returncode}): {done.stderr[-2000:]}")


def run_size(
    args: argparse.Namespace, root: Path, chats: int, feeds: int, *, load: bool
) -> dict[str, Any]:
    """Build one state, measure the durable changes (and, if asked, the start-up)."""
    started = time.perf_counter()
    state = build_state(chats, feeds, args.subs_per_chat, args.log_items)
    size = write_state(root / "data", state)
    del state
    build_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "chats": chats,
        "feeds": feeds,
        "subscriptions": chats * args.subs_per_chat,
        "snapshot_bytes": size,
        "build_s": build_s,
    }
    if load:  # first, before this process's service rewrites the snapshot
        result["load"] = measure_load(root)
    result["ops"] = asyncio.run(_durable_ops(root, args, chats))
    return result


# --------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (sizes, ops)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_storage",
        description="Durable-change latency at a small and a big state; start-up load and RSS.",
    )
    parser.add_argument("--chats", type=positive_int, default=100_000, help="big size (100000)")
    parser.add_argument("--feeds", type=positive_int, default=10_000, help="feeds at big size")
    parser.add_argument(
        "--small-chats", type=positive_int, default=100, help="small size (100 chats)"
    )
    parser.add_argument(
        "--small-feeds", type=positive_int, default=10, help="feeds at the small size (10)"
    )
    parser.add_argument(
        "--subs-per-chat", type=positive_int, default=2, help="subscriptions per chat (2)"
    )
    parser.add_argument("--log-items", type=positive_int, default=25, help="items per feed log")
    parser.add_argument(
        "--ops", type=positive_int, default=200, help="sequential calls per kind and size"
    )
    parser.add_argument("--data-root", type=Path, default=None, help="where the data goes")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    parser.add_argument("--load-only", nargs=2, metavar=("DATA_DIR", "BACKUP_DIR"),
                        help=argparse.SUPPRESS)  # fmt: skip
    return parser


def _ratio(big: dict[str, float], small: dict[str, float], key: str) -> float:
    return big[key] / small[key] if small[key] > 0 else float("inf")


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    small, big = result["small"], result["big"]
    print(
        f"storage benchmark: durable changes at {small['chats']} and {big['chats']} chats "
        f"({args.subs_per_chat} subscriptions each; {small['feeds']} / {big['feeds']} feeds "
        f"with {args.log_items}-item logs); {args.ops} sequential calls per kind; "
        f"data under {result['data_root']}"
    )
    for label, run in (("small", small), ("big", big)):
        rows = [
            (
                "state",
                f"{run['chats']} chats, {run['subscriptions']} subscriptions, {run['feeds']} "
                f"feeds; snapshot {run['snapshot_bytes'] / 1e6:.1f} MB (built in "
                f"{run['build_s']:.1f} s)",
            ),
            *((kind, fmt_ms(run["ops"]["by_kind"][kind])) for kind in OP_KINDS),
            ("all changes", fmt_ms(run["ops"]["all"])),
            (
                "group commit",
                f"{run['ops']['group_commit']['calls']} concurrent advance() in "
                f"{run['ops']['group_commit']['seconds'] * 1000:.1f} ms, "
                f"{run['ops']['group_commit']['fsyncs']} fsync'd write(s)",
            ),
        ]
        print_table(f"{label}: {run['chats']} chats", rows)
    p50 = _ratio(big["ops"]["all"], small["ops"]["all"], "p50_ms")
    p99 = _ratio(big["ops"]["all"], small["ops"]["all"], "p99_ms")
    load = big["load"]
    print_table(
        "targets",
        [
            (
                "change p50 ratio",
                f"{p50:.2f} (big/small)  target ≤ {TARGET_RATIO:.0f}: "
                f"{verdict(p50 <= TARGET_RATIO)}",
            ),
            (
                "change p99 ratio",
                f"{p99:.2f} (big/small)  target ≤ {TARGET_RATIO:.0f}: "
                f"{verdict(p99 <= TARGET_RATIO)}",
            ),
            (
                "start-up load",
                f"{load['load_s']:.2f} s for {load['chats']} chats, {load['subscriptions']} "
                f"subscriptions, {load['feeds']} feeds, {load['log_items']} logged items "
                f"(fresh process)  target ≤ {TARGET_LOAD_S:.0f} s: "
                f"{verdict(load['load_s'] <= TARGET_LOAD_S)}",
            ),
            (
                "start-up RSS",
                f"peak {load['rss_peak_mb']:.0f} MB (VmHWM; {load['rss_before_mb']:.0f} MB "
                f"before load, {load['rss_after_mb']:.0f} MB after)  target ≤ "
                f"{TARGET_RSS_MB:.0f} MB: {verdict(load['rss_peak_mb'] <= TARGET_RSS_MB)}",
            ),
        ],
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both sizes; print and return ``{"small": ..., "big": ..., targets}``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.feeds, args.small_feeds) <= args.subs_per_chat:
        parser.error("each size needs more feeds than --subs-per-chat (subscribe adds one)")
    if args.load_only:
        _measure_load(Path(args.load_only[0]), Path(args.load_only[1]))
        return {}
    root = Path(tempfile.mkdtemp(prefix="newsbot-bench-storage-", dir=args.data_root))
    result: dict[str, Any] = {"data_root": str(root)}
    try:
        result["small"] = run_size(args, root / "small", args.small_chats, args.small_feeds,
                                   load=True)  # fmt: skip
        result["big"] = run_size(args, root / "big", args.chats, args.feeds, load=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    small, big = result["small"]["ops"]["all"], result["big"]["ops"]["all"]
    result["p50_ratio"] = _ratio(big, small, "p50_ms")
    result["p99_ratio"] = _ratio(big, small, "p99_ms")
    load = result["big"]["load"]
    result["ratio_met"] = max(result["p50_ratio"], result["p99_ratio"]) <= TARGET_RATIO
    result["load_met"] = load["load_s"] <= TARGET_LOAD_S
    result["rss_met"] = load["rss_peak_mb"] <= TARGET_RSS_MB
    if not args.quiet:
        _report(args, result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
