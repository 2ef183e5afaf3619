"""Metrics: names, types and labels as scraped, and isolation between instances."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.services.metrics import FEED_FETCH_OUTCOMES, TELEGRAM_ERROR_KINDS, Metrics


def _families(metrics: Metrics) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    """Parse a real render() with prometheus_client's own parser: name -> (type, samples)."""
    body, _ = metrics.render()
    return {
        fam.name: (fam.type, [(s.name, dict(s.labels), s.value) for s in fam.samples])
        for fam in text_string_to_metric_families(body.decode())
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_documented_metric_is_exported_with_its_type() -> None:
    fams = _families(Metrics(process_metrics=False))
    expected = {
        "newsbot_news_requests": "counter",
        "newsbot_news_rate_limited": "counter",
        "newsbot_feed_fetches": "counter",
        "newsbot_feed_fetch_duration_seconds": "histogram",
        "newsbot_digests_sent": "counter",
        "newsbot_items_sent": "counter",
        "newsbot_telegram_api_errors": "counter",
        "newsbot_storage_write_duration_seconds": "histogram",
        "newsbot_build_info": "gauge",
        "newsbot_api_silence_seconds": "gauge",
        "newsbot_event_loop_lag_seconds": "gauge",
        "newsbot_healthy": "gauge",
        "newsbot_webhook_requests": "counter",
    }
    assert {name: fams[name][0] for name in expected} == expected
    assert not [n for n in fams if n.startswith("process_")]


def test_counters_render_with_total_suffix_and_values() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.news_requests.inc()
    metrics.news_requests.inc()
    metrics.news_rate_limited.inc()
    metrics.digests_sent.inc(3)
    metrics.items_sent.inc(7)
    body, content_type = metrics.render()
    text = body.decode()
    assert "newsbot_news_requests_total 2.0" in text
    assert "newsbot_news_rate_limited_total 1.0" in text
    assert "newsbot_digests_sent_total 3.0" in text
    assert "newsbot_items_sent_total 7.0" in text
    assert content_type.startswith("text/plain")
    assert "version=" in content_type


def test_labelled_counters_are_present_at_zero_before_any_event() -> None:
    metrics = Metrics(process_metrics=False)
    for outcome in FEED_FETCH_OUTCOMES:
        assert _value(metrics, "newsbot_feed_fetches_total", outcome=outcome) == 0.0
    for kind in TELEGRAM_ERROR_KINDS:
        assert _value(metrics, "newsbot_telegram_api_errors_total", kind=kind) == 0.0


def test_labelled_counters_count_per_label() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.feed_fetches.labels(outcome="ok").inc()
    metrics.feed_fetches.labels(outcome="timeout").inc()
    metrics.feed_fetches.labels(outcome="timeout").inc()
    metrics.feed_fetches.labels(outcome="some_new_kind").inc()
    metrics.telegram_api_errors.labels(kind="rate_limited").inc()
    samples = _families(metrics)["newsbot_feed_fetches"][1]
    by_outcome = {labels["outcome"]: v for name, labels, v in samples if name.endswith("_total")}
    assert by_outcome["ok"] == 1.0
    assert by_outcome["timeout"] == 2.0
    assert by_outcome["some_new_kind"] == 1.0
    assert by_outcome["not_modified"] == 0.0
    assert _value(metrics, "newsbot_telegram_api_errors_total", kind="rate_limited") == 1.0
    assert _value(metrics, "newsbot_telegram_api_errors_total", kind="forbidden") == 0.0


def test_histograms_record_count_sum_and_buckets() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.feed_fetch_seconds.observe(0.3)
    metrics.feed_fetch_seconds.observe(12.0)
    metrics.storage_write_seconds.observe(0.004)
    name = "newsbot_feed_fetch_duration_seconds"
    assert _value(metrics, f"{name}_count") == 2.0
    assert _value(metrics, f"{name}_sum") == pytest.approx(12.3)
    assert _value(metrics, f"{name}_bucket", le="0.5") == 1.0
    assert _value(metrics, f"{name}_bucket", le="20.0") == 2.0
    assert _value(metrics, f"{name}_bucket", le="+Inf") == 2.0
    storage = "newsbot_storage_write_duration_seconds"
    assert _value(metrics, f"{storage}_bucket", le="0.0025") == 0.0
    assert _value(metrics, f"{storage}_bucket", le="0.005") == 1.0


def test_storage_write_observer_shape_matches_storage_contract() -> None:
    """StorageService.write_observer is a Callable[[float], None]; observe fits it as is."""
    metrics = Metrics(process_metrics=False)
    observer = metrics.storage_write_seconds.observe
    observer(0.01)
    assert _value(metrics, "newsbot_storage_write_duration_seconds_count") == 1.0


def test_two_instances_do_not_collide_or_share_values() -> None:
    first = Metrics()
    second = Metrics()  # would raise "Duplicated timeseries" with a shared registry
    first.news_requests.inc(5)
    first.telegram_api_errors.labels(kind="timeout").inc()
    assert _value(first, "newsbot_news_requests_total") == 5.0
    assert _value(second, "newsbot_news_requests_total") == 0.0
    assert _value(second, "newsbot_telegram_api_errors_total", kind="timeout") == 0.0


def test_nothing_is_registered_in_the_global_registry() -> None:
    Metrics()
    assert b"newsbot_" not in generate_latest(REGISTRY)


def test_process_metrics_are_included_by_default() -> None:
    fams = _families(Metrics(version="1.2.3"))
    assert "process_resident_memory_bytes" in fams
    assert "python_info" in fams
    build = fams["newsbot_build_info"][1]
    assert build == [("newsbot_build_info", {"version": "1.2.3"}, 1.0)]
