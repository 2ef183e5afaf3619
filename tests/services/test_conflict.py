"""Telegram's 409 Conflict: another process receives this bot's updates.

HealthState keeps the conflict (unhealthy while it lasts, one ERROR a minute), the
instrumented request feeds it from real HTTP answers, and the running bot reports a conflict
once instead of a traceback per poll retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from telegram.error import Conflict

from bot.config import Settings
from bot.context import services_of
from bot.services.health import CONFLICT_LOG_INTERVAL_S, HealthState
from bot.services.metrics import Metrics
from bot.services.telegram_request import InstrumentedRequest
from tests.helpers.bot_runner import eventually, free_port, running_bot
from tests.helpers.fake_bot_api import FakeBotAPI

TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def conflict_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and getattr(r, "event", None) == "telegram_conflict"
    ]


def test_conflict_is_unhealthy_until_cleared_and_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=120, clock=clock)
    state.record_api_success()
    caplog.set_level(logging.INFO, logger="bot.services.health")

    state.record_conflict("getUpdates", TERMINATED)
    for _ in range(5):  # PTB retries; each retry answers 409 again
        clock.now += 10
        state.record_conflict("getUpdates", TERMINATED)
    healthy, body = state.snapshot()
    assert not healthy
    assert body["conflicts"] == {"getUpdates": {"description": TERMINATED, "seconds": 50.0}}
    assert any("another process" in r and "getUpdates" in r for r in body["reasons"])
    [first] = conflict_errors(caplog)
    message = first.getMessage()
    assert "getUpdates" in message
    assert "another process" in message
    assert "only one bot instance" in message  # Telegram's own words are kept

    clock.now += CONFLICT_LOG_INTERVAL_S - 50  # a minute after the first report
    state.record_conflict("getUpdates", TERMINATED)
    assert len(conflict_errors(caplog)) == 2
    assert "(5 more since the last report)" in conflict_errors(caplog)[1].getMessage()

    state.clear_conflict("getUpdates")
    healthy, body = state.snapshot()
    assert healthy, body
    assert body["conflicts"] == {}
    assert any("is over" in r.getMessage() for r in caplog.records)


def test_clearing_another_source_leaves_the_conflict_in_place() -> None:
    state = HealthState(max_api_silence_s=120, clock=FakeClock())
    state.record_api_success()
    state.record_conflict("webhook", "the webhook now points to elsewhere.example")
    state.clear_conflict("getUpdates")
    healthy, body = state.snapshot()
    assert not healthy
    assert list(body["conflicts"]) == ["webhook"]


async def test_instrumented_request_turns_409_into_a_conflict_and_2xx_ends_it(
    fake_api: FakeBotAPI,
) -> None:
    health = HealthState(max_api_silence_s=120)
    metrics = Metrics(process_metrics=False)
    request = InstrumentedRequest(health, metrics)
    url = f"{fake_api.base_url}/bot{fake_api.token}/getUpdates"
    fake_api.fail_next("getUpdates", 409, times=2, description=TERMINATED)
    await request.initialize()
    try:
        for _ in range(2):
            with pytest.raises(Conflict):
                await request.post(url)
        healthy, body = health.snapshot()
        assert not healthy
        assert body["conflicts"]["getUpdates"]["description"] == TERMINATED
        conflicts = metrics.registry.get_sample_value(
            "newsbot_telegram_api_errors_total", {"kind": "conflict"}
        )
        assert conflicts == 2
        await request.post(url)  # the other instance stopped: getUpdates works again
        healthy, body = health.snapshot()
        assert healthy, body
    finally:
        await request.shutdown()


@pytest.mark.slow
async def test_running_bot_reports_a_conflict_once_and_recovers(
    fake_api: FakeBotAPI,
    bot_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(bot_settings(health_port=free_port())) as app:
        services = services_of(app)
        assert services.health_server is not None
        healthz = f"http://127.0.0.1:{services.health_server.port}/healthz"
        await fake_api.wait_for_call("getUpdates")
        fake_api.fail_next("getUpdates", 409, times=1000, description=TERMINATED)
        # PTB retries after 1 s, then 1.5 s: wait for two refused polls.
        await eventually(
            lambda: _refused(fake_api, 2), timeout=15, what="two getUpdates answered 409"
        )
        async with httpx.AsyncClient(trust_env=False) as client:
            during = await client.get(healthz)
            metrics = (await client.get(healthz.replace("healthz", "metrics"))).text
        fake_api._failures.clear()  # the other instance went away
        await eventually(
            lambda: _healthy(healthz), timeout=20, what="healthz to recover after the conflict"
        )
    assert during.status_code == 503
    assert "another process" in " ".join(during.json()["reasons"])
    assert 'newsbot_telegram_api_errors_total{kind="conflict"} ' in metrics
    assert len(conflict_errors(caplog)) == 1  # two or more 409s, one ERROR line
    # PTB hands every polling error to the error handlers; the conflict stops there.
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]


async def _refused(fake_api: FakeBotAPI, count: int) -> bool:
    return len([c for c in fake_api.calls_to("getUpdates") if c.status == 409]) >= count


async def _healthy(url: str) -> bool:
    async with httpx.AsyncClient(trust_env=False) as client:
        return (await client.get(url)).status_code == 200
