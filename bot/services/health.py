"""Liveness of the bot process: the health state and the ``/healthz`` + ``/metrics`` server.

A polling bot can look alive (process up, no crash) while being useless: the Bot API is
unreachable, the token was revoked, or the event loop is stuck in blocking code. Docker's
``HEALTHCHECK`` (``python -m bot.healthcheck``) asks ``/healthz``, which answers from
:class:`HealthState`:

* **API silence** — every Bot API answer below HTTP 500 (recorded by
  :class:`bot.services.telegram_request.InstrumentedRequest`) proves the API is reachable.
  Long polling answers at least every poll timeout, so silence longer than
  ``max_api_silence_s`` (``HEALTH_MAX_API_SILENCE``) means the bot is cut off. Before the
  first success the silence is counted from start.
* **Event-loop stall** — :meth:`HealthState.run_loop_monitor` measures how late its own
  timer wakes up. A lag above ``stall_threshold_s`` seen within the last ``lag_window_s``
  makes the state unhealthy. While the loop is stalled *nobody* can answer ``/healthz``
  (it runs on that loop too); then the healthcheck's own timeout is what reports it.
* **Telegram conflict** — Telegram answers 409 Conflict to ``getUpdates`` while another
  process receives this bot's updates (a second copy with the same token elsewhere, or a
  webhook set by one), and the webhook probe (:mod:`bot.webhook`) reports a webhook that was
  changed behind our back the same way. Unhealthy from the first conflict until the same
  call succeeds again; logged as an ERROR at most once per :data:`CONFLICT_LOG_INTERVAL_S`.

All methods run on the event-loop thread, so the state needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.services.metrics import Metrics

logger = logging.getLogger(__name__)

# Upper bound on remembered lag samples whatever the window and interval, so a tiny interval
# cannot grow memory without limit.
_MAX_LAG_SAMPLES = 4096
# A conflict repeats at every poll retry (PTB backs off to 30 s); one ERROR a minute is
# enough to be noticed without drowning the log.
CONFLICT_LOG_INTERVAL_S = 60.0


class HealthState:
    """What ``/healthz`` reports: Bot API reachability and event-loop responsiveness."""

    def __init__(
        self,
        max_api_silence_s: float,
        stall_threshold_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        lag_window_s: float = 60.0,
    ) -> None:
        """Start counting API silence from now.

        Args:
            max_api_silence_s: longest time without a successful Bot API call that is healthy.
            stall_threshold_s: largest event-loop lag that is healthy.
            clock: a monotonic clock in seconds (injected by tests).
            lag_window_s: how long a measured stall keeps the state unhealthy, so that a
                periodic healthcheck still sees a stall that has already ended.

        """
        self.max_api_silence_s = max_api_silence_s
        self.stall_threshold_s = stall_threshold_s
        self.lag_window_s = lag_window_s
        self._clock = clock
        self._started = clock()
        self._last_success: float | None = None
        self._last_error: tuple[str, float] | None = None
        self._last_lag: float | None = None
        # (measured at, lag) pairs, oldest first; pruned to lag_window_s in snapshot().
        self._lags: deque[tuple[float, float]] = deque(maxlen=_MAX_LAG_SAMPLES)
        # source (Bot API method, or "webhook") -> (Telegram's description, first seen at).
        self._conflicts: dict[str, tuple[str, float]] = {}
        self._conflict_logged_at: float | None = None
        self._conflicts_unlogged = 0

    def record_api_success(self) -> None:
        """Note that the Bot API answered (any status below 500)."""
        self._last_success = self._clock()

    def record_api_error(self, kind: str) -> None:
        """Note a failed Bot API call; reported in the body, it does not reset the silence."""
        self._last_error = (kind, self._clock())

    def record_conflict(self, source: str, description: str) -> None:
        """Note that another process receives this bot's updates; unhealthy until cleared.

        Args:
            source: where it showed: the Bot API method that got 409 (``getUpdates``), or
                ``webhook`` when the webhook was changed by someone else.
            description: what Telegram said (already free of secrets), for the log and body.

        """
        now = self._clock()
        since = self._conflicts.get(source, ("", now))[1]
        self._conflicts[source] = (description, since)
        logged = self._conflict_logged_at
        if logged is not None and now - logged < CONFLICT_LOG_INTERVAL_S:
            self._conflicts_unlogged += 1
            return
        repeats = self._conflicts_unlogged
        self._conflict_logged_at, self._conflicts_unlogged = now, 0
        logger.error(
            "Telegram conflict on %s: another process is receiving this bot's updates (a "
            "second copy of the bot with the same token, or a webhook set elsewhere); only "
            "one can. Stop the other one. Telegram said: %s%s",
            source,
            description,
            f" ({repeats} more since the last report)" if repeats else "",
            extra={"event": "telegram_conflict", "source": source},
        )

    def clear_conflict(self, source: str) -> None:
        """Note that ``source`` works again, ending a conflict recorded for it."""
        if self._conflicts.pop(source, None) is not None:
            logger.warning(
                "Telegram conflict on %s is over", source, extra={"event": "conflict_over"}
            )

    def record_loop_lag(self, lag_s: float) -> None:
        """Store one event-loop lag measurement (seconds the timer woke up late)."""
        lag_s = max(0.0, lag_s)
        self._last_lag = lag_s
        self._lags.append((self._clock(), lag_s))
        if lag_s > self.stall_threshold_s:
            logger.warning(
                "event loop was blocked for %.2fs (threshold %.2fs)", lag_s, self.stall_threshold_s
            )

    async def run_loop_monitor(self, interval: float = 0.5) -> None:
        """Measure event-loop lag forever; run as a task and cancel it on shutdown.

        Each round sleeps ``interval`` seconds and records how much later than that it woke:
        anything blocking the loop (CPU-bound parsing, a synchronous call) shows up as lag.
        """
        while True:
            before = self._clock()
            await asyncio.sleep(interval)
            self.record_loop_lag(self._clock() - before - interval)

    def snapshot(self) -> tuple[bool, dict[str, Any]]:
        """Judge health now.

        Returns:
            ``(healthy, body)``: ``body`` is the small JSON object ``/healthz`` returns, with
            ``status`` (``"ok"``/``"unhealthy"``), ``reasons``, ``seconds_since_api_success``
            (since start when there was none), ``api_ever_succeeded``, ``last_api_error``,
            ``loop_lag_s`` (latest), ``loop_lag_max_s`` (worst in the window), ``conflicts``
            (source -> Telegram's description and seconds it has lasted) and ``uptime_s``.

        """
        now = self._clock()
        while self._lags and now - self._lags[0][0] > self.lag_window_s:
            self._lags.popleft()
        silence = now - (self._started if self._last_success is None else self._last_success)
        worst_lag = max((lag for _, lag in self._lags), default=0.0)

        reasons: list[str] = []
        if silence > self.max_api_silence_s:
            reasons.append(
                f"no successful Bot API call for {silence:.1f}s (limit {self.max_api_silence_s:g}s)"
            )
        if worst_lag > self.stall_threshold_s:
            reasons.append(
                f"event loop stalled for {worst_lag:.2f}s in the last {self.lag_window_s:g}s "
                f"(limit {self.stall_threshold_s:g}s)"
            )
        conflicts = {
            source: {"description": text, "seconds": round(now - since, 3)}
            for source, (text, since) in self._conflicts.items()
        }
        reasons += [
            f"Telegram conflict on {source} for {info['seconds']:.1f}s: another process "
            f"receives this bot's updates ({info['description']})"
            for source, info in conflicts.items()
        ]
        last_error = None
        if self._last_error is not None:
            kind, when = self._last_error
            last_error = {"kind": kind, "seconds_ago": round(now - when, 3)}
        healthy = not reasons
        body: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "reasons": reasons,
            "seconds_since_api_success": round(silence, 3),
            "api_ever_succeeded": self._last_success is not None,
            "last_api_error": last_error,
            "loop_lag_s": None if self._last_lag is None else round(self._last_lag, 4),
            "loop_lag_max_s": round(worst_lag, 4),
            "conflicts": conflicts,
            "uptime_s": round(now - self._started, 3),
        }
        return healthy, body


class HealthServer:
    """A small aiohttp server: ``GET /healthz`` (200/503 + JSON) and ``GET /metrics``.

    It shares the bot's event loop, so a stalled loop makes it unreachable, which the
    healthcheck's timeout turns into "unhealthy".
    """

    def __init__(self, host: str, port: int, health: HealthState, metrics: Metrics) -> None:
        """Remember where to listen; nothing is bound until :meth:`start`.

        Args:
            host: interface to bind (``HEALTH_HOST``); ``0.0.0.0`` inside a container.
            port: TCP port (``HEALTH_PORT``); ``0`` picks a free one (tests).
            health: the state ``/healthz`` reports.
            metrics: the registry ``/metrics`` serves.

        """
        self._host = host
        self._port = port
        self._health = health
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the requested one when that was 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("HealthServer is not started")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            OSError: the address cannot be bound (e.g. the port is taken).

        """
        # Requests carry no body; refuse anything larger than a few headers' worth.
        app = web.Application(client_max_size=1024)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        # No access log: Docker polls /healthz every interval and Prometheus scrapes /metrics;
        # logging each would drown the bot's own lines. Signals stay with the bot (PTB).
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        logger.info(
            "health endpoint listening on %s:%d (/healthz, /metrics)", self._host, self.port
        )

    async def stop(self) -> None:
        """Stop listening; safe to call when not started or twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, body = self._health.snapshot()
        return web.json_response(
            body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"}
        )

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        healthy, body = self._health.snapshot()
        self._metrics.api_silence_seconds.set(body["seconds_since_api_success"])
        self._metrics.event_loop_lag_seconds.set(body["loop_lag_max_s"])
        self._metrics.healthy.set(1 if healthy else 0)
        payload, content_type = self._metrics.render()
        return web.Response(
            body=payload, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
        )
