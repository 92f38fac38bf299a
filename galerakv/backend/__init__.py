"""Storage backends behind one abstract :class:`~galerakv.backend.base.Store`."""

from __future__ import annotations

from galerakv.backend.base import Store
from galerakv.config import Settings
from galerakv.errors import ConfigError, ConfigIssue

__all__ = ["Store", "create_store"]


def create_store(settings: Settings) -> Store:
    """The store ``[server] backend`` names, not yet opened."""
    if settings.server.backend == "sqlite":
        from galerakv.backend.sqlite import SQLiteStore

        return SQLiteStore(settings.server.sqlite_path, settings.server.sqlite_synchronous)
    raise ConfigError([ConfigIssue(
        str(settings.source or "<defaults>"), "server.backend", settings.server.backend,
        "the MariaDB Galera backend is not available in this version yet",
        'use backend = "sqlite" for now')])
