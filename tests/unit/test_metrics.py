"""galerakv.server.metrics: counting in one process, sums over shared worker files, the run directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from galerakv.server import metrics
from galerakv.server.metrics import Metrics

ROUTE = "/v1/ns/{ns}/kv/{key}"


def _value(text: str, series: str) -> int | None:
    m = re.search(rf"^{re.escape(series)} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("shared", [False, True])
def test_counts_histogram_and_errors(shared: bool, tmp_path: Path) -> None:
    m = Metrics(tmp_path if shared else None)
    m.observe("GET", ROUTE, 200, 0.0007, None)
    m.observe("GET", ROUTE, 200, 0.0005, None)  # on a bound: counted in that bucket (le)
    m.observe("GET", ROUTE, 404, 7.0, "not_found")  # past the last bound: +Inf only
    m.purged += 3
    text = m.render().decode()
    assert _value(text, f'galerakv_requests_total{{method="GET",route="{ROUTE}",status="200"}}') == 2
    assert _value(text, f'galerakv_requests_total{{method="GET",route="{ROUTE}",status="404"}}') == 1
    assert _value(text, f'galerakv_errors_total{{route="{ROUTE}",code="not_found"}}') == 1
    assert _value(text, f'galerakv_request_duration_seconds_bucket{{route="{ROUTE}",le="0.0005"}}') == 1
    assert _value(text, f'galerakv_request_duration_seconds_bucket{{route="{ROUTE}",le="0.001"}}') == 2
    assert _value(text, f'galerakv_request_duration_seconds_bucket{{route="{ROUTE}",le="5.0"}}') == 2
    assert _value(text, f'galerakv_request_duration_seconds_bucket{{route="{ROUTE}",le="+Inf"}}') == 3
    assert _value(text, f'galerakv_request_duration_seconds_count{{route="{ROUTE}"}}') == 3
    assert f'galerakv_request_duration_seconds_sum{{route="{ROUTE}"}} 7.001200\n' in text
    assert "galerakv_ttl_purged_total 3\n" in text
    assert f'galerakv_process_start_time_seconds{{pid="{os.getpid()}"}}' in text
    assert m.purged == 3


@pytest.mark.parametrize("shared", [False, True])
def test_many_series_grow_the_array(shared: bool, tmp_path: Path) -> None:
    m = Metrics(tmp_path if shared else None)
    for status in range(100, 400):  # 300 routes x (histogram + counter) > the initial array
        for n in range(status % 3 + 1):
            m.observe("PUT", f"/r{status}", status, 0.01, f"code{status}" if n == 0 else None)
    text = m.render().decode()
    for status in range(100, 400):
        route = f"/r{status}"
        assert _value(text, f'galerakv_requests_total{{method="PUT",route="{route}",status="{status}"}}') \
            == status % 3 + 1
        assert _value(text, f'galerakv_errors_total{{route="{route}",code="code{status}"}}') == 1
        assert _value(text, f'galerakv_request_duration_seconds_count{{route="{route}"}}') == status % 3 + 1


def test_workers_sum_their_counts(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path), Metrics(tmp_path)
    for _ in range(3):
        first.observe("GET", ROUTE, 200, 0.001, None)
    for _ in range(4):
        second.observe("GET", ROUTE, 200, 0.001, None)
    second.observe("PUT", ROUTE, 201, 0.001, None)
    second.purged += 2
    for m in (first, second):  # whichever answers the scrape
        text = m.render().decode()
        assert _value(text, f'galerakv_requests_total{{method="GET",route="{ROUTE}",status="200"}}') == 7
        assert _value(text, f'galerakv_requests_total{{method="PUT",route="{ROUTE}",status="201"}}') == 1
        assert _value(text, f'galerakv_request_duration_seconds_count{{route="{ROUTE}"}}') == 8
        assert "galerakv_ttl_purged_total 2\n" in text
    second.close()  # an exited worker's counts stay in the sums
    second.observe("GET", ROUTE, 200, 0.001, None)  # a request finishing late still counts
    text = first.render().decode()
    assert _value(text, f'galerakv_requests_total{{method="GET",route="{ROUTE}",status="200"}}') == 8
    assert len(list(metrics.read_workers(tmp_path))) == 2


def test_an_exited_or_dead_worker_has_no_start_time(tmp_path: Path) -> None:
    code = ("import sys; from galerakv.server.metrics import Metrics; "
            "m = Metrics(sys.argv[1]); m.observe('GET', '/healthz', 200, 0.001, None); print(m.started)")
    dead = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True, text=True)
    assert dead.returncode == 0
    here = Metrics(tmp_path)
    text = here.render().decode()
    assert re.findall(r"^galerakv_process_start_time_seconds\{pid=\"(\d+)\"\}", text, re.M) == [str(os.getpid())]
    assert _value(text, 'galerakv_requests_total{method="GET",route="/healthz",status="200"}') == 1


def test_shared_directory_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(metrics.tempfile, "tempdir", None)  # read $TMPDIR again
    assert metrics.directory_parent() == tmp_path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{metrics.DIR_PREFIX}{dead.pid}-abc"
    (stale / "sub").mkdir(parents=True)
    live = tmp_path / f"{metrics.DIR_PREFIX}{os.getpid()}-abc"
    live.mkdir()
    other = tmp_path / "galerakv-data"
    other.mkdir()
    with metrics.shared_directory(1) as none:
        assert none is None and metrics.ENV_VAR not in os.environ
    assert stale.exists()  # one worker: nothing shared, nothing swept
    with metrics.shared_directory(2) as path:
        assert path is not None and path.parent == tmp_path
        assert os.environ[metrics.ENV_VAR] == str(path)
        assert path.stat().st_mode & 0o777 == 0o700
        assert not stale.exists(), "the directory of a dead server is removed"
        assert live.exists() and other.exists()
        Metrics(path).observe("GET", "/metrics", 200, 0.001, None)
    assert not path.exists()
    assert metrics.ENV_VAR not in os.environ
