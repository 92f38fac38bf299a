"""A node's Galera state: parsing SHOW STATUS, the one "serving?" judgement, the verdict."""

from __future__ import annotations

import pytest

from galerakv.galera import status as health
from galerakv.galera.status import NodeStatus

UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"
OTHER = "e9e9ec8d-e97d-11f1-8e63-ca76314157b6"


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
         "degraded", "db3: not Synced (Donor/Desynced)"),
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


SERVING = [
    (synced("db1"), False, True, "Synced"),
    (health.unreachable("db1", "ERROR 2002"), False, False, "not reachable (ERROR 2002)"),
    (NodeStatus("db1", True, "Donor/Desynced", 2, 3, "Primary", True), False, False,
     "not Synced (Donor/Desynced)"),
    (NodeStatus("db1", True, "Donor/Desynced", 2, 3, "Primary", True), True, True,
     "Donor/Desynced (counted as up: donor allowed)"),
    (NodeStatus("db1", True, "Joined", 3, 3, "Primary", True), True, False, "not Synced (Joined)"),
    (NodeStatus("db1", True, "Synced", 4, 1, "non-Primary", True), False, False,
     "not in the Primary component (non-Primary)"),
    (NodeStatus("db1", True, "Synced", 4, 3, "Primary", False), False, False, "wsrep_ready is OFF"),
    (NodeStatus("db1", True, "", 0, 3, "Primary", True), False, False, "wsrep_local_state unknown"),
]


@pytest.mark.parametrize(("status", "donor_ok", "ok", "reason"), SERVING,
                         ids=["synced", "unreachable", "donor", "donor-ok", "joined", "non-primary",
                              "not-ready", "unknown"])
def test_serving_is_one_judgement(status: NodeStatus, donor_ok: bool, ok: bool, reason: str) -> None:
    """The server's routing, the clustercheck responder and `status` all ask this."""
    from galerakv.backend.routing import judge as routing_judge
    from galerakv.cluster.balancer.clustercheck import judge as check_judge

    serving = status.serving(donor_ok)
    assert (serving.ok, serving.reason) == (ok, reason)
    if status.reachable:
        variables = {"wsrep_local_state": str(status.local_state) if status.local_state else "",
                     "wsrep_local_state_comment": status.state,
                     "wsrep_cluster_status": status.cluster_status,
                     "wsrep_ready": "ON" if status.ready else "OFF",
                     "wsrep_cluster_size": str(status.cluster_size)}
        assert (check_judge(variables, donor_ok).ok, check_judge(variables, donor_ok).reason) == (ok, reason)
        if not donor_ok:
            assert (routing_judge(variables).healthy, routing_judge(variables).reason) == (ok, reason)
