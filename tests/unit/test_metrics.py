"""The Prometheus text exposition of services.metrics."""

from __future__ import annotations

import pytest

from services import metrics


def test_counters_are_declared_typed_and_shown_at_zero_before_they_move() -> None:
    text = metrics.render({}, [])
    for name in metrics.COUNTERS:
        assert f"# TYPE {name} counter" in text
    assert "\nmtc_notifications_received_total 0\n" in text


def test_labelled_series_and_gauges() -> None:
    key = metrics.counter_name("mtc_provider_errors_total", reason="graph.throttled")
    text = metrics.render(
        {key: 3, "mtc_notifications_received_total": 12},
        [
            metrics.Gauge("mtc_sync_lag_seconds", "Lag.", 1.5),
            metrics.Gauge("mtc_queue_depth", "Q.", 4),
        ],
    )
    lines = text.splitlines()
    assert 'mtc_provider_errors_total{reason="graph.throttled"} 3' in lines
    assert "mtc_notifications_received_total 12" in lines
    assert "# TYPE mtc_sync_lag_seconds gauge" in lines
    assert "mtc_sync_lag_seconds 1.500" in lines
    assert "mtc_queue_depth 4" in lines
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    name = metrics.counter_name("mtc_sync_runs_total", kind='a"b\\c\n', result="ok")
    assert name == 'mtc_sync_runs_total{kind="a\\"b\\\\c\\n",result="ok"}'


def test_an_undeclared_counter_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="undeclared"):
        metrics.counter_name("mtc_typo_total")
