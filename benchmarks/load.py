"""Load script: drive a **running** bot (``python -m bot``) through the fake Bot API.

Everything is a separate process on 127.0.0.1: the fake Bot API
(``python -m tests.helpers.fake_bot_api``), a feed server (the tests' FeedServer in a child
process) and the bot itself, started exactly as in production except for its environment
(API base URL pointing at the fake, feeds at the feed server, state in a temp dir). This
script then plays ``--users`` users, each in their own group chat, sending ``--requests-per-user``
``/news`` commands at ``--rate`` commands per second overall (open loop), and reads the
bot's answers back from the fake.

Latency is measured from just before the command is handed to the fake (``POST
/_control/updates``) to the moment the bot's ``sendMessage`` reached the fake (the fake
stamps each call with ``time.monotonic()``; on Linux that clock is system-wide, so the two
processes' stamps compare directly). In groups the bot quotes the command it answers, so
each reply is matched to its command exactly by ``reply_parameters.message_id``.

Figures: throughput (replies/s), latency percentiles, errors, rate-limited commands (the
"You can ask again" notices plus commands dropped without a reply) and the bot's persisted
counters after SIGTERM.

Note: the bot runs with its ``TelegramRateLimiter`` as in production, which holds sends to
Telegram's flood limits (30 messages/s overall, 20/min per group); offered loads above that
show up as latency, by design.

Run: ``python -m benchmarks.load [--users 50 --requests-per-user 10 --rate 25]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import (
    FeedServerProcess,
    fmt_ms,
    latency_summary,
    positive_float,
    positive_int,
    print_table,
    read_state,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A made-up token of the right shape, shared only with the local fake Bot API.
TOKEN = "123456789:" + "L" * 35
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
POLL_EVERY_S = 0.25
NOTICE_MARK = "You can ask again"
NEWS_MARK = "📰 Latest"
Key = tuple[int, int]  # (chat id, message id of the command)
_PASS_THROUGH_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"})


@dataclass
class LoadState:
    """What was sent and when (monotonic seconds)."""

    enqueued: dict[Key, float] = field(default_factory=dict)
    post_errors: int = 0
    not_sent: int = 0
    first_enqueue: float = 0.0
    last_enqueue: float = 0.0


def news_update(chat_id: int, user_id: int, message_id: int) -> dict[str, Any]:
    """A ``/news`` message from ``user_id`` in group ``chat_id`` (the fake adds update_id)."""
    return {
        "message": {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group", "title": f"Load group {-chat_id}"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"Load{user_id}"},
            "text": "/news",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        }
    }


async def _start_fake(tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start the standalone fake Bot API; return it and its base URL."""
    env = {**os.environ, "FAKE_BOT_TOKEN": TOKEN, "PYTHONPATH": str(REPO_ROOT)}
    with (tmp / "fake.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.helpers.fake_bot_api",
            "--port",
            "0",
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
    except TimeoutError:
        line = b""
    text = line.decode().strip()
    if not text.startswith("READY "):
        await _stop(proc)
        raise RuntimeError(f"fake Bot API did not start (said {text!r}); see {tmp}/fake.log")
    return proc, text.removeprefix("READY ")


async def _start_bot(
    tmp: Path, api_url: str, feed_urls: list[str], rate_limit: str
) -> asyncio.subprocess.Process:
    """Start ``python -m bot`` with its environment pointing at the local fakes."""
    env = {
        # Only what a process needs to run: none of the caller's bot settings leak in.
        **{k: v for k, v in os.environ.items() if k in _PASS_THROUGH_ENV},
        "PYTHONPATH": str(REPO_ROOT),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": api_url,
        "DEFAULT_FEEDS": ",".join(feed_urls),
        "ALLOW_PRIVATE_FEEDS": "1",
        "DATA_DIR": str(tmp / "data"),
        "BACKUP_DIR": str(tmp / "backups"),
        "HEALTH_PORT": "0",
        "NEWS_RATE_LIMIT": rate_limit,
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
    }
    with (tmp / "bot.log").open("wb") as log:
        # cwd is the temp dir so no stray .env of the checkout leaks into the run.
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp, env=env, stdout=log, stderr=log
        )


async def _stop(proc: asyncio.subprocess.Process, grace_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, wait, then SIGKILL; return the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return int(proc.returncode if proc.returncode is not None else -1)


async def _send_calls(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/_control/calls", params={"method": "sendMessage"})
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()["result"]
    return calls


def _log_tail(log: Path, lines: int = 5) -> list[str]:
    """The last lines of a process log (it is deleted with the temp dir, so show them)."""
    return log.read_text("utf-8", "replace").splitlines()[-lines:]


async def _wait_polling(
    http: httpx.AsyncClient, bot: asyncio.subprocess.Process, log: Path
) -> None:
    """Wait until the bot long-polls the fake (it has started)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if bot.returncode is not None:
            tail = "\n".join(await asyncio.to_thread(_log_tail, log))
            raise RuntimeError(
                f"the bot exited with code {bot.returncode} while starting; its log ends:\n{tail}"
            )
        response = await http.get("/_control/calls", params={"method": "getUpdates"})
        if response.json()["result"]:
            return
        await asyncio.sleep(POLL_EVERY_S)
    raise RuntimeError("the bot did not start polling in time")


async def _warm_up(http: httpx.AsyncClient) -> None:
    """One /news by a user outside the load, so feeds are fetched before measuring."""
    await http.post("/_control/updates", json=[news_update(-1_999_999, 1, 1)])
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if await _send_calls(http):
            return
        await asyncio.sleep(POLL_EVERY_S)
    raise RuntimeError("the bot did not answer the warm-up /news in time")


async def _offer_load(http: httpx.AsyncClient, args: argparse.Namespace) -> LoadState:
    """Send the commands on schedule (open loop), batching those due at each wake-up."""
    state = LoadState()
    total = args.users * args.requests_per_user
    start = time.monotonic()
    state.first_enqueue = start
    k = 0
    while k < total:
        now = time.monotonic()
        if now - start > args.duration:
            state.not_sent = total - k
            break
        batch: list[dict[str, Any]] = []
        keys: list[Key] = []
        while k < total and start + k / args.rate <= now:
            user, round_no = k % args.users, k // args.users
            chat_id = -(2_000_000 + user)
            message_id = round_no + 1
            batch.append(news_update(chat_id, 100_000 + user, message_id))
            keys.append((chat_id, message_id))
            k += 1
        if batch:
            sent_at = time.monotonic()
            try:
                response = await http.post("/_control/updates", json=batch)
                response.raise_for_status()
            except httpx.HTTPError:
                state.post_errors += len(batch)
            else:
                for key in keys:
                    state.enqueued[key] = sent_at
                state.last_enqueue = sent_at
        if k < total:
            await asyncio.sleep(max(0.0, start + k / args.rate - time.monotonic()))
    return state


async def _drain(http: httpx.AsyncClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Poll the fake until no new sendMessage arrived for ``--settle`` seconds (or timeout)."""
    deadline = time.monotonic() + args.drain
    calls = await _send_calls(http)
    last_change = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < args.settle:
        await asyncio.sleep(POLL_EVERY_S)
        fresh = await _send_calls(http)
        if len(fresh) != len(calls):
            last_change = time.monotonic()
        calls = fresh
    return calls


def _tally(state: LoadState, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Match replies to commands and classify them."""
    replies: dict[Key, dict[str, Any]] = {}
    for call in calls:
        params = call.get("params") or {}
        quoted = params.get("reply_parameters")
        if not isinstance(quoted, dict):
            continue
        key = (int(params.get("chat_id", 0)), int(quoted.get("message_id", 0)))
        if key in state.enqueued:
            replies.setdefault(key, call)
    news_lat: list[float] = []
    all_lat: list[float] = []
    notices = api_errors = other = 0
    reply_times: list[float] = []
    for key, call in replies.items():
        text = str((call.get("params") or {}).get("text", ""))
        if call.get("status") != 200:
            api_errors += 1
            continue
        latency = float(call["time"]) - state.enqueued[key]
        all_lat.append(latency)
        reply_times.append(float(call["time"]))
        if NEWS_MARK in text:
            news_lat.append(latency)
        elif NOTICE_MARK in text:
            notices += 1
        else:
            other += 1
    dropped = len(state.enqueued) - len(replies)
    span = (max(reply_times) - state.first_enqueue) if reply_times else 0.0
    return {
        "commands_sent": len(state.enqueued),
        "not_sent": state.not_sent,
        "post_errors": state.post_errors,
        "replies": len(all_lat),
        "news_replies": len(news_lat),
        "notices": notices,
        "dropped": dropped,
        "rate_limited": notices + dropped,
        "errors": api_errors + other + state.post_errors,
        "api_errors": api_errors,
        "unexpected_replies": other,
        "offered_rate": len(state.enqueued) / max(1e-9, state.last_enqueue - state.first_enqueue),
        "throughput": len(all_lat) / span if span > 0 else 0.0,
        "latency": latency_summary(all_lat),
        "news_latency": latency_summary(news_lat),
    }


async def run(args: argparse.Namespace, tmp: Path, feeds: FeedServerProcess) -> dict[str, Any]:
    """Start the fake and the bot, offer the load, drain, stop the bot (SIGTERM)."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        fake, api_url = await _start_fake(tmp)
        processes.append(fake)
        bot = await _start_bot(tmp, api_url, feeds.urls(), args.rate_limit)
        processes.append(bot)
        async with httpx.AsyncClient(base_url=api_url, trust_env=False, timeout=10) as http:
            await _wait_polling(http, bot, tmp / "bot.log")
            await _warm_up(http)
            state = await _offer_load(http, args)
            calls = await _drain(http, args)
        figures = _tally(state, calls)
        figures["bot_exit_code"] = await _stop(bot)
    finally:
        for proc in reversed(processes):
            await _stop(proc, 5.0)
    return figures


def add_persisted(figures: dict[str, Any], tmp: Path) -> None:
    """Add the bot's persisted counters and log findings (after it has stopped)."""
    data_dir = tmp / "data"
    persisted = dict(read_state(data_dir).counters) if data_dir.exists() else {}
    figures["counters"] = persisted
    # +1: the warm-up /news. Every command is either served or rate-limited, durably.
    accounted = persisted.get("news_requests", 0) + persisted.get("news_rate_limited", 0)
    figures["counters_consistent"] = accounted == figures["commands_sent"] + 1
    log = (tmp / "bot.log").read_text("utf-8", "replace")
    figures["bot_log_errors"] = sum(
        1 for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line
    )
    figures["bot_log_tail"] = log.splitlines()[-5:]


def build_parser() -> argparse.ArgumentParser:
    """Command-line knobs (users, requests, rate, time bounds)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="Drive a running bot (python -m bot) through the fake Bot API.",
    )
    parser.add_argument("--users", type=positive_int, default=50, help="simulated users (50)")
    parser.add_argument(
        "--requests-per-user", type=positive_int, default=10, help="/news commands per user (10)"
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=25.0,
        help="commands per second, all users together (25)",
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=60.0,
        help="stop offering load after this many s (60)",
    )
    parser.add_argument(
        "--drain", type=positive_float, default=30.0, help="max wait for replies afterwards (s)"
    )
    parser.add_argument(
        "--settle",
        type=positive_float,
        default=2.0,
        help="replies are done after this long without one",
    )
    parser.add_argument("--feeds", type=positive_int, default=5, help="DEFAULT_FEEDS served (5)")
    parser.add_argument("--items", type=positive_int, default=20, help="items per feed (20)")
    parser.add_argument("--rate-limit", default="5/60", help="the bot's NEWS_RATE_LIMIT")
    parser.add_argument(
        "--data-root", type=Path, default=None, help="where the run's temp dir goes"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing (for tests)")
    return parser


def _report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    counters = ", ".join(f"{k}={v}" for k, v in sorted(f["counters"].items()))
    print_table(
        f"load: {args.users} users × {args.requests_per_user} /news at {args.rate:.0f}/s offered "
        f"against python -m bot (NEWS_RATE_LIMIT={args.rate_limit}, {args.feeds} feeds), "
        "via the fake Bot API",
        [
            (
                "commands",
                f"{f['commands_sent']} sent ({f['offered_rate']:.1f}/s achieved), "
                f"{f['not_sent']} not sent (--duration), {f['post_errors']} failed to post",
            ),
            (
                "replies",
                f"{f['replies']} ({f['news_replies']} news, {f['notices']} rate-limit notices)",
            ),
            ("throughput", f"{f['throughput']:.1f} replies/s"),
            ("latency (all replies)", fmt_ms(f["latency"])),
            ("latency (news replies)", fmt_ms(f["news_latency"])),
            (
                "rate-limited",
                f"{f['rate_limited']} ({f['notices']} notified + {f['dropped']} dropped "
                "without reply)",
            ),
            (
                "errors",
                f"{f['errors']} ({f['api_errors']} Bot API errors, {f['unexpected_replies']} "
                f"unexpected replies, {f['post_errors']} posts); bot log ERROR lines: "
                f"{f['bot_log_errors']}",
            ),
            ("bot exit code", f"{f['bot_exit_code']} after SIGTERM"),
            ("persisted counters", counters or "(none: no storage in DATA_DIR)"),
            (
                "counters consistent",
                f"news_requests + news_rate_limited == commands + 1 warm-up: "
                f"{f['counters_consistent']}",
            ),
        ],
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the load; print and return its figures."""
    args = build_parser().parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="newsbot-load-", dir=args.data_root))
    try:
        with FeedServerProcess(args.feeds, args.items) as feeds:
            figures = asyncio.run(run(args, tmp, feeds))
        add_persisted(figures, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.quiet:
        _report(args, figures)
    return figures


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
