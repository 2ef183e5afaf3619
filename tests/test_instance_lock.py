"""One bot per data directory: the flock in-process, and two real ``python -m bot`` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from pathlib import Path

import pytest

from bot.instance_lock import (
    LOCK_FILE_NAME,
    AlreadyRunningError,
    InstanceLockError,
    acquire_instance_lock,
)
from tests.helpers.bot_runner import start_bot_process, subprocess_env
from tests.helpers.fake_bot_api import FakeBotAPI


def test_second_lock_on_the_same_directory_names_it_and_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = acquire_instance_lock(data)
    try:
        # flock belongs to the open file, so a second open in this process conflicts too.
        with pytest.raises(AlreadyRunningError) as err:
            acquire_instance_lock(data)
    finally:
        lock.release()
    assert err.value.pid == os.getpid()
    assert err.value.directory == data
    assert str(data) in str(err.value)
    assert f"process {os.getpid()}" in str(err.value)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / LOCK_FILE_NAME).stat().st_mode) == 0o600


def test_release_lets_the_next_process_in_and_is_idempotent(tmp_path: Path) -> None:
    lock = acquire_instance_lock(tmp_path)
    lock.release()
    lock.release()
    assert not lock.held
    again = acquire_instance_lock(tmp_path)
    assert again.held
    again.release()


def test_unreadable_pid_is_reported_as_unknown(tmp_path: Path) -> None:
    lock = acquire_instance_lock(tmp_path)
    try:
        (tmp_path / LOCK_FILE_NAME).write_text("garbage")
        with pytest.raises(AlreadyRunningError, match="pid unknown"):
            acquire_instance_lock(tmp_path)
    finally:
        lock.release()


def test_a_data_dir_that_is_a_file_is_a_lock_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("")
    with pytest.raises(InstanceLockError, match="lock file"):
        acquire_instance_lock(blocker)


def bot_env(tmp_path: Path, fake_api: FakeBotAPI) -> dict[str, str]:
    return subprocess_env(
        tmp_path, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_BASE_URL=fake_api.base_url
    )


async def wait_until_polling(fake_api: FakeBotAPI, proc: asyncio.subprocess.Process) -> None:
    """The first bot is up once it long-polls (its lock was taken before anything else)."""
    before = len(fake_api.calls_to("getUpdates"))
    await fake_api.wait_for_call("getUpdates", before + 1, timeout=20)
    assert proc.returncode is None


@pytest.mark.slow
async def test_second_bot_on_the_same_data_dir_exits_2_with_one_line(
    fake_api: FakeBotAPI, tmp_path: Path
) -> None:
    env = bot_env(tmp_path, fake_api)
    first = await start_bot_process(env, tmp_path, capture=False)
    try:
        await wait_until_polling(fake_api, first)
        second = await start_bot_process(env, tmp_path)
        out, _ = await asyncio.wait_for(second.communicate(), timeout=20)
        assert first.returncode is None  # the first one carries on
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), timeout=20)
    lines = out.decode().strip().splitlines()
    assert second.returncode == 2
    assert len(lines) == 1, lines
    assert str(tmp_path / "data") in lines[0]
    assert f"process {first.pid}" in lines[0]
    assert first.returncode == 0


@pytest.mark.slow
async def test_no_stale_lock_after_kill_9(fake_api: FakeBotAPI, tmp_path: Path) -> None:
    env = bot_env(tmp_path, fake_api)
    crashed = await start_bot_process(env, tmp_path, capture=False)
    await wait_until_polling(fake_api, crashed)
    crashed.send_signal(signal.SIGKILL)
    await asyncio.wait_for(crashed.wait(), timeout=20)
    assert (tmp_path / "data" / LOCK_FILE_NAME).read_text().strip() == str(crashed.pid)

    successor = await start_bot_process(env, tmp_path, capture=False)
    try:
        await wait_until_polling(fake_api, successor)
        assert (tmp_path / "data" / LOCK_FILE_NAME).read_text().strip() == str(successor.pid)
    finally:
        successor.send_signal(signal.SIGTERM)
        await asyncio.wait_for(successor.wait(), timeout=20)
    assert successor.returncode == 0
