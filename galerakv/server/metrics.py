"""Prometheus metrics kept in plain dicts (cheap on the hot path) and rendered as text."""

from __future__ import annotations

import bisect
import os
import time
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_counts: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.purged = 0

    def observe(self, method: str, route: str, status: int, seconds: float,
                error_code: str | None) -> None:
        self.requests[(method, route, status)] += 1
        counts = self.latency_counts.get(route)
        if counts is None:
            counts = self.latency_counts[route] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[route] += seconds
        if error_code is not None:
            self.errors[(route, error_code)] += 1

    def render(self, extra_gauges: dict[str, float] | None = None) -> bytes:
        out: list[str] = []
        out += ["# HELP galerakv_requests_total HTTP requests by method, route and status.",
                "# TYPE galerakv_requests_total counter"]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(f'galerakv_requests_total{{method="{method}",route="{route}",'
                       f'status="{status}"}} {n}')
        out += ["# HELP galerakv_errors_total Error responses by route and problem code.",
                "# TYPE galerakv_errors_total counter"]
        for (route, code), n in sorted(self.errors.items()):
            out.append(f'galerakv_errors_total{{route="{route}",code="{code}"}} {n}')
        out += ["# HELP galerakv_request_duration_seconds Request latency by route.",
                "# TYPE galerakv_request_duration_seconds histogram"]
        for route, counts in sorted(self.latency_counts.items()):
            cumulative = 0
            for bound, n in zip(BUCKETS, counts, strict=False):
                cumulative += n
                out.append(f'galerakv_request_duration_seconds_bucket{{route="{route}",le="{bound}"}}'
                           f" {cumulative}")
            cumulative += counts[-1]
            out.append(f'galerakv_request_duration_seconds_bucket{{route="{route}",le="+Inf"}}'
                       f" {cumulative}")
            out.append(f'galerakv_request_duration_seconds_sum{{route="{route}"}}'
                       f" {self.latency_sum[route]:.6f}")
            out.append(f'galerakv_request_duration_seconds_count{{route="{route}"}} {cumulative}')
        out += ["# HELP galerakv_ttl_purged_total Expired entries removed by the background purge.",
                "# TYPE galerakv_ttl_purged_total counter",
                f"galerakv_ttl_purged_total {self.purged}",
                "# HELP galerakv_process_start_time_seconds When this worker started.",
                "# TYPE galerakv_process_start_time_seconds gauge",
                f'galerakv_process_start_time_seconds{{pid="{os.getpid()}"}} {self.started:.3f}']
        for name, value in sorted((extra_gauges or {}).items()):
            out += [f"# TYPE {name} gauge", f"{name} {value}"]
        return ("\n".join(out) + "\n").encode()
