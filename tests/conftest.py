"""Fixtures shared by every test suite: settings, in-process clients, real server processes.

The helpers behind them live in tests/support.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import config
from galerakv.server.app import App
from tests.support.backends import (
    BACKENDS,
    GALERA_BALANCER_FIRST_ADDRESS,
    GALERA_FIRST_ADDRESS,
    GALERA_MAXSCALE_FIRST_ADDRESS,
)
from tests.support.configs import merge, write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess, trust


@pytest.fixture(scope="session")
def galera_api_cluster() -> Iterator[dict[str, Any]]:
    """One real 3-node Galera cluster for the API suite; its parsed galerakv.toml."""
    # imported here: the SQLite runs never load the cluster toolkit
    from tests.support.local_cluster import make_local_cluster

    with make_local_cluster(3, GALERA_FIRST_ADDRESS, "galerakv_api") as cluster:
        cluster.ok("up")
        data = cluster.data()
        data["__cluster__"] = cluster
        yield data


@pytest.fixture(scope="session")
def galera_balancer_api_cluster() -> Iterator[dict[str, Any]]:
    """A real 3-node Galera cluster behind HAProxy for the API suite; its parsed galerakv.toml."""
    from tests.support.local_cluster import make_local_cluster

    with make_local_cluster(3, GALERA_BALANCER_FIRST_ADDRESS, "galerakv_api_lb", balancer="haproxy") as cluster:
        cluster.ok("up")
        data = cluster.data()
        data["__cluster__"] = cluster
        yield data


@pytest.fixture(scope="session")
def galera_maxscale_api_cluster() -> Iterator[dict[str, Any]]:
    """A real 3-node Galera cluster behind MariaDB MaxScale for the API suite; its parsed galerakv.toml."""
    from tests.support.local_cluster import make_local_cluster

    with make_local_cluster(3, GALERA_MAXSCALE_FIRST_ADDRESS, "galerakv_api_mxs", balancer="maxscale") as cluster:
        cluster.ok("up")
        data = cluster.data()
        data["__cluster__"] = cluster
        yield data


BALANCED = {"mariadb-balancer": "galera_balancer_api_cluster", "mariadb-maxscale": "galera_maxscale_api_cluster"}


@pytest.fixture(params=BACKENDS)
def backend_variant(request: pytest.FixtureRequest) -> str:
    """One entry of BACKENDS (the test id); ``backend`` is the server.backend it runs.

    The MariaDB variants are marked ``cluster`` (see tests/support/backends.py).
    """
    return str(request.param)


@pytest.fixture
def backend(backend_variant: str) -> str:
    return backend_variant.split("-")[0]


@pytest.fixture
def backend_config(backend_variant: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The configuration tables that put the server on the current backend, on an empty store."""
    if backend_variant == "sqlite":
        return {"server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3")}}
    balanced = backend_variant in BALANCED
    data = dict(request.getfixturevalue(BALANCED.get(backend_variant, "galera_api_cluster")))
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


@pytest.fixture
def live_server(backend_config: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory of real server processes on the current backend; all stopped at the end.

    On a Galera backend (TLS clusters) the servers speak HTTPS with the certificate
    `galerakv cluster certs` made for them, and clients verify it against the cluster's CA.
    """
    started: list[ServerProcess] = []

    def factory(**extra: dict[str, Any]) -> ServerProcess:
        port = free_port()
        data = merge(backend_config, {"server": {"port": port, "host": "127.0.0.1"}})
        https = backend_config["server"]["backend"] == "mariadb" and data["cluster"].get("tls", True)
        if https:
            tls_dir = Path(data["cluster"]["state_dir"]) / "tls"
            trust(tls_dir / "ca.crt")
            data = merge(data, {"server": {"tls_cert": str(tls_dir / "http.crt"),
                                           "tls_key": str(tls_dir / "http.key")}})
        data = merge(data, extra)
        path = write_config(tmp_path / f"server-{port}.toml", data)
        server = ServerProcess(path, port, scheme="https" if https else "http")
        server.start()
        started.append(server)
        if https:  # verified by the client that just asked /healthz, against the cluster's CA
            assert server.log_path is not None and "serving on https://" in server.log_path.read_text()
        return server

    yield factory
    for server in started:
        server.stop()
