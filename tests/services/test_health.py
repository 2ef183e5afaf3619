"""HealthState transitions, the /healthz + /metrics server, and InstrumentedRequest's feed.

The server and the request backend are exercised over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from telegram.error import (
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics
from bot.services.telegram_request import InstrumentedRequest, error_kind_for_status

# str(RetryAfter) reads retry_after, which PTB 22 warns will change type; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijkl"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- HealthState -----------------------------------------------------------------------------


def test_fresh_state_is_healthy_until_the_silence_limit_counted_from_start() -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=120, clock=clock)
    healthy, body = state.snapshot()
    assert healthy
    assert body["status"] == "ok"
    assert body["reasons"] == []
    assert body["api_ever_succeeded"] is False
    clock.advance(120)
    assert state.snapshot()[0], "exactly at the limit is still healthy"
    clock.advance(0.5)
    healthy, body = state.snapshot()
    assert not healthy
    assert body["status"] == "unhealthy"
    assert body["seconds_since_api_success"] == 120.5
    assert len(body["reasons"]) == 1
    assert "no successful Bot API call" in body["reasons"][0]


def test_success_resets_the_silence_and_silence_after_it_turns_unhealthy() -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=10, clock=clock)
    clock.advance(30)
    assert not state.snapshot()[0]
    state.record_api_success()
    healthy, body = state.snapshot()
    assert healthy
    assert body["seconds_since_api_success"] == 0
    assert body["api_ever_succeeded"] is True
    assert body["uptime_s"] == 30
    clock.advance(9)
    assert state.snapshot()[0]
    clock.advance(2)
    healthy, body = state.snapshot()
    assert not healthy
    assert body["seconds_since_api_success"] == 11


def test_errors_are_reported_but_do_not_count_as_contact() -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=10, clock=clock)
    state.record_api_success()
    clock.advance(8)
    state.record_api_error("timeout")
    clock.advance(3)
    healthy, body = state.snapshot()
    assert not healthy
    assert body["last_api_error"] == {"kind": "timeout", "seconds_ago": 3}


def test_a_recorded_stall_is_unhealthy_for_the_lag_window_then_clears() -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=100, stall_threshold_s=5, clock=clock, lag_window_s=60)
    state.record_api_success()
    state.record_loop_lag(0.01)
    assert state.snapshot()[0]
    state.record_loop_lag(7.5)
    state.record_api_success()
    healthy, body = state.snapshot()
    assert not healthy
    assert body["loop_lag_max_s"] == 7.5
    assert any("event loop stalled" in r for r in body["reasons"])
    clock.advance(30)
    state.record_api_success()
    state.record_loop_lag(0.02)
    healthy, body = state.snapshot()
    assert not healthy, "a stall within the window still counts"
    assert body["loop_lag_s"] == 0.02
    clock.advance(31)
    state.record_api_success()
    healthy, body = state.snapshot()
    assert healthy
    assert body["loop_lag_max_s"] == 0.02


def test_both_reasons_are_listed_together() -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=5, stall_threshold_s=1, clock=clock)
    state.record_loop_lag(2)
    clock.advance(6)
    healthy, body = state.snapshot()
    assert not healthy
    assert len(body["reasons"]) == 2


def test_lag_memory_is_bounded() -> None:
    state = HealthState(max_api_silence_s=5, clock=FakeClock())
    for _ in range(10_000):
        state.record_loop_lag(0.0)
    assert len(state._lags) <= 4096


async def test_loop_monitor_measures_a_real_blocking_stall() -> None:
    state = HealthState(max_api_silence_s=1000, stall_threshold_s=0.05)
    state.record_api_success()
    monitor = asyncio.create_task(state.run_loop_monitor(interval=0.01))
    try:
        await asyncio.sleep(0.05)
        _, before = state.snapshot()
        assert before["loop_lag_s"] is not None, "the monitor has ticked"
        time.sleep(0.2)  # blocks the event loop, like CPU-bound work on it would
        await asyncio.sleep(0.05)
        healthy, body = state.snapshot()
    finally:
        monitor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await monitor
    assert not healthy
    assert body["loop_lag_max_s"] > 0.05
    assert any("event loop stalled" in r for r in body["reasons"])


async def test_loop_monitor_without_stall_stays_healthy() -> None:
    state = HealthState(max_api_silence_s=1000, stall_threshold_s=1.0)
    state.record_api_success()
    monitor = asyncio.create_task(state.run_loop_monitor(interval=0.01))
    try:
        await asyncio.sleep(0.1)
        healthy, body = state.snapshot()
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    assert healthy, body
    assert body["loop_lag_s"] is not None


# --- HealthServer over real HTTP -------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[HealthServer, HealthState, FakeClock, Metrics]]:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=60, clock=clock)
    metrics = Metrics(process_metrics=False)
    server = HealthServer("127.0.0.1", 0, state, metrics)
    await server.start()
    try:
        yield server, state, clock, metrics
    finally:
        await server.stop()


async def test_healthz_answers_200_with_the_snapshot_then_503_when_silent(
    served: tuple[HealthServer, HealthState, FakeClock, Metrics],
) -> None:
    server, state, clock, _ = served
    url = f"http://127.0.0.1:{server.port}/healthz"
    state.record_api_success()
    async with httpx.AsyncClient(trust_env=False) as client:
        ok = await client.get(url)
        clock.advance(61)
        bad = await client.get(url)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/json")
    assert ok.headers["cache-control"] == "no-store"
    assert ok.json()["status"] == "ok"
    assert bad.status_code == 503
    body = bad.json()
    assert body["status"] == "unhealthy"
    assert body["seconds_since_api_success"] == 61
    assert "no successful Bot API call" in body["reasons"][0]


async def test_metrics_endpoint_serves_prometheus_text_with_health_gauges(
    served: tuple[HealthServer, HealthState, FakeClock, Metrics],
) -> None:
    server, state, clock, metrics = served
    url = f"http://127.0.0.1:{server.port}/metrics"
    metrics.news_requests.inc()
    state.record_api_success()
    clock.advance(7)
    async with httpx.AsyncClient(trust_env=False) as client:
        healthy = await client.get(url)
        clock.advance(60)
        unhealthy = await client.get(url)
    assert healthy.status_code == 200
    assert healthy.headers["content-type"] == metrics.render()[1]
    assert "newsbot_news_requests_total 1.0" in healthy.text
    assert "newsbot_api_silence_seconds 7.0" in healthy.text
    assert "newsbot_healthy 1.0" in healthy.text
    assert unhealthy.status_code == 200, "/metrics is served whatever the health"
    assert "newsbot_healthy 0.0" in unhealthy.text


async def test_other_paths_and_methods_are_refused(
    served: tuple[HealthServer, HealthState, FakeClock, Metrics],
) -> None:
    server = served[0]
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"{base}/")).status_code == 404
        assert (await client.get(f"{base}/admin")).status_code == 404
        assert (await client.post(f"{base}/healthz", content=b"x")).status_code == 405


async def test_server_port_lifecycle_and_stop_is_idempotent() -> None:
    server = HealthServer("127.0.0.1", 0, HealthState(max_api_silence_s=5), Metrics())
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    port = server.port
    assert port > 0
    await server.stop()
    await server.stop()
    with pytest.raises(RuntimeError):
        _ = server.port
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def test_start_on_a_taken_port_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer("127.0.0.1", port, HealthState(max_api_silence_s=5), Metrics())
        with pytest.raises(OSError):
            await server.start()
        with pytest.raises(RuntimeError):
            _ = server.port


# --- InstrumentedRequest against a tiny local Bot API ------------------------------------------


def _error(code: int, description: str, **extra: object) -> web.Response:
    payload = {"ok": False, "error_code": code, "description": description, **extra}
    return web.json_response(payload, status=code)


class TinyBotAPI:
    """Answers /bot<token>/<method> by method name; 'drop' closes the connection unanswered."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method == "ok":
            return web.json_response({"ok": True, "result": True})
        if method == "limited":
            return _error(429, "Too Many Requests: retry after 3", parameters={"retry_after": 3})
        if method == "forbidden":
            return _error(403, "Forbidden: bot was blocked by the user")
        if method == "unauthorized":
            return _error(401, "Unauthorized")
        if method == "servererror":
            return _error(500, "Internal Server Error")
        if method == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if method == "hang":
            await self.release.wait()
            return web.json_response({"ok": True, "result": True})
        return _error(404, "Not Found")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, method: str) -> str:
        return f"{self.base}/bot{TOKEN}/{method}"


@pytest.fixture
async def tiny_api() -> AsyncIterator[TinyBotAPI]:
    api = TinyBotAPI()
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


async def _outcome(request: HTTPXRequest, url: str) -> object:
    """The result of a PTB post, or the exception it raised."""
    try:
        return await request.post(url, read_timeout=0.3)
    except TelegramError as exc:
        return exc


Expect = tuple[str, type[TelegramError] | None, str | None, bool]

CASES: list[Expect] = [
    # method, exception PTB raises, metric kind, counts as API contact
    ("ok", None, None, True),
    ("limited", RetryAfter, "rate_limited", True),
    ("forbidden", Forbidden, "forbidden", True),
    ("unauthorized", InvalidToken, "other", False),  # revoked token: reachable but useless
    ("servererror", NetworkError, "server_error", False),
    ("drop", NetworkError, "network", False),
    ("hang", TimedOut, "timeout", False),
]


@pytest.mark.parametrize(("method", "exc_type", "kind", "contact"), CASES)
async def test_instrumented_request_records_outcome_and_raises_like_plain_ptb(
    tiny_api: TinyBotAPI,
    method: str,
    exc_type: type[TelegramError] | None,
    kind: str | None,
    contact: bool,
) -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=60, clock=clock)
    metrics = Metrics(process_metrics=False)
    plain = HTTPXRequest()
    instrumented = InstrumentedRequest(state, metrics)
    await plain.initialize()
    await instrumented.initialize()
    try:
        expected = await _outcome(plain, tiny_api.url(method))
        got = await _outcome(instrumented, tiny_api.url(method))
    finally:
        await plain.shutdown()
        await instrumented.shutdown()

    # Unchanged behaviour: same result, or same exception type with the same message.
    if exc_type is None:
        assert got == expected is True
    else:
        assert type(expected) is exc_type
        assert type(got) is type(expected)
        assert str(got) == str(expected)

    errors = {
        k: metrics.registry.get_sample_value("newsbot_telegram_api_errors_total", {"kind": k})
        for k in ("rate_limited", "forbidden", "server_error", "network", "timeout", "other")
    }
    assert errors == {k: (1.0 if k == kind else 0.0) for k in errors}
    _, body = state.snapshot()
    assert body["api_ever_succeeded"] is contact
    assert body["last_api_error"] == (None if kind is None else {"kind": kind, "seconds_ago": 0})


async def test_instrumented_request_keeps_api_healthy_through_a_run_of_429s(
    tiny_api: TinyBotAPI,
) -> None:
    clock = FakeClock()
    state = HealthState(max_api_silence_s=10, clock=clock)
    metrics = Metrics(process_metrics=False)
    request = InstrumentedRequest(state, metrics)
    await request.initialize()
    try:
        for _ in range(3):
            clock.advance(8)
            with pytest.raises(RetryAfter):
                await request.post(tiny_api.url("limited"))
        assert state.snapshot()[0], "429 still proves the API is reachable"
        clock.advance(8)
        with pytest.raises(NetworkError):
            await request.post(tiny_api.url("servererror"))
        clock.advance(3)
        assert not state.snapshot()[0], "5xx answers are not contact"
    finally:
        await request.shutdown()
    assert (
        metrics.registry.get_sample_value(
            "newsbot_telegram_api_errors_total", {"kind": "rate_limited"}
        )
        == 3.0
    )


async def test_concurrent_requests_are_all_counted(tiny_api: TinyBotAPI) -> None:
    state = HealthState(max_api_silence_s=10)
    metrics = Metrics(process_metrics=False)
    request = InstrumentedRequest(state, metrics, connection_pool_size=8)
    await request.initialize()
    try:
        results = await asyncio.gather(
            *(request.post(tiny_api.url("forbidden")) for _ in range(10)),
            *(request.post(tiny_api.url("ok")) for _ in range(10)),
            return_exceptions=True,
        )
    finally:
        await request.shutdown()
    assert sum(isinstance(r, Forbidden) for r in results) == 10
    assert sum(r is True for r in results) == 10
    value = metrics.registry.get_sample_value(
        "newsbot_telegram_api_errors_total", {"kind": "forbidden"}
    )
    assert value == 10.0


async def _post_via(transport: httpx.MockTransport, request: HTTPXRequest, url: str) -> str:
    """Swap the request's client for one on ``transport``; return the raised error's text."""
    await request.initialize()
    await request._client.aclose()
    request._client = httpx.AsyncClient(transport=transport)
    try:
        with pytest.raises(NetworkError) as info:
            await request.post(url)
    finally:
        await request.shutdown()
    return str(info.value)


async def test_token_in_an_underlying_error_message_is_redacted() -> None:
    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"could not connect to {request.url}", request=request)

    url = f"http://127.0.0.1:9/bot{TOKEN}/getMe"
    plain_text = await _post_via(httpx.MockTransport(leaky), HTTPXRequest(), url)
    assert TOKEN in plain_text, "the scenario really leaks without the wrapper"

    state = HealthState(max_api_silence_s=10)
    metrics = Metrics(process_metrics=False)
    instrumented = InstrumentedRequest(state, metrics)
    text = await _post_via(httpx.MockTransport(leaky), instrumented, url)
    assert TOKEN not in text
    assert TOKEN.split(":")[1] not in text
    assert "<redacted>" in text
    assert "ConnectError" in text
    assert state.snapshot()[1]["last_api_error"]["kind"] == "network"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (400, "bad_request"),
        (401, "other"),
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (418, "other"),
    ],
)
def test_error_kind_for_status(status: int, kind: str | None) -> None:
    assert error_kind_for_status(status) == kind
