"""galerakv.toml data for tests: merged tables and files written from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, table by table (neither is changed)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as TOML to ``path``; ``path``."""
    path.write_text(tomli_w.dumps(data))
    return path
