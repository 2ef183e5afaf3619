"""Helpers the benchmarks share: percentiles, printing, CPU pinning, profiling, feed servers.

Nothing here measures anything by itself; it keeps the benchmarks short and makes their
output look alike (same percentile definition, same table layout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import math
import multiprocessing
import os
import pstats
import statistics
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)

FEED_PATH = "/f{n}.xml"
_BASE_TIME = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
_FILLER = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
)
_READY_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- arguments


def positive_int(raw: str) -> int:
    """An argparse type: a whole number ≥ 1 (sizes of zero make no benchmark)."""
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {raw}")
    return value


def positive_float(raw: str) -> float:
    """An argparse type: a number > 0 (rates and time bounds)."""
    value = float(raw)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {raw}")
    return value


# --------------------------------------------------------------------------- statistics


def percentiles(values: Sequence[float], pcts: Sequence[int]) -> dict[int, float]:
    """The given percentiles (integers 1–99) of ``values``, by linear interpolation.

    Uses :func:`statistics.quantiles` (``inclusive``: the sample is the whole population we
    care about), so every benchmark reports the same definition. Empty input gives NaN.
    """
    if not values:
        return dict.fromkeys(pcts, math.nan)
    if len(values) == 1:
        return dict.fromkeys(pcts, float(values[0]))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {p: cuts[p - 1] for p in pcts}


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """``count``, ``p50_ms``, ``p90_ms``, ``p99_ms`` and ``max_ms`` of durations in seconds."""
    pct = percentiles(seconds, (50, 90, 99))
    return {
        "count": float(len(seconds)),
        "p50_ms": pct[50] * 1000,
        "p90_ms": pct[90] * 1000,
        "p99_ms": pct[99] * 1000,
        "max_ms": max(seconds) * 1000 if seconds else math.nan,
    }


def median_by(rounds: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The round whose ``key`` is the median (the lower middle one for an even count)."""
    if not rounds:
        raise ValueError("no rounds")
    ordered = sorted(rounds, key=lambda r: float(r[key]))
    return ordered[(len(ordered) - 1) // 2]


# --------------------------------------------------------------------------- printing


def fmt_ms(summary: dict[str, float]) -> str:
    """``p50 1.2 ms · p90 … · p99 … · max …`` from a :func:`latency_summary`."""
    return " · ".join(
        f"{name} {summary[f'{name}_ms']:.1f} ms" for name in ("p50", "p90", "p99", "max")
    )


def verdict(ok: bool) -> str:
    """A short pass/miss marker printed next to a target."""
    return "MET" if ok else "MISSED"


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """Print ``title`` then aligned ``name: value`` rows (the benchmarks' output format)."""
    print(title)
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


# --------------------------------------------------------------------------- CPU and profiling


@contextlib.contextmanager
def pinned_to_one_core(enabled: bool = True) -> Iterator[str]:
    """Pin this process (and its threads) to one CPU for the block; yield a description.

    The original affinity is restored afterwards, so calling a benchmark's ``main`` from a
    test does not leave the test process pinned.
    """
    setter = getattr(os, "sched_setaffinity", None)
    getter = getattr(os, "sched_getaffinity", None)
    if not enabled:
        yield "not pinned (--no-pin)"
        return
    if setter is None or getter is None:
        yield "not pinned (os.sched_setaffinity is not available on this platform)"
        return
    original = getter(0)
    cpu = min(original)
    setter(0, {cpu})
    try:
        yield f"pinned to CPU {cpu} of {len(original)} with os.sched_setaffinity (one core)"
    finally:
        setter(0, original)


def other_cpu() -> int | None:
    """A CPU that :func:`pinned_to_one_core` does not use (for helper processes), if any."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    cpus = sorted(getter(0))
    return cpus[-1] if len(cpus) > 1 else None


def pin_process(pid: int, cpu: int | None) -> None:
    """Pin another process (a feed server, a fake Bot API) to ``cpu``; no-op for None."""
    setter = getattr(os, "sched_setaffinity", None)
    if setter is not None and cpu is not None:
        setter(pid, {cpu})


# --------------------------------------------------------------------------- process figures


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (``/proc/<pid>/stat``).

    Works for pool workers that are still running, which ``getrusage(RUSAGE_CHILDREN)``
    does not count until they are reaped. 0.0 when the process is gone.
    """
    return sum(cpu_split_s(f"/proc/{pid}/stat"))


def cpu_split_s(stat_path: str) -> tuple[float, float]:
    """(user, system) CPU seconds from a ``/proc`` ``stat`` file (a process or one thread).

    ``/proc/<pid>/task/<pid>/stat`` is the main thread alone: the event loop's share.
    (0.0, 0.0) when the process or thread is gone.
    """
    try:
        raw = Path(stat_path).read_text()
    except OSError:
        return 0.0, 0.0
    fields = raw.rpartition(")")[2].split()  # the name may contain spaces: skip past it
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime (fields 14, 15)


def process_memory_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process in MiB, from ``/proc/<pid>/status``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def executor_pids(executor: object) -> list[int]:
    """PIDs of a ``ProcessPoolExecutor``'s workers (none for threads or None)."""
    processes = getattr(executor, "_processes", None) or {}
    return [int(pid) for pid in processes]


def profile_summary(profiler: cProfile.Profile, top: int = 15) -> str:
    """The ``top`` functions by cumulative time, then by own time, as pstats prints them.

    Cumulative time shows which call paths are expensive; own (``tottime``) time shows
    where the CPU actually goes, which the asyncio plumbing at the top of the first list
    hides.
    """
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"--- top {top} by cumulative time ---\n")
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    out.write(f"--- top {top} by own time ---\n")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------- the bot


def stop_poll_job(app: Any) -> None:
    """Remove the bot's periodic poll job: the benchmark runs ``poll_due()`` itself, so the
    job must not start a cycle of its own in the middle of a measurement."""
    queue = app.job_queue
    if queue is not None:
        for job in queue.get_jobs_by_name("poll"):
            job.schedule_removal()


# --------------------------------------------------------------------------- storage files


def write_snapshot(data_dir: Path, data: bytes) -> None:
    """Put a prepared ``snapshot.json`` into a new DATA_DIR (modes as the service keeps them)."""
    from bot.storage.journal import SNAPSHOT_NAME  # noqa: PLC0415

    data_dir.mkdir(parents=True, mode=0o700)
    path = data_dir / SNAPSHOT_NAME
    path.write_bytes(data)
    path.chmod(0o600)


def read_state(data_dir: Path) -> Any:
    """What a stopped bot left in DATA_DIR: its snapshot with every journal segment replayed
    (exactly what the next start would load)."""
    from bot.storage import journal  # noqa: PLC0415
    from bot.storage.state import State  # noqa: PLC0415

    snapshot = data_dir / journal.SNAPSHOT_NAME
    if snapshot.exists():
        state, start = journal.decode_snapshot(snapshot.read_bytes())
    else:
        state, start = State(), 0
    stats = journal.ReplayStats()
    live = [n for n in journal.list_segments(data_dir) if n >= start]
    for n in live:
        path = journal.segment_path(data_dir, n)
        journal.replay_segment(state, path, last=n == live[-1], stats=stats)
    return state


# --------------------------------------------------------------------------- feeds


def feed_items(feed: int, version: int, count: int) -> list[dict[str, Any]]:
    """Items of feed ``feed`` at ``version``: one new item per version, oldest dropped."""
    return [
        {
            "title": f"Feed {feed} story {i}",
            "link": f"https://news.example/{feed}/{i}",
            "guid": f"urn:newsbot-bench:{feed}:{i}",
            "pubdate": _BASE_TIME + timedelta(minutes=i),
            "description": f"<p>Story {i} of feed {feed}. {_FILLER}</p>",
        }
        for i in range(version, version + count)
    ]


def feed_document(feed: int, version: int, count: int) -> bytes:
    """An RSS document for :func:`feed_items` (built by the tests' ElementTree builder)."""
    from tests.helpers.feeds import rss  # noqa: PLC0415 - keep test helpers out of import time

    return rss(feed_items(feed, version, count), title=f"Bench feed {feed}")


def feed_etag(feed: int, version: int) -> str:
    """The ETag a feed has at a version (changes exactly when the document does)."""
    return f'"f{feed}-v{version}"'


async def _serve_feeds(conn: Connection, feeds: int, items: int, close: bool) -> None:
    """Body of the feed server process: serve, then obey commands from the pipe."""
    from tests.helpers.feed_server import FeedServer  # noqa: PLC0415 - child process only

    server = FeedServer()
    await server.start()
    versions = [0] * feeds
    extra = {"Connection": "close"} if close else None
    for n in range(feeds):
        server.serve(
            FEED_PATH.format(n=n),
            feed_document(n, 0, items),
            etag=feed_etag(n, 0),
            headers=extra,
        )
    conn.send(("ready", server.port))
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                command, argument = await loop.run_in_executor(None, conn.recv)
            except EOFError:
                break  # the parent went away
            if command == "bump":
                for n in argument:
                    versions[n] += 1
                    server.serve(
                        FEED_PATH.format(n=n),
                        feed_document(n, versions[n], items),
                        etag=feed_etag(n, versions[n]),
                        headers=extra,
                    )
                conn.send(("ok", len(argument)))
            elif command == "requests":
                conn.send(("ok", len(server.requests)))
            else:
                conn.send(("ok", None))
                break
    finally:
        await server.stop()


def _feed_server_main(conn: Connection, feeds: int, items: int, close: bool) -> None:
    """Entry point of the feed server process (must be importable for ``spawn``)."""
    asyncio.run(_serve_feeds(conn, feeds, items, close))


class FeedServerProcess:
    """``feeds`` RSS feeds at ``/f{n}.xml`` served by the tests' FeedServer in another process.

    A separate process keeps the server's CPU out of the measured event loop. Each feed has
    an ETag, so a conditional GET of an unchanged feed gets 304; :meth:`bump` publishes a
    new version (new item, new ETag) of some feeds. With ``connection_close`` every answer
    carries ``Connection: close``, so each request opens a new connection (as fetching
    10,000 feeds from as many hosts would). Methods block: call them from async
    code with ``asyncio.to_thread``.
    """

    def __init__(
        self, feeds: int, items: int, *, cpu: int | None = None, connection_close: bool = False
    ) -> None:
        self.feeds = feeds
        self.items = items
        self.cpu = cpu  # pin the server to this CPU (keep it off the measured core)
        self.connection_close = connection_close
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._port: int | None = None

    def start(self) -> None:
        """Start the process and wait until it serves."""
        ctx = multiprocessing.get_context("spawn")  # no forked copy of the parent's loop
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_feed_server_main,
            args=(child, self.feeds, self.items, self.connection_close),
            name="bench-feed-server",
            daemon=True,
        )
        process.start()
        child.close()
        if process.pid is not None:
            pin_process(process.pid, self.cpu)
        self._conn, self._process = parent, process
        try:
            if not parent.poll(_READY_TIMEOUT_S + self.feeds / 100):  # ~2 ms per document
                raise RuntimeError("feed server process did not start in time")
            _, port = parent.recv()
        except (EOFError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError(f"feed server process failed to start: {exc!r}") from None
        self._port = int(port)

    def _ask(self, command: str, argument: Any = None) -> Any:
        if self._conn is None:
            raise RuntimeError("feed server process not started")
        self._conn.send((command, argument))
        _, answer = self._conn.recv()
        return answer

    def url(self, n: int) -> str:
        """The URL of feed ``n``."""
        if self._port is None:
            raise RuntimeError("feed server process not started")
        return f"http://127.0.0.1:{self._port}{FEED_PATH.format(n=n)}"

    def urls(self) -> list[str]:
        """Every feed URL, in order."""
        return [self.url(n) for n in range(self.feeds)]

    def bump(self, which: Sequence[int]) -> None:
        """Publish a new version of the feeds ``which`` (new item and ETag)."""
        self._ask("bump", list(which))

    def request_count(self) -> int:
        """How many requests the server has received."""
        return int(self._ask("requests"))

    def stop(self) -> None:
        """Stop the process (politely, then by force)."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            with contextlib.suppress(OSError, EOFError):
                conn.send(("stop", None))
                if conn.poll(5):
                    conn.recv()
            conn.close()
        if process is not None:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
