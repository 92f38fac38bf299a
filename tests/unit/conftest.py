"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from galerakv.backend.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An opened SQLite store in a fresh file, closed after the test."""
    s = SQLiteStore(tmp_path / "kv.sqlite3")
    await s.open()
    try:
        yield s
    finally:
        await s.close()
