"""Stand-ins for what ``galerakv cluster install`` puts on a machine.

Unit tests that exercise the toolkit's checks (the doctor on rendered files,
the balancer's preflight) must pass on a fresh machine as well as on one with
MariaDB, Galera and HAProxy installed, and must not be skipped when they are
missing. These helpers give them the real thing when it is there and an inert
stand-in when it is not; nothing here ever runs.
"""

from __future__ import annotations

from pathlib import Path

from galerakv.cluster.render.node import find_provider


def fake_executable(directory: Path, name: str) -> Path:
    """An executable ``directory/name`` that exits 1 (for ``shutil.which``; never meant to run)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\necho 'a stand-in from tests/support/machine.py' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def galera_provider(directory: Path) -> str:
    """This machine's libgalera_smm.so, or an empty stand-in file under ``directory`` when Galera is missing."""
    found = find_provider()
    if found is not None:
        return found
    directory.mkdir(parents=True, exist_ok=True)
    stand_in = directory / "libgalera_smm.so"
    stand_in.touch()
    return str(stand_in)
