"""Prometheus metrics for the bot, kept in a registry owned by one :class:`Metrics` object.

Nothing is registered at import time and the global ``prometheus_client.REGISTRY`` is never
used: every :class:`Metrics` instance carries its own :class:`CollectorRegistry`, so tests can
build as many as they like without "Duplicated timeseries" errors, and the bot exposes exactly
what it owns. ``/metrics`` (see :mod:`bot.services.health`) serves :meth:`Metrics.render`.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

logger = logging.getLogger(__name__)

# Label values created up front (at 0) so that rate()/increase() alerts see the series before
# the first event; any other value passed to .labels() still works.
# Error outcomes are FeedFetchError.kind (bot/services/fetcher.py) plus "parse_error".
FEED_FETCH_OUTCOMES: tuple[str, ...] = (
    "ok",
    "not_modified",
    "bad_url",
    "blocked_address",
    "dns",
    "connect",
    "timeout",
    "too_large",
    "too_many_redirects",
    "http_status",
    "network",
    "parse_error",
)
TELEGRAM_ERROR_KINDS: tuple[str, ...] = (
    "rate_limited",
    "forbidden",
    "bad_request",
    "not_found",
    "conflict",
    "server_error",
    "network",
    "timeout",
    "other",
)
# Outcomes of a POST to the webhook (bot/webhook.py).
WEBHOOK_OUTCOMES: tuple[str, ...] = ("accepted", "forbidden", "bad_request")

# Feed fetches are bounded by the fetcher's deadline (tens of seconds); storage writes are
# fsync-bound and normally take milliseconds, so each gets buckets that resolve its own range.
_FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_STORAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric the bot exports, registered in a private registry.

    Attributes:
        registry: the registry :meth:`render` serialises.
        news_requests: ``/news`` commands served (rate-limited ones are not counted).
        news_rate_limited: ``/news`` commands refused by the per-user budget.
        add_rate_limited: ``/add`` and ``/import`` commands refused by their per-user budget.
        feed_fetches: feed fetches by ``outcome`` (``ok``, ``not_modified`` or an error kind).
        feed_fetch_seconds: wall time of one feed fetch, whatever its outcome.
        digests_sent: digests posted to chats, one per chat digest (whatever its topics and
            messages).
        items_sent: feed items delivered to chats (instant and digest).
        items_discovered: new items found in followed feeds.
        messages_delivered: item messages Telegram accepted, by ``mode``.
        delivery_failures: deliveries that did not go through, by ``reason``.
        delivery_queue: chats waiting for an instant delivery.
        telegram_api_errors: failed Bot API calls by ``kind``.
        storage_write_seconds: time of one durable storage write (temp file, fsync, rename).
        api_silence_seconds: seconds since the last successful Bot API call; set from the
            health state at each scrape of ``/metrics``.
        event_loop_lag_seconds: worst event-loop lag seen recently; set like the above.
        healthy: 1 while ``/healthz`` would answer 200, else 0; set like the above.
        webhook_requests: POSTs to the webhook by ``outcome`` (``accepted``; ``forbidden``:
            missing or wrong secret token; ``bad_request``: not a JSON update). Webhook mode.

    """

    def __init__(self, *, process_metrics: bool = True, version: str = "unknown") -> None:
        """Create the registry and every metric in it.

        Args:
            process_metrics: also export ``process_*`` (CPU, memory, fds), ``python_gc_*`` and
                ``python_info``; tests that count series may switch them off.
            version: the bot's version, exported as ``newsbot_build_info{version=...} 1``.

        """
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.news_requests = Counter(
            "newsbot_news_requests_total", "/news commands handled.", registry=reg
        )
        self.news_rate_limited = Counter(
            "newsbot_news_rate_limited_total",
            "/news commands refused by the per-user rate limit.",
            registry=reg,
        )
        self.add_rate_limited = Counter(
            "newsbot_add_rate_limited_total",
            "/add and /import commands refused by the per-user rate limit.",
            registry=reg,
        )
        self.feed_fetches = Counter(
            "newsbot_feed_fetches_total",
            "Feed fetches by outcome (ok, not_modified, or an error kind).",
            ["outcome"],
            registry=reg,
        )
        self.feed_fetch_seconds = Histogram(
            "newsbot_feed_fetch_duration_seconds",
            "Duration of one feed fetch, whatever its outcome.",
            buckets=_FETCH_BUCKETS,
            registry=reg,
        )
        self.digests_sent = Counter(
            "newsbot_digests_sent_total",
            "Digests posted to chats (one per chat digest).",
            registry=reg,
        )
        self.items_sent = Counter(
            "newsbot_items_sent_total",
            "Feed items delivered to chats (instant pushes and digests).",
            registry=reg,
        )
        self.items_discovered = Counter(
            "newsbot_items_discovered_total",
            "New items found in followed feeds (each counted once, whatever its followers).",
            registry=reg,
        )
        self.messages_delivered = Counter(
            "newsbot_messages_delivered_total",
            "Messages carrying feed items that Telegram accepted, by mode (instant, digest).",
            ["mode"],
            registry=reg,
        )
        self.delivery_failures = Counter(
            "newsbot_delivery_failures_total",
            "Deliveries that did not go through, by reason (gone, rejected, retry_later).",
            ["reason"],
            registry=reg,
        )
        self.delivery_queue = Gauge(
            "newsbot_delivery_queue_chats",
            "Chats waiting for an instant delivery.",
            registry=reg,
        )
        self.telegram_retries = Counter(
            "newsbot_telegram_retries_total",
            "Bot API calls retried by the rate limiter, by kind (rate_limited, timeout, network).",
            ["kind"],
            registry=reg,
        )
        self.telegram_api_errors = Counter(
            "newsbot_telegram_api_errors_total",
            "Failed Bot API calls by kind.",
            ["kind"],
            registry=reg,
        )
        self.storage_write_seconds = Histogram(
            "newsbot_storage_write_duration_seconds",
            "Duration of one durable storage write (temp file, fsync, rename).",
            buckets=_STORAGE_BUCKETS,
            registry=reg,
        )
        self.build_info = Gauge(
            "newsbot_build_info",
            "Always 1; the label carries the version.",
            ["version"],
            registry=reg,
        )
        self.build_info.labels(version=version).set(1)
        self.api_silence_seconds = Gauge(
            "newsbot_api_silence_seconds",
            "Seconds since the last successful Bot API call (since start if none yet).",
            registry=reg,
        )
        self.event_loop_lag_seconds = Gauge(
            "newsbot_event_loop_lag_seconds",
            "Worst event-loop lag measured in the recent window.",
            registry=reg,
        )
        self.healthy = Gauge(
            "newsbot_healthy", "1 while /healthz answers 200, else 0.", registry=reg
        )
        self.webhook_requests = Counter(
            "newsbot_webhook_requests_total",
            "POSTs to the webhook by outcome (accepted, forbidden, bad_request).",
            ["outcome"],
            registry=reg,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_requests.labels(outcome=outcome)
        for kind in ("rate_limited", "timeout", "network"):
            self.telegram_retries.labels(kind=kind)
        for mode in ("instant", "digest"):
            self.messages_delivered.labels(mode=mode)
        for reason in ("gone", "rejected", "retry_later"):
            self.delivery_failures.labels(reason=reason)
        for outcome in FEED_FETCH_OUTCOMES:
            self.feed_fetches.labels(outcome=outcome)
        for kind in TELEGRAM_ERROR_KINDS:
            self.telegram_api_errors.labels(kind=kind)
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

    def render(self) -> tuple[bytes, str]:
        """Serialise the registry for a scrape.

        Returns:
            The body in the Prometheus text exposition format, and its content type.

        """
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
