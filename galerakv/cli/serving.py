"""``galerakv serve`` with the toolkit behind the dashboard's cluster page.

The server never imports the cluster toolkit (ARCHITECTURE.md); the command line, which sees
both, hands the server a probe that reads the cluster as ``galerakv cluster status`` and
``galerakv cluster doctor`` do.
"""

from __future__ import annotations

from typing import Any

from galerakv import config
from galerakv.cluster.operations.overview import overview
from galerakv.cluster.transport import Transport, make_transport
from galerakv.config import Settings
from galerakv.errors import GalerakvError
from galerakv.server import run as _run
from galerakv.server.app import App
from galerakv.server.dashboard import ClusterProbe

FACTORY = "galerakv.cli.serving:create_app"


def cluster_probe(settings: Settings) -> ClusterProbe | None:
    """The dashboard's reading of the cluster: a Galera backend with nodes in galerakv.toml (or in
    the file ``ui.cluster_config`` names, the one the cluster was deployed from)."""
    if settings.server.backend != "mariadb" or not settings.ui.enabled:
        return None
    if settings.ui.cluster_config:
        settings = config.load(settings.base_dir / settings.ui.cluster_config)
    if not settings.cluster.nodes:
        return None
    transport: list[Transport] = []

    def probe() -> dict[str, Any]:
        if not transport:
            transport.append(make_transport(settings))
        return overview(settings, transport[0], with_doctor=True).to_dict()

    return probe


def create_app() -> App:
    """Factory for worker processes (see :func:`galerakv.server.run.create_app`)."""
    return _run.create_app(cluster_probe)


def serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> None:
    try:
        cluster_probe(settings)  # a bad ui.cluster_config is said before anything starts
    except GalerakvError as exc:
        raise SystemExit(f"error: ui.cluster_config: {exc}") from None
    _run.run(settings, host=host, port=port, workers=workers, factory=FACTORY, probe_for=cluster_probe)
