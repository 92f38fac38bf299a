"""Pure cluster decisions: parsing grastate.dat and SHOW STATUS, the verdict, the start plan."""

from __future__ import annotations

import pytest

from galerakv.errors import ClusterError
from galerakv.galera import status as health
from galerakv.galera.status import GraState, NodeStatus

UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"
OTHER = "e9e9ec8d-e97d-11f1-8e63-ca76314157b6"

CLEAN = f"""# GALERA saved state
version: 2.1
uuid:    {UUID}
seqno:   19
safe_to_bootstrap: 1
"""

CRASHED = f"""# GALERA saved state
version: 2.1
uuid:    {UUID}
seqno:   -1
safe_to_bootstrap: 0
"""


# --------------------------------------------------------------------------- grastate.dat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CLEAN, GraState(UUID, 19, True, "2.1")),
        (CRASHED, GraState(UUID, -1, False, "2.1")),
        ("", GraState()),
        ("version: 2.1\nuuid: " + health.ZERO_UUID + "\nseqno: -1\nsafe_to_bootstrap: 1\n",
         GraState(health.ZERO_UUID, -1, True, "2.1")),
        ("uuid: " + UUID + "\nseqno: lots\n", GraState(UUID, -1, False, "")),
        ("garbage without colons\n\n", GraState()),
    ],
    ids=["clean-stop", "crash", "empty", "never-joined", "bad-seqno", "garbage"],
)
def test_parse_grastate(text: str, expected: GraState) -> None:
    assert health.parse_grastate(text) == expected


def test_never_joined() -> None:
    assert GraState().never_joined
    assert not GraState(UUID).never_joined


# --------------------------------------------------------------------------- status


STATUS_OUTPUT = f"""wsrep_local_state_comment\tSynced
wsrep_local_state\t4
wsrep_cluster_size\t3
wsrep_cluster_status\tPrimary
wsrep_ready\tON
wsrep_connected\tON
wsrep_last_committed\t42
wsrep_flow_control_paused\t0.012
wsrep_local_recv_queue\t2
wsrep_cluster_state_uuid\t{UUID}
wsrep_cluster_conf_id\t3
wsrep_provider_name\tGalera
wsrep_incoming_addresses\t127.0.0.11:3306,127.0.0.12:3306
"""


def test_parse_status_rows_and_node_status() -> None:
    rows = health.parse_status_rows(STATUS_OUTPUT)
    assert rows["wsrep_provider_name"] == "Galera"
    st = health.node_status("db1", rows)
    assert st == NodeStatus(name="db1", reachable=True, state="Synced", local_state=4,
                            cluster_size=3, cluster_status="Primary", ready=True, connected=True,
                            last_committed=42, flow_control_paused=0.012, recv_queue=2,
                            cluster_state_uuid=UUID, conf_id=3)
    assert st.primary and st.synced
    assert st.to_dict()["primary"] is True


def test_node_status_tolerates_missing_and_odd_values() -> None:
    st = health.node_status("db2", {"wsrep_cluster_size": "x", "wsrep_ready": "off"})
    assert st.reachable and st.cluster_size == 0 and not st.ready and not st.primary
    assert st.last_committed == -1


def synced(name: str, size: int = 3, uuid: str = UUID, conf: int = 3) -> NodeStatus:
    return NodeStatus(name, True, "Synced", 4, size, "Primary", True, True, 10, 0.0, 0, uuid, conf)


@pytest.mark.parametrize(
    ("statuses", "verdict", "reason_part"),
    [
        ([synced("db1"), synced("db2"), synced("db3")], "healthy", None),
        ([synced("db1", 2), synced("db2", 2), health.unreachable("db3", "ERROR 2002")],
         "degraded", "db3: not reachable"),
        ([synced("db1"), synced("db2"),
          NodeStatus("db3", True, "Donor/Desynced", 2, 3, "Primary", True, True, 10, 0.0, 0, UUID, 3)],
         "degraded", "db3: state Donor/Desynced"),
        ([synced("db1"), synced("db2"), synced("db3", 2)], "degraded", "expected 3"),
        ([synced("db1"), synced("db2"), synced("db3", uuid=OTHER)], "degraded", "UUID"),
        ([synced("db1", 2, conf=4), synced("db2", 2, conf=4), synced("db3", 1, conf=7)],
         "degraded", "split brain"),
        ([health.unreachable(n, "down") for n in ("db1", "db2", "db3")], "down", "no node answers"),
        ([NodeStatus("db1", True, "Initialized", 0, 1, "non-Primary"),
          health.unreachable("db2", "x"), health.unreachable("db3", "x")],
         "down", "Primary"),
    ],
    ids=["healthy", "one-unreachable", "donor", "size", "uuid", "split", "all-down", "non-primary"],
)
def test_cluster_verdict(statuses: list[NodeStatus], verdict: str, reason_part: str | None) -> None:
    result = health.cluster_verdict(statuses, 3)
    assert result.verdict == verdict
    assert result.healthy == (verdict == "healthy")
    if reason_part is None:
        assert result.reasons == ()
    else:
        assert any(reason_part in r for r in result.reasons), result.reasons


# --------------------------------------------------------------------------- start node

NAMES = ["db1", "db2", "db3"]


def gs(seqno: int, safe: bool, uuid: str = UUID) -> GraState:
    return GraState(uuid, seqno, safe, "2.1")


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({}, "db1"),
        ({"db1": None, "db2": None, "db3": None}, "db1"),
        ({"db1": GraState(), "db2": GraState(), "db3": None}, "db1"),
        ({"db1": gs(17, False), "db2": gs(18, False), "db3": gs(19, True)}, "db3"),
        ({"db1": gs(19, True), "db2": gs(18, False), "db3": gs(17, False)}, "db1"),
        ({"db1": gs(5, True), "db2": gs(9, True), "db3": gs(9, True)}, "db2"),
        ({"db1": None, "db2": gs(3, True), "db3": None}, "db2"),
    ],
    ids=["no-state", "no-grastate", "zero-uuid", "last-node-safe", "root-safe",
         "several-safe", "only-one-known"],
)
def test_choose_bootstrap_node(states: dict[str, GraState | None], expected: str) -> None:
    node, reason = health.choose_bootstrap_node(NAMES, states)
    assert node == expected
    assert expected in reason


def test_choose_refuses_when_none_is_safe() -> None:
    with pytest.raises(ClusterError, match="recover"):
        health.choose_bootstrap_node(NAMES, {"db1": gs(-1, False), "db2": gs(7, False),
                                             "db3": gs(8, False)})


def test_choose_refuses_mixed_histories() -> None:
    with pytest.raises(ClusterError, match="different cluster histories"):
        health.choose_bootstrap_node(NAMES, {"db1": gs(3, True), "db2": gs(3, False, OTHER)})


def test_choose_needs_nodes() -> None:
    with pytest.raises(ClusterError):
        health.choose_bootstrap_node([], {})


def test_plan_start_from_nothing_bootstraps_root_and_joins_rest() -> None:
    plan = health.plan_start(NAMES, {}, {})
    assert plan.bootstrap == "db1" and plan.join == ("db2", "db3")


def test_plan_start_after_clean_down_starts_from_safe_node() -> None:
    plan = health.plan_start(NAMES, {}, {"db1": gs(4, False), "db2": gs(5, True),
                                         "db3": gs(4, False)})
    assert plan.bootstrap == "db2" and plan.join == ("db1", "db3")


def test_plan_start_joins_a_running_primary_without_bootstrap() -> None:
    plan = health.plan_start(NAMES, {"db1": synced("db1", 1)}, {"db2": gs(3, False)})
    assert plan.bootstrap is None and plan.join == ("db2", "db3")


def test_plan_start_refuses_running_nodes_without_primary() -> None:
    lonely = NodeStatus("db1", True, "Initialized", 0, 1, "non-Primary")
    with pytest.raises(ClusterError, match="Primary"):
        health.plan_start(NAMES, {"db1": lonely}, {})


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("", None),
        ("x WSREP: Server status change disconnected -> connected\n"
         "y WSREP: Server status change connected -> joiner\n", "joiner"),
        ("WSREP: Server status change joined -> synced", "synced"),
        ("WSREP: Server status change joined -> synced\n"
         f"{health.START_MARKER} db2\nWSREP: starting\n", None),
    ],
)
def test_last_status_change(log: str, expected: str | None) -> None:
    assert health.last_status_change(log) == expected
