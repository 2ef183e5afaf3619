"""``python -m bot.healthcheck`` as Docker runs it: a real subprocess against local servers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.healthcheck import CheckFailed, check, health_url
from bot.services.health import HealthServer, HealthState
from bot.services.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]


async def run_healthcheck(**env: str) -> tuple[int, str]:
    """Run the CLI with only HEALTH_* set (no token); return exit code and stdout."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEALTH_", "TELEGRAM_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.healthcheck",
        cwd=REPO,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Generous outer bound only so a hung CLI fails the test instead of hanging it.
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    assert err == b"", err.decode()
    return proc.returncode, out.decode()


class Answer:
    """A local server whose /healthz answer the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b'{"status": "ok", "reasons": []}'
        self.content_type = "application/json"
        self.release = asyncio.Event()
        self.hang = False
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.hang:
            await self.release.wait()
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def answer() -> AsyncIterator[Answer]:
    server = Answer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_exit_0_on_200_ok(answer: Answer) -> None:
    code, out = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(answer.port))
    assert code == 0
    assert out.startswith("ok")
    assert out.count("\n") == 1


async def test_exit_1_on_503_with_the_reason(answer: Answer) -> None:
    answer.status = 503
    answer.body = b'{"status": "unhealthy", "reasons": ["no successful Bot API call for 130s"]}'
    code, out = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(answer.port))
    assert code == 1
    assert out.startswith("unhealthy:")
    assert "503" in out
    assert "no successful Bot API call for 130s" in out
    assert out.count("\n") == 1


async def test_exit_1_on_200_whose_body_is_not_ok(answer: Answer) -> None:
    answer.body = b'{"status": "degraded", "reasons": []}'
    code, out = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(answer.port))
    assert code == 1
    assert "degraded" in out


async def test_exit_1_on_200_with_a_non_json_body(answer: Answer) -> None:
    answer.body = b"<html>ok</html>"
    answer.content_type = "text/html"
    code, out = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(answer.port))
    assert code == 1
    assert "non-JSON" in out


async def test_exit_1_when_nothing_listens() -> None:
    port = free_port()
    code, out = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(port))
    assert code == 1
    assert out.startswith("unhealthy: cannot reach")
    assert f":{port}/healthz" in out


async def test_wildcard_host_is_reached_on_loopback(answer: Answer) -> None:
    code, out = await run_healthcheck(HEALTH_HOST="0.0.0.0", HEALTH_PORT=str(answer.port))
    assert code == 0, out


async def test_disabled_or_bad_port_exits_1_with_a_message() -> None:
    code, out = await run_healthcheck(HEALTH_PORT="0")
    assert code == 1
    assert "disabled" in out
    code, out = await run_healthcheck(HEALTH_PORT="eighty")
    assert code == 1
    assert "HEALTH_PORT" in out


async def test_against_the_real_health_server_follows_its_state() -> None:
    clock_now = [0.0]
    state = HealthState(max_api_silence_s=30, clock=lambda: clock_now[0])
    server = HealthServer("127.0.0.1", 0, state, Metrics(process_metrics=False))
    await server.start()
    try:
        state.record_api_success()
        healthy = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(server.port))
        clock_now[0] = 31.0
        unhealthy = await run_healthcheck(HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(server.port))
    finally:
        await server.stop()
    assert healthy[0] == 0, healthy[1]
    assert unhealthy[0] == 1
    assert "no successful Bot API call" in unhealthy[1]


async def test_a_server_that_never_answers_fails_at_the_deadline(answer: Answer) -> None:
    """In-process with a short deadline; the CLI uses the same function with 5 s."""
    answer.hang = True
    with pytest.raises(CheckFailed, match=r"no answer .* within 0\.3s"):
        await check(f"http://127.0.0.1:{answer.port}/healthz", timeout_s=0.3)


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8080/healthz"),
        ({"HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "9000"}, "http://127.0.0.1:9000/healthz"),
        ({"HEALTH_HOST": "::", "HEALTH_PORT": "9000"}, "http://[::1]:9000/healthz"),
        ({"HEALTH_HOST": "::1", "HEALTH_PORT": "81"}, "http://[::1]:81/healthz"),
        ({"HEALTH_HOST": "10.1.2.3", "HEALTH_PORT": " 81 "}, "http://10.1.2.3:81/healthz"),
    ],
)
def test_health_url(env: dict[str, str], url: str) -> None:
    assert health_url(env) == url


@pytest.mark.parametrize("port", ["0", "-1", "70000", "x"])
def test_health_url_rejects_bad_ports(port: str) -> None:
    with pytest.raises(CheckFailed):
        health_url({"HEALTH_PORT": port})
