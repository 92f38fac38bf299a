"""Storage backends behind one abstract :class:`~galerakv.backend.base.Store`."""

from __future__ import annotations

from galerakv.backend.base import Store
from galerakv.config import Settings
from galerakv.paths import StatePaths

__all__ = ["Store", "create_store"]


def create_store(settings: Settings) -> Store:
    """The store ``[server] backend`` names, not yet opened."""
    if settings.server.backend == "sqlite":
        from galerakv.backend.sqlite import SQLiteStore

        return SQLiteStore(settings.server.sqlite_path, settings.server.sqlite_synchronous)
    from galerakv import secrets
    from galerakv.backend.mariadb import MariaDBStore
    from galerakv.errors import BackendUnavailable, ClusterError

    path = StatePaths.of(settings).secrets
    try:
        found = secrets.load(path)
    except ClusterError as exc:
        raise BackendUnavailable(str(exc)) from exc
    if found is None:
        raise BackendUnavailable(
            f"the secrets file {path} does not exist: it holds the application user's password and is "
            "written by `galerakv cluster up`; run that first, or point --config at the cluster's galerakv.toml")
    return MariaDBStore(settings, found.app.user, found.app.password)
