"""Real ``galerakv serve`` processes on loopback ports, and what tests ask them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.state_dirs import state_root


@dataclass
class ServerProcess:
    """A real ``galerakv serve`` process on a loopback port."""

    config_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    scheme: str = "http"  # "https" with server.tls_cert (clients verify through SSL_CERT_FILE)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.log_path = self.config_path.with_suffix(".log")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "galerakv.cli.main", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not answer within {timeout}s:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        """kill -9 the server; its worker processes must die with it (nothing answers afterwards)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=0.5)
            except httpx.TransportError:
                return
            time.sleep(0.05)
        raise AssertionError("a worker process still answers after kill -9 of the server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def wait_ready(server: ServerProcess, timeout: float = 30.0) -> httpx.Response:
    """Poll ``/readyz`` until it answers 200 (its response), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(server.url + "/readyz", timeout=5)
        if r.status_code == 200:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{server.url} not ready after {timeout:.0f} s: {r.status_code} {r.text}")
        time.sleep(0.2)


def writer_of(server: ServerProcess) -> str:
    """The Galera node a MariaDB-backed server writes to now (from ``/v1/status``)."""
    status = httpx.get(server.url + "/v1/status", timeout=10).json()
    writer = status["backend"]["writer"]
    assert writer, status
    return str(writer)


_BUNDLE: Path | None = None


def trust(ca: Path) -> None:
    """Have every HTTPS client of this test run (httpx, galerakv.client, the `galerakv` commands
    the tests start) verify against ``ca`` too: ``SSL_CERT_FILE`` names a bundle of the clusters' CAs."""
    global _BUNDLE
    if _BUNDLE is None:
        _BUNDLE = state_root("ca-bundle-") / "ca-bundle.pem"
        os.environ["SSL_CERT_FILE"] = str(_BUNDLE)
    bundle = _BUNDLE
    text = ca.read_text()
    if text not in (bundle.read_text() if bundle.exists() else ""):
        with bundle.open("a") as f:
            f.write(text)
