"""Fixtures of the real-cluster tests; the clusters themselves are tests/support/local_cluster.py.

State lives under /var/tmp/galerakv-tests/<random>/ (mode 0755): mariadbd runs
as the mysql user, which cannot enter pytest's own 0700 temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.local_cluster import LocalCluster, skip_reason
from tests.support.ssh_hosts import (
    SSH_BALANCER_ADDRESS,
    SSH_HOST_ADDRESSES,
    SSH_SPARE_ADDRESSES,
    SshHosts,
    ssh_hosts,
)
from tests.support.state_dirs import state_root


@pytest.fixture(scope="session")
def ssh_test_hosts() -> Iterator[SshHosts]:
    """Hosts that behave like separate machines (their own sshd, their own files): three for
    the nodes on 127.0.0.61-63, one for the balancer (.65) and two spares (.66, .67); shared by the tests
    that run on the ssh transport, one cluster at a time."""
    with ssh_hosts(SSH_HOST_ADDRESSES, state_root("ssh-state-") / "state",
                   [SSH_BALANCER_ADDRESS, *SSH_SPARE_ADDRESSES]) as hosts:
        yield hosts


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalCluster]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    made: list[LocalCluster] = []

    def make(count: int, first_address: str, balancer: str = "none", transport: str = "local") -> LocalCluster:
        if transport == "ssh":  # one node per test host; their addresses replace first_address
            hosts: SshHosts = request.getfixturevalue("ssh_test_hosts")
            assert count == len(hosts.addresses)
            cluster = LocalCluster.create_ssh(hosts, cluster_name="galerakv_test", prefix="c-ssh-",
                                              balancer=balancer)
        else:
            cluster = LocalCluster.create(count, first_address, cluster_name="galerakv_test", prefix="c-",
                                          balancer=balancer)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.destroy()
