"""Bad starting conditions for the MariaDB backend: cluster down, wrong password, no secrets file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import secrets
from tests.support.configs import merge, write_config
from tests.support.faults import FaultCluster
from tests.support.net import free_port
from tests.support.server import wait_ready

pytestmark = pytest.mark.cluster


def serve_once(fc: FaultCluster, tmp_path: Path, state_dir: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``galerakv serve`` on the cluster's nodes but with ``state_dir``'s secrets; it must exit."""
    data: dict[str, Any] = merge(fc.data, {"cluster": {"state_dir": str(state_dir)},
                                           "server": {"backend": "mariadb", "route": "nodes",
                                                      "port": free_port()}})
    config = write_config(tmp_path / "galerakv.toml", data)
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    return result, state_dir / "secrets.toml"


def test_missing_secrets_file_is_a_clear_startup_error(fault_cluster: FaultCluster, tmp_path: Path) -> None:
    state = tmp_path / "empty-state"
    state.mkdir()
    result, path = serve_once(fault_cluster, tmp_path, state)
    print(f"\n[missing secrets] exit={result.returncode}: {result.stderr.strip()}")
    assert result.returncode != 0
    assert str(path) in result.stderr
    assert "galerakv cluster up" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_wrong_password_is_a_clear_startup_error(fault_cluster: FaultCluster, tmp_path: Path) -> None:
    real = secrets.load(fault_cluster.cluster.state_dir / "secrets.toml")
    assert real is not None
    state = tmp_path / "other-state"
    wrong = secrets.Secrets(admin=real.admin, app=secrets.Account(real.app.user, "not-the-password"),
                            monitor=real.monitor, sst=real.sst)
    secrets.write_private(state / "secrets.toml", secrets.dumps(wrong))
    (state / "tls").mkdir()  # the cluster's CA: the TLS handshake succeeds, the login is what fails
    shutil.copy(fault_cluster.cluster.state_dir / "tls" / "ca.crt", state / "tls" / "ca.crt")
    result, path = serve_once(fault_cluster, tmp_path, state)
    print(f"\n[wrong password] exit={result.returncode}: {result.stderr.strip()}")
    assert result.returncode != 0
    assert str(path) in result.stderr
    assert "access denied" in result.stderr.lower()
    assert "not-the-password" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_cluster_down_at_start_then_recovers_by_itself(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    fc.cluster.ok("down")
    try:
        server = fc.server_unready()
        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.headers.get("retry-after")
        assert ready.headers["content-type"].startswith("application/problem+json")
        assert ready.json()["code"] == "backend_unavailable" and ready.json()["ready"] is False
        detail = ready.json()["detail"]
        assert "no Synced Galera node" in detail and "unreachable" in detail, detail
        for method in ("PUT", "GET"):
            r = httpx.request(method, server.url + "/v1/ns/down/kv/k", content=b"v" if method == "PUT" else None,
                              timeout=30)
            assert r.status_code == 503, (method, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["code"] == "backend_unavailable"
        print(f"\n[cluster down] /readyz 503: {detail}")
    finally:
        fc.cluster.ok("up")
    began = time.monotonic()
    wait_ready(server, timeout=30)
    put = httpx.put(server.url + "/v1/ns/down/kv/k", content=b"back", timeout=30)
    assert put.status_code == 201, put.text
    got = httpx.get(server.url + "/v1/ns/down/kv/k", timeout=30)
    assert got.status_code == 200 and got.content == b"back"
    print(f"[cluster down] ready again {time.monotonic() - began:.1f} s after `cluster up` returned")


def test_missing_ca_is_a_clear_startup_error(fault_cluster: FaultCluster, tmp_path: Path) -> None:
    """TLS to MariaDB needs the cluster's CA: without it the server says which file, before serving."""
    state = tmp_path / "no-ca-state"
    state.mkdir()
    shutil.copy(fault_cluster.cluster.state_dir / "secrets.toml", state / "secrets.toml")
    result, _ = serve_once(fault_cluster, tmp_path, state)
    assert result.returncode != 0 and "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{state / 'tls' / 'ca.crt'}: the CA certificate does not exist" in lines[0], lines
    assert "galerakv cluster certs" in lines[0]
