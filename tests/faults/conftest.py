"""Fixtures of the fault tests: one real 3-node Galera cluster with a real ``galerakv serve`` in front.

What they hurt and check it with is tests/support/faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faults import FaultCluster
from tests.support.local_cluster import make_local_cluster

FIRST_ADDRESS = "127.0.0.71"


@pytest.fixture(scope="package")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    """One real 3-node cluster at 127.0.0.71-73, shared by every module here."""
    with make_local_cluster(3, FIRST_ADDRESS, "galerakv_faults") as cluster:
        cluster.ok("up")
        fc = FaultCluster(cluster, cluster.data(), tmp_path_factory.mktemp("faults"))
        try:
            yield fc
        finally:
            fc.stop_servers()


@pytest.fixture
def fault_cluster(faults: FaultCluster) -> Iterator[FaultCluster]:
    """The fault cluster, healthy at the start of each test; servers stopped after it."""
    faults.restore()
    try:
        yield faults
    finally:
        faults.stop_servers()
