"""The traffic page's arithmetic: quantiles from histogram buckets, and samples as differences."""

from __future__ import annotations

import pytest

from galerakv.server.dashboard import ROUTE, Traffic, quantile
from galerakv.server.metrics import BUCKETS, Metrics


def test_quantile_interpolates_inside_the_bucket() -> None:
    counts = [0] * (len(BUCKETS) + 1)
    counts[1] = 100  # all between 0.5 ms and 1 ms
    assert quantile(counts, 0.5) == pytest.approx(0.00075)
    assert quantile(counts, 0.99) == pytest.approx(0.0005 + 0.0005 * 0.99)
    assert quantile([0] * len(counts), 0.5) is None
    counts[-1] = 1000  # above the last bound: the last bound is all that is known
    assert quantile(counts, 0.99) == BUCKETS[-1]


def test_samples_are_differences_and_leave_the_dashboard_out() -> None:
    metrics = Metrics()
    traffic = Traffic(metrics, interval=1.0, window=3.0)
    traffic.sample(now=100.0)
    for _ in range(30):
        metrics.observe("GET", "/v1/ns/{ns}/kv/{key}", 200, 0.002, None)
    metrics.observe("GET", "/v1/ns/{ns}/kv/{key}", 404, 0.002, "not_found")
    for _ in range(50):
        metrics.observe("GET", ROUTE, 200, 0.001, None)
    traffic.sample(now=102.0)
    (first,) = traffic.samples
    assert first["rps"] == 15.5 and first["errors"] == {"not_found": 1}
    assert 1 < first["p50_ms"] <= 2.5 and 1 < first["p99_ms"] <= 2.5
    traffic.sample(now=103.0)
    assert traffic.samples[-1]["rps"] == 0 and traffic.samples[-1]["p50_ms"] is None
    for t in (104.0, 105.0, 106.0):
        traffic.sample(now=t)
    assert len(traffic.samples) == 3, "the ring keeps its window only"
    assert traffic.to_dict()["requests_total"] == 31
