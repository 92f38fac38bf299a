"""Fixtures of the real-cluster tests; the clusters themselves are tests/support/local_cluster.py.

State lives under /var/tmp/galerakv-tests/<random>/ (mode 0755): mariadbd runs
as the mysql user, which cannot enter pytest's own 0700 temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.local_cluster import LocalCluster, skip_reason


@pytest.fixture
def make_cluster() -> Iterator[Callable[[int, str], LocalCluster]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    made: list[LocalCluster] = []

    def make(count: int, first_address: str, balancer: str = "none") -> LocalCluster:
        cluster = LocalCluster.create(count, first_address, cluster_name="galerakv_test", prefix="c-",
                                      balancer=balancer)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.destroy()
