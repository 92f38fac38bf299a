"""Start the HTTP server (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from galerakv import config, tls
from galerakv.backend import create_store, credential
from galerakv.config import Settings
from galerakv.errors import GalerakvError
from galerakv.paths import HTTPS_CERT_CREDENTIAL, HTTPS_KEY_CREDENTIAL
from galerakv.server import metrics
from galerakv.server.app import App
from galerakv.server.dashboard import ClusterProbe

ProbeFor = Callable[[Settings], ClusterProbe | None]
"""What reads the cluster for the dashboard, given the settings (the command line's: the toolkit)."""


def create_app(probe_for: ProbeFor | None = None) -> App:
    """Factory for worker processes: settings come from ``$GALERAKV_CONFIG`` (set by :func:`run`).

    With several workers, ``$GALERAKV_METRICS_DIR`` (also set by :func:`run`) is where the
    workers share their metrics, so that ``/metrics`` answers the sums over all of them.
    """
    _die_with_parent()
    shared = os.environ.get(metrics.ENV_VAR) or None
    settings = config.load(os.environ.get(config.ENV_VAR) or None)
    return App(settings, metrics=metrics.Metrics(shared), probe=probe_for(settings) if probe_for else None)


def _die_with_parent() -> None:
    """Have the kernel kill this worker when the serving process dies, even by kill -9.

    Without it a worker outlives a killed supervisor and keeps serving on the
    port (SO_REUSEPORT), so "the server was killed" would not be true.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


async def _preflight(settings: Settings) -> None:
    """Open and close the store once, so a bad path or dead database is reported up front."""
    store = create_store(settings)
    await store.open()
    await store.close()


def run(settings: Settings, host: str | None = None, port: int | None = None,
        workers: int | None = None, *, factory: str = "galerakv.server.run:create_app",
        probe_for: ProbeFor | None = None) -> None:
    """Serve until stopped. Worker processes build their app with ``factory`` (a module:function
    path); one process builds it here, with ``probe_for``'s probe."""
    try:
        asyncio.run(_preflight(settings))
    except GalerakvError as exc:
        raise SystemExit(f"error: {exc}") from None
    host = host or settings.server.host
    port = port or settings.server.port
    workers = workers or settings.server.workers
    https = https_files(settings, host)
    level = settings.server.log_level
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    engine = settings.server.engine
    print(f"galerakv serving on {'https' if https else 'http'}://{host}:{port} ({settings.server.backend}, {engine}, "
          f"{workers} worker{'s' if workers > 1 else ''})", flush=True)
    # worker processes build their App from the same file
    if settings.source is not None:
        os.environ[config.ENV_VAR] = str(settings.source)
    else:
        os.environ.pop(config.ENV_VAR, None)
    # several workers share their metrics in a directory of this run, removed when it ends
    with metrics.shared_directory(workers):
        if engine == "granian":
            _run_granian(settings, host, port, workers, factory, https)
        else:
            _run_uvicorn(settings, host, port, workers, factory, probe_for, https)


def https_files(settings: Settings, host: str) -> tuple[Path, Path] | None:
    """``server.tls_cert`` and ``tls_key`` as paths, checked (readable, the key the certificate's,
    not expired, for ``host``) before anything listens; None for plain HTTP."""
    if not settings.server.tls_cert:
        return None
    cert = credential(HTTPS_CERT_CREDENTIAL, settings.base_dir / settings.server.tls_cert)
    key = credential(HTTPS_KEY_CREDENTIAL, settings.base_dir / settings.server.tls_key)
    try:
        tls.load_pair(cert, key, host=host)
    except tls.TlsError as exc:
        raise SystemExit(f"error: server.tls_cert: {exc}") from None
    return cert, key


def _run_granian(settings: Settings, host: str, port: int, workers: int, factory: str,
                 https: tuple[Path, Path] | None) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    tls_args: dict[str, Any] = {"ssl_cert": https[0], "ssl_key": https[1]} if https else {}
    Granian(
        factory, factory=True, interface=Interfaces.ASGI, address=host, port=port,
        workers=workers, http=HTTPModes.http1, loop=Loops.uvloop, websockets=False,
        log_level=settings.server.log_level, log_access=settings.server.access_log,  # type: ignore[arg-type]
        **tls_args,
    ).serve()


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int, factory: str,
                 probe_for: ProbeFor | None, https: tuple[Path, Path] | None) -> None:
    import uvicorn

    common: dict[str, Any] = {
        "host": host, "port": port, "log_level": settings.server.log_level,
        "access_log": settings.server.access_log, "loop": "uvloop", "http": "httptools", "lifespan": "on",
        "server_header": False, "proxy_headers": False, "date_header": False}
    if https:
        common.update(ssl_certfile=str(https[0]), ssl_keyfile=str(https[1]))
    if workers > 1:
        uvicorn.run(factory, factory=True, workers=workers, **common)
    else:
        uvicorn.run(App(settings, probe=probe_for(settings) if probe_for else None), **common)
