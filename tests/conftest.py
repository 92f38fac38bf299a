"""Fixtures shared by every test suite: settings, in-process clients, real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from galerakv import config
from galerakv.server.app import App

# Every backend the one API suite runs against; the suite itself does not
# change. "mariadb" runs on one real 3-node Galera cluster shared by the session
# (route = "nodes"), emptied before each test. "mariadb-balancer" runs on a second
# cluster behind HAProxy (route = "balancer": the server knows only the balancer's ports).
BACKENDS = ["sqlite", "mariadb", "mariadb-balancer"]
GALERA_FIRST_ADDRESS = "127.0.0.51"
GALERA_BALANCER_FIRST_ADDRESS = "127.0.0.55"  # HAProxy listens on 127.0.0.54


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture(scope="session")
def galera_api_cluster() -> Iterator[dict[str, Any]]:
    """One real 3-node Galera cluster for the API suite; its parsed galerakv.toml."""
    from tests.cluster.conftest import make_local_cluster

    with make_local_cluster(3, GALERA_FIRST_ADDRESS, "galerakv_api") as cluster:
        cluster.ok("up")
        data = tomllib.loads(cluster.config.read_text())
        data["cluster"]["state_dir"] = str(cluster.state_dir)
        data["__cluster__"] = cluster
        yield data


@pytest.fixture(scope="session")
def galera_balancer_api_cluster() -> Iterator[dict[str, Any]]:
    """A real 3-node Galera cluster behind HAProxy for the API suite; its parsed galerakv.toml."""
    from tests.cluster.conftest import make_local_cluster

    with make_local_cluster(3, GALERA_BALANCER_FIRST_ADDRESS, "galerakv_api_lb", balancer="haproxy") as cluster:
        cluster.ok("up")
        data = tomllib.loads(cluster.config.read_text())
        data["cluster"]["state_dir"] = str(cluster.state_dir)
        data["__cluster__"] = cluster
        yield data


@pytest.fixture(params=BACKENDS)
def backend_variant(request: pytest.FixtureRequest) -> str:
    """One entry of BACKENDS (the test id); ``backend`` is the server.backend it runs."""
    return str(request.param)


@pytest.fixture
def backend(backend_variant: str) -> str:
    return backend_variant.split("-")[0]


@pytest.fixture
def backend_config(backend_variant: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The configuration tables that put the server on the current backend, on an empty store."""
    if backend_variant == "sqlite":
        return {"server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3")}}
    balanced = backend_variant == "mariadb-balancer"
    data = dict(request.getfixturevalue("galera_balancer_api_cluster" if balanced else "galera_api_cluster"))
    cluster = data.pop("__cluster__")
    # start every test on an empty table (it does not exist before the first server starts)
    cluster.cli("sql", "--node", "db1", "-e", "DELETE FROM galerakv.kv")
    return merge(data, {"server": {"backend": "mariadb", "route": "balancer" if balanced else "nodes"}})


@pytest.fixture
def make_app(backend_config: dict[str, Any], tmp_path: Path) -> Callable[..., App]:
    """Build an App on the current backend; keyword tables override the config."""

    def factory(**extra: dict[str, Any]) -> App:
        data = merge(backend_config, extra)
        return App(config.parse(data, source=tmp_path / "galerakv.toml"))

    return factory


@pytest.fixture
async def client(make_app: Callable[..., App]) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client on a fresh store of the current backend."""
    app = make_app()
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://galerakv") as c:
            yield c
    finally:
        await app.shutdown()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A real ``galerakv serve`` process on a loopback port."""

    config_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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


@pytest.fixture
def live_server(backend_config: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory of real server processes on the current backend; all stopped at the end."""
    started: list[ServerProcess] = []

    def factory(**extra: dict[str, Any]) -> ServerProcess:
        port = free_port()
        data = merge(backend_config, {"server": {"port": port, "host": "127.0.0.1"}})
        data = merge(data, extra)
        path = write_config(tmp_path / f"server-{port}.toml", data)
        server = ServerProcess(path, port)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
