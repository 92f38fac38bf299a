"""The backends the one API suite runs against, and where their Galera clusters live.

"sqlite" runs anywhere, as any user. "mariadb" runs on one real 3-node Galera
cluster shared by the session (route = "nodes"), emptied before each test.
"mariadb-balancer" runs on a second cluster behind HAProxy (route = "balancer":
the server knows only the balancer's ports). "mariadb-maxscale" is the same
behind MariaDB MaxScale, marked ``maxscale`` too and skipped where no
``maxscale`` binary is on PATH (it is in no package registry here: build it with
scripts/build-maxscale, docs/maxscale.md). All start real mariadbd nodes
(root, MariaDB + Galera installed), so their variants carry the ``cluster``
marker: ``pytest -m "not cluster"`` runs the suite on SQLite alone.
"""

from __future__ import annotations

import shutil

import pytest

MAXSCALE_MISSING = ("no maxscale binary on PATH: MariaDB MaxScale is in no package registry here; "
                    "build it with scripts/build-maxscale (docs/maxscale.md)")
requires_maxscale = pytest.mark.skipif(shutil.which("maxscale") is None, reason=MAXSCALE_MISSING)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.cluster),
    pytest.param("mariadb-balancer", id="mariadb-balancer", marks=pytest.mark.cluster),
    pytest.param("mariadb-maxscale", id="mariadb-maxscale",
                 marks=[pytest.mark.cluster, pytest.mark.maxscale, requires_maxscale]),
]
GALERA_FIRST_ADDRESS = "127.0.0.51"
GALERA_BALANCER_FIRST_ADDRESS = "127.0.0.55"  # HAProxy listens on 127.0.0.54
GALERA_MAXSCALE_FIRST_ADDRESS = "127.0.0.131"  # MaxScale listens on 127.0.0.130
