"""Directories for cluster state in tests: outside pytest's 0700 tmp_path, so the mysql user may enter them.

mariadbd runs as the mysql user, which cannot enter pytest's own temporary
directory (/tmp/pytest-of-<user>/ is 0700), and the doctor reports exactly
that. Root (who starts real nodes) keeps its state under BASE; any other user
under a sibling of its own, BASE-<uid>, since it can neither write into nor
chmod a BASE that root created.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE = Path("/var/tmp/galerakv-tests")


def state_base() -> Path:
    """BASE for root; /var/tmp/galerakv-tests-<uid> for anyone else."""
    uid = os.geteuid()
    return BASE if uid == 0 else BASE.with_name(f"{BASE.name}-{uid}")


def state_root(prefix: str) -> Path:
    """A fresh directory (mode 0755) under ``state_base()``, which is made first if missing (mode 0755)."""
    base = state_base()
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    root.chmod(0o755)
    return root
