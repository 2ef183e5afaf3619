"""Smoke tests for benchmarks/: each benchmark's ``main`` runs at tiny sizes and its figures add up.

Timings are never asserted (they depend on the machine); what is asserted is that every
request was answered, the counts match, storage really wrote and the persisted counters
agree with what was sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from telegram import Bot, ReplyParameters

from benchmarks import bench_news, bench_poll, load
from benchmarks._common import median_by, percentiles, pinned_to_one_core


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
            "--rounds", "1", "--rate", "400", "--no-pin", "--quiet",
            "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    (only,) = result["rounds"]
    assert only["cached_items"] == 10 * 5
    for phase in (only["burst"], only["paced"]):
        assert phase["updates"] == 20
        assert phase["answered"] == 20
        assert phase["news_replies"] == 20  # served from the cache: no feed errors
        assert phase["latency"]["count"] == 20
        assert phase["throughput"] > 0
    assert only["burst"]["storage_writes"] + only["paced"]["storage_writes"] > 0
    assert only["durable_news_requests"] == 40
    assert only["durable_ok"] is True
    assert result["median"] is only
    assert list(tmp_path.iterdir()) == []  # the run's temp dir is removed


async def test_in_memory_request_answers_like_telegram() -> None:
    request = bench_news.InMemoryRequest()
    bot = Bot(bench_news.TOKEN, request=request, get_updates_request=bench_news.InMemoryRequest())
    done = request.expect(1)
    async with bot:  # initialize() calls getMe through the transport
        assert bot.username == bench_news.BOT_USER["username"]
        message = await bot.send_message(-5, "hi", reply_parameters=ReplyParameters(9))
    assert message.chat.id == -5
    assert message.text == "hi"
    assert done.is_set()
    assert request.texts == {(-5, 9): "hi"}
    assert set(request.sent_at) == {(-5, 9)}
    assert request.calls["getme"] == 1
    assert request.calls["sendmessage"] == 1


def test_bench_poll_sees_half_unchanged_and_half_changed_with_both_parsers(
    tmp_path: Path,
) -> None:
    result = bench_poll.main(
        [
            "--feeds", "10", "--items", "5", "--cycles", "1", "--parser", "thread,process",
            "--concurrency", "4", "--workers", "1", "--quiet", "--data-root", str(tmp_path),
        ]
    )  # fmt: skip
    configs = result["configs"]
    assert [(c["parser"], c["concurrency"]) for c in configs] == [("thread", 4), ("process", 4)]
    for config in configs:
        assert config["warmup"]["refreshed"] == 10
        assert config["refreshed"] == 5  # the bumped half: new ETag, new body, parsed
        assert config["not_modified"] == 5  # the other half: conditional GET → 304
        assert config["failed"] == 0
        assert config["writes_per_cycle"] > 0
        assert config["lag"]["count"] > 0


def test_bench_poll_rejects_an_unknown_parser() -> None:
    with pytest.raises(SystemExit) as exc:
        bench_poll.main(["--parser", "gpu", "--quiet"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (bench_news.main, ["--updates", "0"]),
        (bench_poll.main, ["--feeds", "-3"]),
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
