"""SIGKILL a storage writer at random moments: every reload has every acknowledged change."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from bot.storage import StorageService
from bot.storage.journal import SNAPSHOT_NAME
from tests.helpers.storage_writer import CHAT_ID, COUNTER, feed_url, title_for

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 14
logger = logging.getLogger(__name__)


async def run_and_kill(
    data: Path, backups: Path, rng: random.Random, early: bool
) -> tuple[int | None, list[int]]:
    """Start the writer and SIGKILL it at a random moment; return (ready value, acks)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.storage_writer",
        str(data),
        str(backups),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = b""
    if early:
        # Anywhere in interpreter start-up, load() (snapshot write, segment removal) and the
        # first writes.
        await asyncio.sleep(rng.uniform(0.0, 0.4))
    else:
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    returncode = await proc.wait()
    out = (first + await proc.stdout.read()).decode()
    err = (await proc.stderr.read()).decode()
    assert returncode == -signal.SIGKILL, f"writer died on its own ({returncode}):\n{err}"
    ready: int | None = None
    acks: list[int] = []
    for line in out.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "ready":
            ready = int(value)
        elif kind == "ack":
            acks.append(int(value))
    return ready, acks


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigkilled_writer_loses_no_acknowledged_change(tmp_path: Path) -> None:
    seed = int(os.environ.get("STORAGE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"storage crash test seed: {seed} (rerun with STORAGE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    data, backups = tmp_path / "data", tmp_path / "backups"
    previous, previous_ticks = 0, 0
    rounds_with_acks = torn_tails = 0
    acknowledged: set[int] = set()

    for round_no in range(ROUNDS):
        early = round_no > 0 and rng.random() < 0.25
        ready, acks = await run_and_kill(data, backups, rng, early)
        where = f"seed={seed} round={round_no} early={early} ready={ready} acks={acks[-3:]}"

        service = StorageService(data, backups, 3, compact_in_process=False)
        await service.load()  # must not raise, whatever the kill interrupted
        urls = service.feed_urls(CHAT_ID)
        chat = service.chat(CHAT_ID)
        cursors = {s.url: s.cursor for s in service.subscriptions(CHAT_ID)}
        ticks = service.counters()["global"].get(COUNTER, 0)
        torn_tails += service.replay_stats.torn_tail
        assert service.replay_stats.bad_lines == 0, where  # a torn tail is not corruption
        await service.close()

        # Consistent: the chat follows exactly feeds 1..m, in order.
        m = len(urls)
        assert urls == [feed_url(i) for i in range(1, m + 1)], where
        if ready is not None:
            assert ready == previous, where
        assert chat is not None or (m == 0 and early), where
        # Nothing acknowledged is lost, nothing goes backwards.
        assert m >= previous, where
        if acks:
            rounds_with_acks += 1
            last = acks[-1]
            assert acks == list(range(previous + 1, last + 1)), where
            assert last <= m <= last + 1, where
            assert chat is not None
            shown = int(chat.title.rsplit(" ", 1)[1])
            assert chat.title == title_for(shown), where
            assert last <= shown <= m, where
        else:
            assert m <= previous + 1, where
        acknowledged.update(acks)
        for n in acknowledged - {1}:  # every acknowledged cursor, from every round so far
            assert cursors[feed_url(n - 1)] == n, (where, n)
        # Deferred counters may lag behind a kill but never run ahead or go back.
        assert previous_ticks <= ticks <= m, where
        # load() cleaned up after the kill.
        leftovers = [p.name for d in (data, backups) for p in d.iterdir() if ".tmp-" in p.name]
        assert leftovers == [], where
        assert list(data.glob("*.corrupt-*")) == [], where
        assert (data / SNAPSHOT_NAME).exists(), where
        previous, previous_ticks = m, ticks

    print(
        f"crash test: {rounds_with_acks} rounds with acks, {torn_tails} torn tails, "
        f"{previous} iterations"
    )
    # The kills really interrupted a running writer, not just start-ups.
    assert rounds_with_acks >= ROUNDS // 2, f"seed={seed}: too few kills hit a running writer"
    assert previous > ROUNDS, f"seed={seed}: the writer hardly wrote anything"
