"""Routing decisions of the MariaDB backend, pure functions of probe results (no database)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from galerakv import config
from galerakv.backend.routing import Endpoint, Health, Router, choose_writer, endpoints, judge

SYNCED = {"wsrep_cluster_status": "Primary", "wsrep_ready": "ON", "wsrep_local_state": "4",
          "wsrep_local_state_comment": "Synced", "wsrep_cluster_size": "3"}

NODES = (Endpoint("db1", "127.0.0.1", 3306), Endpoint("db2", "127.0.0.2", 3306),
         Endpoint("db3", "127.0.0.3", 3306))
UP = Health(True, "Synced")
DOWN = Health(False, "unreachable")


def test_judge_synced_primary_ready_is_healthy() -> None:
    h = judge(SYNCED)
    assert h.healthy and h.reason == "Synced" and h.state == "Synced" and h.cluster_size == 3


@pytest.mark.parametrize(("change", "reason"), [
    ({"wsrep_cluster_status": "non-Primary"}, "not in the Primary component (non-Primary)"),
    ({"wsrep_cluster_status": "Disconnected"}, "not in the Primary component (Disconnected)"),
    ({"wsrep_ready": "OFF"}, "wsrep_ready is OFF"),
    ({"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"}, "not Synced (Donor/Desynced)"),
    ({"wsrep_local_state": "1", "wsrep_local_state_comment": "Joining"}, "not Synced (Joining)"),
    ({"wsrep_local_state": "3", "wsrep_local_state_comment": ""}, "not Synced (3)"),
])
def test_judge_unhealthy_states_say_why(change: dict[str, str], reason: str) -> None:
    h = judge({**SYNCED, **change})
    assert not h.healthy
    assert h.reason == reason


def test_judge_empty_status_is_unhealthy() -> None:
    h = judge({})
    assert not h.healthy and h.cluster_size == 0
    assert "Primary" in h.reason


def test_choose_writer_first_healthy_in_configured_order() -> None:
    assert choose_writer(None, NODES, {"db1": UP, "db2": UP, "db3": UP}) == "db1"
    assert choose_writer(None, NODES, {"db1": DOWN, "db2": UP, "db3": UP}) == "db2"
    assert choose_writer(None, NODES, {"db2": UP}) == "db2"  # never probed counts as down
    assert choose_writer(None, NODES, {"db1": DOWN, "db2": DOWN, "db3": DOWN}) is None
    assert choose_writer(None, NODES, {}) is None


def test_choose_writer_is_sticky_while_healthy() -> None:
    everyone = {"db1": UP, "db2": UP, "db3": UP}
    assert choose_writer("db3", NODES, everyone) == "db3"  # does not move back to db1
    assert choose_writer("db3", NODES, {**everyone, "db3": DOWN}) == "db1"


def test_choose_writer_skips_endpoints_that_do_not_write() -> None:
    eps = (Endpoint("ro", "h", 1, writes=False), Endpoint("rw", "h", 2))
    assert choose_writer(None, eps, {"ro": UP, "rw": UP}) == "rw"
    assert choose_writer(None, eps, {"ro": UP, "rw": DOWN}) is None


def test_router_writer_moves_only_on_failure_and_not_back() -> None:
    r = Router(NODES)
    r.update_all({"db1": UP, "db2": UP, "db3": UP})
    assert r.writer == "db1"
    r.fail("db1", "connection lost")
    assert r.writer == "db2"
    assert r.health["db1"] == Health(False, "connection lost", checked_at=r.health["db1"].checked_at)
    r.update("db1", UP)
    assert r.writer == "db2"


def test_router_update_all_chooses_in_configured_order_whatever_the_answer_order() -> None:
    r = Router(NODES)
    r.update_all({"db3": UP, "db2": UP, "db1": UP})
    assert r.writer == "db1"


def test_router_records_when_the_last_writer_was_lost() -> None:
    r = Router(NODES)
    r.update_all({"db1": UP, "db2": DOWN, "db3": DOWN})
    assert r.writer_lost_at is None
    r.fail("db1", "gone")
    assert r.writer is None and r.writer_lost_at is not None
    r.update("db2", UP)
    assert r.writer == "db2"


def test_router_readers_rotate_over_healthy_endpoints_only() -> None:
    r = Router(NODES)
    r.update_all({"db1": UP, "db2": DOWN, "db3": UP})
    orders = [tuple(ep.name for ep in r.readers()) for _ in range(10)]
    assert {frozenset(o) for o in orders} == {frozenset({"db1", "db3"})}
    assert Counter(o[0] for o in orders) == Counter({"db1": 5, "db3": 5})  # consecutive reads alternate
    assert all(a[0] != b[0] for a, b in pairwise(orders))


def test_router_readers_empty_when_nothing_is_healthy() -> None:
    r = Router(NODES)
    assert r.readers() == []
    r.update_all({"db1": DOWN, "db2": DOWN, "db3": DOWN})
    assert r.readers() == []


def test_router_summary_names_the_writer_and_unprobed_nodes() -> None:
    r = Router(NODES)
    r.update("db2", UP)
    rows = {row["name"]: row for row in r.summary()}
    assert rows["db2"]["writer"] is True and rows["db2"]["healthy"] is True
    assert rows["db1"]["reason"] == "not probed yet" and rows["db1"]["healthy"] is False


def test_endpoints_from_settings() -> None:
    nodes = [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"} for i in (1, 2, 3)]
    by_nodes = config.parse({"cluster": {"nodes": nodes}, "server": {"backend": "mariadb", "route": "nodes"}})
    assert [(e.name, e.host, e.writes, e.reads) for e in endpoints(by_nodes)] == [
        ("db1", "127.0.0.11", True, True), ("db2", "127.0.0.12", True, True), ("db3", "127.0.0.13", True, True)]
    by_balancer = config.parse({"cluster": {"nodes": nodes}, "server": {"backend": "mariadb", "route": "balancer"},
                                "balancer": {"kind": "haproxy", "address": "127.0.0.10", "rw_port": 3306,
                                             "ro_port": 3307}})
    eps = endpoints(by_balancer)
    assert [(e.port, e.writes) for e in eps] == [(3306, True), (3307, False)]


async def test_no_synced_node_says_whether_it_was_to_read_or_to_write() -> None:
    """A store whose nodes never answered a probe: a read must not say it wanted a node to write to."""
    from galerakv.backend.mariadb import MariaDBStore
    from galerakv.errors import BackendUnavailable

    nodes = [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"} for i in (1, 2, 3)]
    settings = config.parse({"cluster": {"nodes": nodes}, "server": {"backend": "mariadb", "route": "nodes"}})
    store = MariaDBStore(settings, "galerakv", "not-used")  # never opened: no connection is tried
    try:
        with pytest.raises(BackendUnavailable, match=r"^no Synced Galera node to read from \(not probed yet\)$"):
            await store.get("app", "k")  # the tables are checked first, on the writer there is not
        with pytest.raises(BackendUnavailable, match=r"^no Synced Galera node to write to \(not probed yet\)$"):
            await store.put("app", "k", b"v", "text/plain")
        store._schema_ready = True  # the tables were made before every node went away
        with pytest.raises(BackendUnavailable, match=r"^no Synced Galera node to read from \(not probed yet\)$"):
            await store.get("app", "k")
    finally:
        await store.close()


async def test_a_dead_node_believed_healthy_fails_as_unavailable_never_as_a_driver_error() -> None:
    """A node killed between two probes, whose pool was dropped: the next query makes a new pool,
    whose first connection is refused. That must be a 503 (BackendUnavailable) and route the node
    out, never a MySQL driver error (a 500)."""
    from galerakv.backend.mariadb import MariaDBStore
    from galerakv.backend.retry import RetryPolicy
    from galerakv.errors import BackendUnavailable

    nodes = [{"name": f"db{i}", "address": f"127.0.0.{240 + i}", "port": 9} for i in (1, 2)]  # nothing listens
    settings = config.parse({"cluster": {"nodes": nodes}, "server": {"backend": "mariadb", "route": "nodes"}})
    store = MariaDBStore(settings, "galerakv", "not-used", policy=RetryPolicy(tries=2, base=0.001, cap=0.001))
    believed = {"db1": UP, "db2": UP}
    try:
        for operation in ("schema", "read", "write"):
            store.router.update_all(believed)
            store._schema_ready = operation != "schema"
            with pytest.raises(BackendUnavailable) as caught:
                if operation == "write":
                    await store.put("app", "k", b"v", "text/plain")
                else:
                    await store.get("app", "k")
            assert "127.0.0.24" in str(caught.value) or "no Synced Galera node" in str(caught.value), caught.value
            assert not store.router.health["db1"].healthy, operation  # routed out until a probe says otherwise
    finally:
        await store.close()
