"""Start the HTTP server (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from galerakv import config
from galerakv.backend import create_store
from galerakv.config import Settings
from galerakv.errors import GalerakvError
from galerakv.server.app import App


def create_app() -> App:
    """Factory for worker processes: settings come from ``$GALERAKV_CONFIG`` (set by :func:`run`)."""
    return App(config.load(os.environ.get(config.ENV_VAR) or None))


async def _preflight(settings: Settings) -> None:
    """Open and close the store once, so a bad path or dead database is reported up front."""
    store = create_store(settings)
    await store.open()
    await store.close()


def run(settings: Settings, host: str | None = None, port: int | None = None,
        workers: int | None = None) -> None:
    import uvicorn

    try:
        asyncio.run(_preflight(settings))
    except GalerakvError as exc:
        raise SystemExit(f"error: {exc}") from None
    host = host or settings.server.host
    port = port or settings.server.port
    workers = workers or settings.server.workers
    level = settings.server.log_level
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(f"galerakv serving on http://{host}:{port} ({settings.server.backend}, "
          f"{workers} worker{'s' if workers > 1 else ''})", flush=True)
    common: dict[str, Any] = {"host": host, "port": port, "log_level": level, "access_log": settings.server.access_log,
              "loop": "uvloop", "http": "httptools", "lifespan": "on", "server_header": False, "proxy_headers": False,
              "date_header": False}
    if workers > 1:
        if settings.source is not None:
            os.environ[config.ENV_VAR] = str(settings.source)
        else:
            os.environ.pop(config.ENV_VAR, None)
        uvicorn.run("galerakv.server.run:create_app", factory=True, workers=workers, **common)
    else:
        uvicorn.run(App(settings), **common)
