"""Raw fan-out through ``ExtBot`` + :class:`TelegramRateLimiter` against the fake Bot API.

What runs: the standalone fake Bot API (``python -m tests.helpers.fake_bot_api
--enforce-limits``, its own process, so its CPU does not compete with the sender) answering
429 as Telegram would above 30 messages/s per bot, 20/min per group and 1/s per chat. In this
process one PTB ``ExtBot`` with the limiter sends one message to each of ``--chats`` private
chats, all issued at once as ``BULK``; meanwhile ``--replies`` interactive sends (each to its
own chat) are issued evenly over the fan-out's ideal duration; as a baseline, as many replies
are first sent one by one with nothing queued.

Printed, with the sizes: fan-out wall time against the ideal (N + replies) / rate, the 429s
the fake gave, and the latency of the interactive sends (issue → answer). No bot, storage or
feeds: this measures the limiter and PTB's HTTP path only (``bench_fanout`` measures the bot).

Run: ``python -m benchmarks.bench_fanout_raw [--chats 2000] [--replies 40]``; see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any

import httpx
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from benchmarks._common import (
    fmt_ms,
    latency_summary,
    positive_float,
    positive_int,
    print_table,
    verdict,
)
from bot.services.telegram_limits import (
    BULK,
    INTERACTIVE,
    OVERALL_RATE_PER_S,
    SendClass,
    TelegramRateLimiter,
)

logger = logging.getLogger(__name__)

TOKEN = "123456789:" + "F" * 35  # only the local fake ever sees it
TARGET_RATIO = 1.1  # issue 8: delivery within 1.1 × the time the 30/s limit implies
_FAN_OUT_CHAT_BASE = 10_000_000
_REPLY_CHAT_BASE = 1_000
_READY_TIMEOUT_S = 30.0


def build_parser() -> argparse.ArgumentParser:
    """The command line: sizes and the pacing rate."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=positive_int, default=2000, help="fan-out size")
    parser.add_argument(
        "--replies", type=positive_int, default=40, help="interactive sends during the fan-out"
    )
    parser.add_argument(
        "--rate", type=positive_float, default=OVERALL_RATE_PER_S, help="limiter rate (msg/s)"
    )
    parser.add_argument("--quiet", action="store_true", help="return figures, print nothing")
    return parser


async def _start_fake() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.fake_bot_api",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--enforce-limits",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), _READY_TIMEOUT_S)).decode().strip()
    if not line.startswith("READY "):
        proc.terminate()
        raise RuntimeError(f"fake Bot API did not start: {line!r}")
    return proc, line.removeprefix("READY ")


async def _timed_send(bot: ExtBot[SendClass | None], chat_id: int, out: list[float]) -> None:
    started = time.perf_counter()
    await bot.send_message(chat_id, "reply", rate_limit_args=INTERACTIVE)
    out.append(time.perf_counter() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One fan-out with interactive sends mixed in; return the figures."""
    proc, base_url = await _start_fake()
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            # The users written to started the bot (Telegram refuses a bot writing first).
            users = [_FAN_OUT_CHAT_BASE + n for n in range(args.chats)]
            users += [_REPLY_CHAT_BASE + n for n in range(2 * args.replies)]
            (await http.post("/_control/started", json={"user_ids": users})).raise_for_status()
        limiter = TelegramRateLimiter(overall_rate=args.rate)
        bot: ExtBot[SendClass | None] = ExtBot(
            TOKEN,
            base_url=f"{base_url}/bot",
            rate_limiter=limiter,
            request=HTTPXRequest(connection_pool_size=256),
        )
        await bot.initialize()
        idle: list[float] = []  # the same reply with nothing queued: HTTP round trip + PTB
        for n in range(args.replies):
            await _timed_send(bot, _REPLY_CHAT_BASE + args.replies + n, idle)
            await asyncio.sleep(1 / args.rate)
        latencies: list[float] = []
        ideal_s = (args.chats + args.replies) / args.rate
        started = time.perf_counter()
        fan_out = [
            asyncio.create_task(
                bot.send_message(_FAN_OUT_CHAT_BASE + n, f"item for {n}", rate_limit_args=BULK)
            )
            for n in range(args.chats)
        ]
        replies = []
        for n in range(args.replies):
            await asyncio.sleep(ideal_s / (args.replies + 1))
            replies.append(asyncio.create_task(_timed_send(bot, _REPLY_CHAT_BASE + n, latencies)))
        results = await asyncio.gather(*fan_out, *replies, return_exceptions=True)
        wall_s = time.perf_counter() - started
        await bot.shutdown()
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            hits = (await http.get("/_control/limits")).json()["result"]["hits"]
            sent = len((await http.get("/_control/sent")).json()["result"])
    finally:
        proc.terminate()
        await proc.wait()
    failures = [r for r in results if isinstance(r, BaseException)]
    return {
        "chats": args.chats,
        "replies": args.replies,
        "rate": args.rate,
        "wall_s": wall_s,
        "ideal_s": ideal_s,
        "ratio": wall_s / ideal_s,
        "limit_hits": sum(hits.values()),
        "limit_hits_by_scope": hits,
        "delivered": sent - args.replies,  # the idle baseline's sends excluded
        "failures": len(failures),
        "reply_latency": latency_summary(latencies),
        "idle_reply_latency": latency_summary(idle),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print and return its figures."""
    args = build_parser().parse_args(argv)
    result = asyncio.run(run(args))
    result["target_ratio_met"] = result["ratio"] <= TARGET_RATIO
    result["target_no_429_met"] = result["limit_hits"] == 0
    if not args.quiet:
        print_table(
            f"fan-out: {result['chats']} chats + {result['replies']} interactive replies "
            f"at {result['rate']:g} msg/s (fake Bot API enforcing Telegram's flood limits)",
            [
                ("wall time", f"{result['wall_s']:.2f} s"),
                ("ideal (N+replies)/rate", f"{result['ideal_s']:.2f} s"),
                (
                    "ratio",
                    f"{result['ratio']:.3f} (target ≤ {TARGET_RATIO}: "
                    f"{verdict(result['target_ratio_met'])})",
                ),
                (
                    "429s from the fake",
                    f"{result['limit_hits']} {result['limit_hits_by_scope']} "
                    f"({verdict(result['target_no_429_met'])})",
                ),
                (
                    "delivered (fan-out + replies)",
                    f"{result['delivered']} (failures {result['failures']})",
                ),
                ("reply latency during fan-out", fmt_ms(result["reply_latency"])),
                ("reply latency when idle", fmt_ms(result["idle_reply_latency"])),
            ],
        )
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
