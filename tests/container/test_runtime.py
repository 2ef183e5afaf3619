"""The image running hardened against the in-process fakes: /news, health, volumes, SIGTERM.

Every container runs with ``--read-only --tmpfs /tmp --cap-drop ALL --security-opt
no-new-privileges`` and ``--network host``, so it reaches the fake Bot API and feed server on
127.0.0.1. The health endpoint is bound to 127.0.0.1 here (the image default is 0.0.0.0) so a
test never listens on the host's other interfaces.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import configure_storage, reset_storage_service
from tests.container.conftest import (
    BOT_UID,
    bot_container,
    docker,
    free_port,
    inspect,
    logs,
    unique_name,
    wait_for_health,
)
from tests.helpers.fake_bot_api import DEFAULT_TOKEN, FakeBotAPI
from tests.helpers.feed_server import FeedServer
from tests.helpers.feeds import rss

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

CHAT_ID = 4242
USER_ID = 4242
TITLES = ["Container item alpha", "Container item beta", "Container item gamma"]
# Must exceed the 10 s getUpdates long poll, or an idle bot would look silent.
MAX_SILENCE_S = 15


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI(DEFAULT_TOKEN)
    await api.start()
    try:
        yield api
    finally:
        api.hang(False)
        await api.stop()


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    server.serve(
        "/news.xml",
        rss([{"title": t, "link": f"https://example.com/{i}", "guid": f"item-{i}"}
             for i, t in enumerate(TITLES)]),
    )  # fmt: skip
    try:
        yield server
    finally:
        await server.stop()


def bot_env(fake: FakeBotAPI, feeds: FeedServer, health_port: int) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "ALLOW_PRIVATE_FEEDS": "1",
        "DEFAULT_FEEDS": feeds.url("/news.xml"),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(health_port),
        "HEALTH_MAX_API_SILENCE": str(MAX_SILENCE_S),
    }


def host_dir(path: Path, mode: int = 0o755) -> Path:
    """A bind-mount source owned by the bot's uid, deliberately looser than 0700."""
    path.mkdir(parents=True)
    os.chown(path, BOT_UID, BOT_UID)
    path.chmod(mode)
    return path


async def stat_in(container: str, *paths: str) -> list[str]:
    """``%a %U`` of each path, as the container sees it."""
    result = await docker("exec", container, "stat", "-c", "%a %U", *paths)
    return result.stdout.splitlines()


async def ask_news(fake: FakeBotAPI) -> str:
    """Send /news through the fake API and return the bot's answer text."""
    fake.send_command("/news", chat_id=CHAT_ID, user_id=USER_ID)
    messages = await fake.wait_for_messages(1, chat_id=CHAT_ID, timeout=60)
    return "\n".join(str(m.get("text", "")) for m in messages)


async def test_news_answer_and_healthy(image: str, fake: FakeBotAPI, feeds: FeedServer) -> None:
    async with bot_container(image, bot_env(fake, feeds, free_port())) as name:
        text = await ask_news(fake)
        for title in TITLES:
            assert title in text
        health = await wait_for_health(name, "healthy", timeout=60)
        last = health["Log"][-1]
        assert last["ExitCode"] == 0
        assert last["Output"].startswith("ok")
        output = await logs(name)
    secret = fake.token.split(":", 1)[1]
    assert secret not in output, "the token must never reach the logs"


async def test_unhealthy_when_the_bot_api_stops_answering(
    image: str, fake: FakeBotAPI, feeds: FeedServer
) -> None:
    async with bot_container(image, bot_env(fake, feeds, free_port())) as name:
        await wait_for_health(name, "healthy", timeout=60)
        fake.hang(True)
        # Documented bound: MAX_SILENCE_S until /healthz says 503, then `retries` failed
        # checks `interval` apart (3 x 2 s here); the wait allows generous slack.
        health = await wait_for_health(name, "unhealthy", timeout=MAX_SILENCE_S + 60)
        fake.hang(False)
    outputs = [entry["Output"] for entry in health["Log"][-3:]]
    assert all(out.startswith("unhealthy:") for out in outputs), outputs
    assert any("no successful Bot API call" in out for out in outputs), outputs


async def test_state_dirs_are_0700_botuser_on_a_fresh_named_volume(
    image: str, fake: FakeBotAPI, feeds: FeedServer, named_volumes: list[str]
) -> None:
    data, backups = unique_name("newsbot-data"), unique_name("newsbot-backups")
    named_volumes += [data, backups]
    for volume in (data, backups):
        await docker("volume", "create", volume)
    volumes = [f"{data}:/app/data", f"{backups}:/app/backups"]
    async with bot_container(image, bot_env(fake, feeds, free_port()), volumes=volumes) as name:
        await ask_news(fake)  # the chat is registered, so state files exist
        dirs = await stat_in(name, "/app/data", "/app/backups")
        files = await docker("exec", name, "find", "/app/data", "/app/backups", "-type", "f",
                             "-printf", "%m %u %p\n")  # fmt: skip
    assert dirs == ["700 botuser", "700 botuser"]
    lines = files.stdout.splitlines()
    assert any(line.endswith(".json") for line in lines), lines
    assert all(line.startswith("600 botuser ") for line in lines), lines


async def test_state_dirs_are_tightened_to_0700_on_a_bind_mount(
    image: str, fake: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    data = host_dir(tmp_path / "data")
    backups = host_dir(tmp_path / "backups")
    volumes = [f"{data}:/app/data", f"{backups}:/app/backups"]
    async with bot_container(image, bot_env(fake, feeds, free_port()), volumes=volumes) as name:
        await ask_news(fake)
        dirs = await stat_in(name, "/app/data", "/app/backups")
    assert dirs == ["700 botuser", "700 botuser"]
    assert (data.stat().st_mode & 0o777, data.stat().st_uid) == (0o700, BOT_UID)
    state_files = list(data.glob("*.json"))
    assert state_files
    assert {f.stat().st_mode & 0o777 for f in state_files} == {0o600}


async def test_unwritable_bind_mount_fails_fast_with_a_clear_message(
    image: str, fake: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    data = tmp_path / "root-owned"
    data.mkdir()
    data.chmod(0o755)  # owned by root: the operator forgot `chown 10001:10001`
    backups = host_dir(tmp_path / "backups")
    volumes = [f"{data}:/app/data", f"{backups}:/app/backups"]
    async with bot_container(image, bot_env(fake, feeds, free_port()), volumes=volumes) as name:
        waited = await docker("wait", name, timeout=60)
        output = await logs(name)
    assert int(waited.stdout.strip()) != 0
    assert "/app/data" in output
    assert "Permission denied" in output
    assert "chown 10001:10001" in output
    assert "Traceback" not in output  # one clear line, not a stack dump
    assert fake.token.split(":", 1)[1] not in output


async def test_sigterm_exits_0_and_leaves_valid_state(
    image: str, fake: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    data = host_dir(tmp_path / "data")
    backups = host_dir(tmp_path / "backups")
    volumes = [f"{data}:/app/data", f"{backups}:/app/backups"]
    async with bot_container(image, bot_env(fake, feeds, free_port()), volumes=volumes) as name:
        await ask_news(fake)
        # docker stop sends STOPSIGNAL (SIGTERM) and SIGKILLs after -t seconds; exit code 0
        # (not 137) therefore means the bot shut down cleanly within those 10 s.
        await docker("stop", "-t", "10", name, timeout=60)
        state = await inspect(name, "{{json .State}}")
        output = await logs(name)
    assert state["Running"] is False
    assert state["OOMKilled"] is False
    assert state["ExitCode"] == 0, output[-3000:]
    assert (data / "snapshot.json").exists()
    assert not list(data.glob(".*.tmp-*")), "no temp file left behind"
    # What the next start would load (on a copy: loading writes a fresh snapshot).
    copy = tmp_path / "reload"
    shutil.copytree(data, copy / "data")
    reset_storage_service()
    storage = configure_storage(copy / "data", copy / "backups")
    try:
        await storage.load()
        assert storage.chat(CHAT_ID) is not None
        assert storage.replay_stats.bad_lines == 0
    finally:
        await storage.close()
        reset_storage_service()
