"""Storage backends behind one abstract :class:`~galerakv.backend.base.Store`."""

from __future__ import annotations

import os
from pathlib import Path

from galerakv.backend.base import Store
from galerakv.config import Settings
from galerakv.paths import CA_CREDENTIAL, SECRETS_CREDENTIAL, StatePaths

__all__ = ["Store", "create_store", "credential"]


def credential(name: str, default: Path) -> Path:
    """``default``, or systemd's copy of it when the server runs as ``galerakv.service``: the unit
    hands root's files over as credentials (``LoadCredential=``) in ``$CREDENTIALS_DIRECTORY``, so
    the unprivileged server never reads them in place."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / name).is_file():
        return Path(directory) / name
    return default


def create_store(settings: Settings) -> Store:
    """The store ``[server] backend`` names, not yet opened."""
    if settings.server.backend == "sqlite":
        from galerakv.backend.sqlite import SQLiteStore

        return SQLiteStore(settings.server.sqlite_path, settings.server.sqlite_synchronous)
    from galerakv import secrets
    from galerakv.backend.mariadb import MariaDBStore
    from galerakv.errors import BackendUnavailable, ClusterError

    # under systemd (`galerakv service install`) the secrets come as a credential: the server
    # runs as its own user and never reads root's file
    path = credential(SECRETS_CREDENTIAL, StatePaths.of(settings).secrets)
    try:
        found = secrets.load(path)
    except ClusterError as exc:
        raise BackendUnavailable(str(exc)) from exc
    if found is None:
        raise BackendUnavailable(
            f"the secrets file {path} does not exist: it holds the application user's password and is "
            "written by `galerakv cluster up`; run that first, or point --config at the cluster's galerakv.toml")
    context = None
    if settings.cluster.tls:  # TLS to every node, checked against the cluster's CA and the address dialled
        from galerakv import tls
        from galerakv.paths import TlsPaths

        try:
            context = tls.client_context(credential(CA_CREDENTIAL, TlsPaths.of(settings).ca_cert))
        except tls.TlsError as exc:
            raise BackendUnavailable(f"{exc}: the cluster's CA is needed for TLS to MariaDB "
                                     "(cluster.tls = true); `galerakv cluster certs` makes it") from exc
    return MariaDBStore(settings, found.app.user, found.app.password, tls=context)
