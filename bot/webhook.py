"""Webhook mode: Telegram POSTs updates to us instead of the bot long-polling for them.

Chosen by ``TELEGRAM_WEBHOOK_URL``. The receiver is a small aiohttp server (aiohttp already
serves ``/healthz``), not PTB's tornado-based ``run_webhook``, for three reasons: no extra
dependency; the secret token is compared in constant time (:func:`hmac.compare_digest`); and
a refused request gets a WARNING line, where PTB logs it at DEBUG only, together with the
wrong token. Updates go into ``Application.update_queue``, which is PTB's documented way to
feed a custom webhook server, so handlers cannot tell the two modes apart.

* **Secret token.** ``TELEGRAM_WEBHOOK_SECRET``, or one generated once and kept in
  ``DATA_DIR/webhook_secret`` (0600), so the webhook set before a restart stays valid and
  updates Telegram queued meanwhile are still accepted. Every request must carry it in
  ``X-Telegram-Bot-Api-Secret-Token``; anything else gets 403 and a log line.
* **Set at start, kept.** ``setWebhook`` runs at every start with ``drop_pending_updates``
  off and is not deleted at shutdown: Telegram keeps the updates of a restart for us.
* **Health.** No long poll proves that Telegram is reachable, so a probe calls
  ``getWebhookInfo`` a few times per ``HEALTH_MAX_API_SILENCE``. It also notices a webhook
  changed or deleted behind our back (another copy of the bot with the same token) and
  reports it like a polling 409 (``HealthState.record_conflict``), and logs Telegram's own
  delivery errors (e.g. the reverse proxy cannot reach us).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import ExtBot

from bot.config import WEBHOOK_SECRET_RE, Settings
from bot.context import AnyApp, services_of

logger = logging.getLogger(__name__)


# Names, not secrets (bandit/ruff S105 would read them as hard-coded passwords).
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105
SECRET_FILE_NAME = "webhook_secret"  # noqa: S105
# Telegram's updates are a few KiB; a megabyte leaves room for the largest and stops a
# (secret-holding) sender from making us buffer more.
MAX_UPDATE_BYTES = 1 << 20
_FILE_MODE = 0o600
_DIR_MODE = 0o700
# Probe often enough that HEALTH_MAX_API_SILENCE is never reached while Telegram answers.
_PROBES_PER_SILENCE_LIMIT = 4
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)


class WebhookError(Exception):
    """Webhook mode cannot start; the message says what to fix."""


def load_or_create_secret(data_dir: Path, configured: str | None) -> str:
    """The secret token: ``configured`` if given, else the one kept in ``data_dir``.

    A missing file is created with a fresh random secret (``secrets.token_urlsafe(32)``,
    43 characters Telegram accepts), mode 0600, with ``O_EXCL`` so two racing starts agree.

    Raises:
        WebhookError: the file exists but does not hold a valid secret, or cannot be
            read or written.

    """
    if configured:
        return configured
    path = data_dir / SECRET_FILE_NAME
    try:
        data_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except FileExistsError:
            kept = path.read_text(encoding="ascii", errors="replace").strip()
            if not WEBHOOK_SECRET_RE.match(kept):
                raise WebhookError(
                    f"{path} does not hold a valid webhook secret; delete it to have a new "
                    "one generated"
                ) from None
            return kept
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise WebhookError(f"cannot keep the webhook secret in {path}: {exc}") from exc
    logger.info("generated a webhook secret token and kept it in %s", path)
    return secret


class WebhookReceiver:
    """Serve the webhook path, set the webhook with Telegram, and probe it while running."""

    def __init__(
        self,
        app: AnyApp,
        settings: Settings,
        secret: str,
        *,
        probe_interval_s: float | None = None,
    ) -> None:
        """Remember what to serve; nothing is bound or sent until :meth:`start`.

        Args:
            app: the built application whose ``update_queue`` receives the updates.
            settings: ``webhook_url`` (must be set), ``webhook_listen``, ``webhook_port``.
            secret: the secret token (:func:`load_or_create_secret`).
            probe_interval_s: seconds between ``getWebhookInfo`` probes; default a quarter of
                ``HEALTH_MAX_API_SILENCE``.

        """
        if not settings.webhook_url:
            raise ValueError("WebhookReceiver needs settings.webhook_url")
        self._app = app
        self._url = settings.webhook_url
        self._path = urlsplit(settings.webhook_url).path or "/"
        self._listen = settings.webhook_listen
        self._port = settings.webhook_port
        self._secret = secret.encode()
        self._probe_interval_s = probe_interval_s or (
            settings.health_max_api_silence_s / _PROBES_PER_SILENCE_LIMIT
        )
        self._runner: web.AppRunner | None = None
        self._probe: asyncio.Task[None] | None = None
        self._last_delivery_error: tuple[str, int] | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("WebhookReceiver is not started")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Listen, then ``setWebhook`` (so the first delivery finds us), then start probing.

        Raises:
            OSError: the address cannot be bound.
            telegram.error.TelegramError: Telegram refused the webhook (e.g. a bad URL).

        """
        server = web.Application(client_max_size=MAX_UPDATE_BYTES)
        server.router.add_post(self._path, self._handle)
        # No access log: every request is either an update (counted) or refused (logged).
        runner = web.AppRunner(server, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._listen, self._port).start()
            self._runner = runner
            await self._app.bot.set_webhook(
                url=self._url,
                secret_token=self._secret.decode(),
                allowed_updates=Update.ALL_TYPES,
                drop_pending_updates=False,
            )
        except BaseException:
            self._runner = None
            await runner.cleanup()
            raise
        logger.info(
            "webhook mode: listening on %s:%d%s, Telegram delivers to %s",
            self._listen,
            self.port,
            self._path,
            self._url,
            extra={"event": "webhook_started"},
        )
        self._probe = asyncio.create_task(self._probe_loop(), name="webhook-probe")

    async def stop(self) -> None:
        """Stop probing and listening; the webhook stays set. Safe to call twice."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        metrics = services_of(self._app).metrics
        given = request.headers.get(SECRET_HEADER)
        # Checked before the body is read: a sender without the secret costs us nothing.
        if given is None or not hmac.compare_digest(given.encode(), self._secret):
            metrics.webhook_requests.labels(outcome="forbidden").inc()
            logger.warning(
                "webhook: refused a request from %s (X-Forwarded-For %r): %s secret token",
                request.remote,
                request.headers.get("X-Forwarded-For", "")[:100],
                "no" if given is None else "wrong",
                extra={"event": "webhook_forbidden"},
            )
            return web.Response(status=403, text="Forbidden")
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            update = Update.de_json(data, self._app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            metrics.webhook_requests.labels(outcome="bad_request").inc()
            logger.warning(
                "webhook: a request with the right secret was not an update: %s",
                type(exc).__name__,
                extra={"event": "webhook_bad_request"},
            )
            return web.Response(status=400, text="Bad Request")
        if isinstance(self._app.bot, ExtBot):
            self._app.bot.insert_callback_data(update)
        await self._app.update_queue.put(update)
        metrics.webhook_requests.labels(outcome="accepted").inc()
        return web.Response(status=200)

    async def _probe_loop(self) -> None:
        health = services_of(self._app).health
        while True:
            await asyncio.sleep(self._probe_interval_s)
            try:
                info = await self._app.bot.get_webhook_info()
            except Exception as exc:
                # InstrumentedRequest has already recorded it for /healthz and /metrics.
                logger.debug("getWebhookInfo failed: %s", type(exc).__name__)
                continue
            if info.url != self._url:
                where = urlsplit(info.url).hostname if info.url else None
                health.record_conflict(
                    "webhook",
                    f"the webhook now points to {where}" if where else "the webhook was deleted",
                )
            else:
                health.clear_conflict("webhook")
            self._report_delivery_error(info.last_error_message, info.last_error_date)

    def _report_delivery_error(self, message: str | None, when: Any) -> None:
        """Log Telegram's own delivery failure once per distinct error."""
        if not message or when is None:
            return
        key = (message, int(when.timestamp()))
        if key == self._last_delivery_error:
            return
        self._last_delivery_error = key
        logger.warning(
            "Telegram could not deliver to the webhook at %s: %s",
            when.isoformat(),
            message[:200],
            extra={"event": "webhook_delivery_error"},
        )


async def serve_webhook(app: AnyApp, settings: Settings, secret: str) -> None:
    """Run the bot in webhook mode until SIGINT, SIGTERM or SIGABRT.

    The lifecycle is PTB's ``run_webhook`` (initialize, post_init, webhook, start; then stop,
    post_stop, shutdown, post_shutdown) with :class:`WebhookReceiver` in place of the Updater.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        receiver = WebhookReceiver(app, settings, secret)
        await receiver.start()
        try:
            await app.start()
            await stop.wait()
        finally:
            await receiver.stop()
            if app.running:
                await app.stop()
            if app.post_stop is not None:
                await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def run_webhook(app: AnyApp, settings: Settings, secret: str) -> None:
    """Blocking entry point for ``python -m bot`` (the webhook twin of ``run_polling``)."""
    asyncio.run(serve_webhook(app, settings, secret))
