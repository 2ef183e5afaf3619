"""Smoke tests for benchmarks/: each benchmark's ``main`` runs at tiny sizes and its figures add up.

Timings are never asserted (they depend on the machine); what is asserted is that every
request was answered, the counts match, storage really wrote and the persisted counters
agree with what was sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from telegram import Bot, ReplyParameters

from benchmarks import (
    bench_fanout,
    bench_fetch,
    bench_news,
    bench_parse,
    bench_poll,
    bench_storage,
    load,
)
from benchmarks._common import median_by, percentiles, pinned_to_one_core, process_cpu_s
from benchmarks._telegram import BOT_USER, TOKEN, InMemoryRequest


def test_percentiles_interpolate_like_statistics_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]
    pct = percentiles(values, (50, 90, 99))
    assert pct[50] == pytest.approx(50.5)
    assert pct[90] == pytest.approx(90.1)
    assert pct[99] == pytest.approx(99.01)
    assert percentiles([7.0], (50, 99)) == {50: 7.0, 99: 7.0}
    assert all(v != v for v in percentiles([], (50,)).values())  # NaN for no data


def test_median_by_picks_the_middle_round_and_refuses_none() -> None:
    rounds = [{"n": 1, "x": 30.0}, {"n": 2, "x": 10.0}, {"n": 3, "x": 20.0}]
    assert median_by(rounds, "x")["n"] == 3
    with pytest.raises(ValueError, match="no rounds"):
        median_by([], "x")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux-only affinity API")
def test_pinning_is_undone_afterwards() -> None:
    before = os.sched_getaffinity(0)
    with pinned_to_one_core(True) as what:
        assert len(os.sched_getaffinity(0)) == 1
        assert "pinned" in what
    assert os.sched_getaffinity(0) == before
    with pinned_to_one_core(False) as what:
        assert os.sched_getaffinity(0) == before
        assert "not pinned" in what


def test_bench_news_answers_every_update_and_counts_durably(tmp_path: Path) -> None:
    result = bench_news.main(
        [
            "--updates", "20", "--chats", "5", "--feeds", "10", "--items", "5",
            "--stored-chats", "50", "--rounds", "1", "--rate", "400", "--no-pin", "--quiet",
            "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    (only,) = result["rounds"]
    assert only["cached_items"] == 10 * 5
    assert only["stored_chats"] == 50
    for phase in (only["burst"], only["paced"]):
        assert phase["updates"] == 20
        assert phase["answered"] == 20
        assert phase["news_replies"] == 20  # served from memory: no feed errors
        assert phase["latency"]["count"] == 20
        assert phase["throughput"] > 0
    assert only["durable_news_requests"] == 40
    assert only["durable_ok"] is True
    assert result["median"] is only
    assert list(tmp_path.iterdir()) == []  # the run's temp dir is removed


async def test_in_memory_request_answers_like_telegram() -> None:
    request = InMemoryRequest()
    bot = Bot(TOKEN, request=request, get_updates_request=InMemoryRequest())
    done = request.expect(1)
    async with bot:  # initialize() calls getMe through the transport
        assert bot.username == BOT_USER["username"]
        await bot.send_message(7, "a delivery, quoting nothing")
        message = await bot.send_message(-5, "hi", reply_parameters=ReplyParameters(9))
    assert message.chat.id == -5
    assert message.text == "hi"
    assert done.is_set()
    assert request.texts == {(-5, 9): "hi"}
    assert set(request.sent_at) == {(-5, 9)}
    assert request.calls["getme"] == 1
    assert request.calls["sendmessage"] == 2
    assert request.unquoted == 1


def test_bench_poll_logs_every_feed_then_the_changed_half_with_both_parsers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = bench_poll.main(
        [
            "--feeds", "12", "--items", "5", "--parsers", "0,1", "--news-rate", "50",
            "--no-pin", "--data-root", str(tmp_path), "--profile",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("CPU split        first loop ") == 2  # one per parser configuration
    assert printed.count("CPU per feed     measured cycle ") == 2
    configs = result["configs"]
    assert [c["processes"] for c in configs] == [0, 1]
    for config in configs:
        assert config["first"]["refreshed"] == 12
        assert config["first"]["failed"] == 0
        assert config["measured"]["refreshed"] == 12  # 6 × 200 + parse, 6 × 304
        assert config["measured"]["new_items"] == 6  # one new item in each bumped feed
        assert config["measured"]["failed"] == 0
        assert config["measured"]["storage_writes"] > 0  # the new items are logged durably
        assert config["measured"]["cpu_s"] > 0
        split = [config["first"][k] for k in ("loop_user_s", "threads_user_s", "system_s")]
        assert all(part >= 0 for part in split) and sum(split) <= config["first"]["cpu_s"] + 0.1
        news = config["news"]
        assert news["offered"] > 0
        assert news["answered"] == news["offered"] == news["news_replies"]
        calls = re.search(r"(\d+) function calls", config["profile"])
        assert calls is not None and int(calls.group(1)) > 0  # the measured cycle was profiled
    assert configs[0]["first"]["workers"] == 0  # threads
    assert configs[1]["first"]["workers"] == 1  # the pool's process is counted
    assert list(tmp_path.iterdir()) == []


def test_bench_poll_rejects_bad_parser_counts() -> None:
    for bad in ("gpu", "-1", ""):
        with pytest.raises(SystemExit) as exc:
            bench_poll.main(["--parsers", bad, "--quiet"])
        assert exc.value.code == 2


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_bench_fetch_times_every_variant_on_every_feed(close: bool) -> None:
    argv = ["--feeds", "40", "--items", "3", "--rounds", "2", "--no-pin", "--quiet"]
    result = bench_fetch.main([*argv, "--connection-close"] if close else argv)
    variants = result["variants"]
    assert set(variants) == set(bench_fetch.VARIANTS)
    for figures in variants.values():
        assert set(figures) == set(bench_fetch.PASSES)
        for one_pass in figures.values():
            assert len(one_pass["runs_ms"]) == 2  # one per round
            assert one_pass["median_ms"] > 0
    # Per variant and round: the warm-up, then every feed once per pass (200, then 304).
    per_round = bench_fetch.WARM_UP + 2 * 40
    assert result["requests"] == len(bench_fetch.VARIANTS) * 2 * per_round


def test_bench_storage_measures_both_sizes_and_a_fresh_load(tmp_path: Path) -> None:
    result = bench_storage.main(
        [
            "--chats", "60", "--feeds", "12", "--small-chats", "6", "--small-feeds", "4",
            "--ops", "5", "--log-items", "3", "--quiet", "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    small, big = result["small"], result["big"]
    assert (small["chats"], small["subscriptions"]) == (6, 12)
    assert (big["chats"], big["subscriptions"], big["feeds"]) == (60, 120, 12)
    for run in (small, big):
        by_kind = run["ops"]["by_kind"]
        assert by_kind["update_chat"]["count"] == 5
        assert by_kind["advance"]["count"] == 5
        assert by_kind["subscribe"]["count"] == by_kind["unsubscribe"]["count"] >= 1
        assert run["ops"]["group_commit"]["fsyncs"] >= 1
    load = big["load"]  # what a fresh process found on disk
    assert (load["chats"], load["subscriptions"], load["feeds"]) == (60, 120, 12)
    assert load["log_items"] == 12 * 3
    assert load["rss_peak_mb"] > 0
    assert result["p50_ratio"] > 0
    assert list(tmp_path.iterdir()) == []


def test_bench_storage_needs_more_feeds_than_subscriptions() -> None:
    with pytest.raises(SystemExit) as exc:
        bench_storage.main(["--feeds", "2", "--subs-per-chat", "2", "--quiet"])
    assert exc.value.code == 2


def test_bench_fanout_delivers_once_to_every_chat_with_and_without_limits_and_filters(
    tmp_path: Path,
) -> None:
    result = bench_fanout.main(
        [
            "--chats", "40", "--items", "3", "--probe-rate", "20", "--settle", "0.3",
            "--no-pin", "--quiet", "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    limited, unlimited, filtered = result["runs"]
    assert [r["mode"] for r in result["runs"]] == ["limited", "unlimited", "filtered"]
    for run in (limited, unlimited, filtered):
        assert run["idle"] is True
        assert run["new_items"] == 1
        assert run["baseline_sends"] == 0  # the first fetch is history: nothing pushed
        wanted = 30 if run is filtered else 40  # a quarter of the filters drop the item
        assert run["wanted_chats"] == run["delivered_chats"] == run["messages"] == wanted
        assert run["duplicates"] == 0
        assert run["probe_replies"] == run["probes"] > 0
        assert run["idle_news_latency"]["count"] == bench_fanout.IDLE_PROBES
    assert limited["limit_hits"] == 0  # the bot's pacing kept under the fake's limits
    assert list(tmp_path.iterdir()) == []


def test_bench_fanout_rejects_an_unknown_mode() -> None:
    with pytest.raises(SystemExit) as exc:
        bench_fanout.main(["--mode", "turbo", "--quiet"])
    assert exc.value.code == 2


def test_process_cpu_counts_this_process_and_not_a_missing_one() -> None:
    assert process_cpu_s(os.getpid()) > 0
    assert process_cpu_s(2**22 + 12345) == 0.0  # above pid_max: no such process


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (bench_news.main, ["--updates", "0"]),
        (bench_poll.main, ["--feeds", "-3"]),
        (bench_fetch.main, ["--rounds", "0"]),
        (bench_storage.main, ["--chats", "0"]),
        (bench_fanout.main, ["--chats", "0"]),
        (load.main, ["--rate", "0"]),
        (load.main, ["--duration", "inf"]),
    ],
)
def test_sizes_and_rates_must_be_positive(
    main: Callable[[list[str]], object], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--quiet"])
    assert exc.value.code == 2


def test_load_tally_classifies_replies_and_drops() -> None:
    state = load.LoadState(
        enqueued={(-1, 1): 10.0, (-1, 2): 10.0, (-1, 3): 10.0, (-1, 4): 10.0},
        first_enqueue=10.0,
        last_enqueue=10.5,
    )

    def call(message_id: int, text: str, status: int = 200) -> dict[str, object]:
        params = {"chat_id": -1, "text": text, "reply_parameters": {"message_id": message_id}}
        return {"params": params, "time": 10.25, "status": status}

    figures = load._tally(
        state,
        [
            call(1, "<b>📰 Latest 5</b>"),
            call(2, "⏳ You can ask again in 50 s."),
            call(3, "boom", status=400),
            {"params": {"chat_id": -1, "text": "no quote"}, "time": 11.0, "status": 200},
        ],
    )
    assert figures["news_replies"] == 1
    assert figures["notices"] == 1
    assert figures["api_errors"] == 1
    assert figures["dropped"] == 1  # message 4 got nothing
    assert figures["rate_limited"] == 2
    assert figures["replies"] == 2
    assert figures["latency"]["p50_ms"] == pytest.approx(250.0)


@pytest.mark.slow
def test_load_against_a_real_bot_process(tmp_path: Path) -> None:
    figures = load.main(
        [
            "--users", "3", "--requests-per-user", "7", "--rate", "60", "--rate-limit", "5/60",
            "--feeds", "2", "--items", "5", "--settle", "1", "--quiet",
            "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    assert figures["commands_sent"] == 21
    assert figures["post_errors"] == 0
    assert figures["news_replies"] == 3 * 5  # the budget: 5 per user per minute
    assert figures["notices"] == 3  # one notice per user...
    assert figures["dropped"] == 3 * 1  # ...and the 7th command is dropped silently
    assert figures["errors"] == 0
    assert figures["bot_exit_code"] == 0
    assert figures["counters"]["news_requests"] == 15 + 1  # + the warm-up /news
    assert figures["counters"]["news_rate_limited"] == 6
    assert figures["counters_consistent"] is True


def test_bench_fanout_compares_post_formats_on_the_same_item(tmp_path: Path) -> None:
    result = bench_fanout.main(
        [
            "--chats", "20", "--items", "3", "--mode", "unlimited", "--format", "title,summary",
            "--probe-rate", "20", "--settle", "0.3", "--no-pin", "--quiet",
            "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    title, summary = result["runs"]
    assert (title["format"], summary["format"]) == ("title", "summary")
    for run in (title, summary):
        assert (run["delivered_chats"], run["messages"], run["duplicates"]) == (20, 20, 0)
        assert run["formatting_us"] > 0
    # The summary post carries the item's text: several times the title post's HTML.
    assert summary["message_chars"] > 3 * title["message_chars"]


def test_bench_parse_converts_every_item_of_every_reader() -> None:
    result = bench_parse.main(["--items", "3", "--rounds", "2", "--no-pin", "--quiet"])
    assert set(result["readers"]) == {"rss", "rss-feedparser", "json"}
    for figures in result["readers"].values():
        assert (figures["summaries"], figures["images"]) == (3, 3)
        assert 0 < figures["summary_chars"] <= 1000
        assert figures["document_bytes"] > 3 * 1500
