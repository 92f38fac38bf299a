"""The one bootstrap rule (up, recover, doctor), decided from recorded grastate.dat and
--wsrep-recover output."""

from __future__ import annotations

from pathlib import Path

import pytest

from galerakv.galera.bootstrap import Evidence, decide
from galerakv.galera.position import ZERO_UUID, GraState, Position, parse_grastate, parse_recovered
from galerakv.galera.status import NodeStatus

RECORDED = Path(__file__).parent / "recovery_recorded"
UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"
OTHER = "e9e9ec8d-e97d-11f1-8e63-ca76314157b6"
NAMES = ["db1", "db2", "db3"]


def grastate(uuid: str = UUID, seqno: int = -1, safe: int = 0) -> str:
    return (f"# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\n"
            f"safe_to_bootstrap: {safe}\n")


def recover_log(uuid: str = UUID, seqno: int = 0, gtid: str = "") -> str:
    """--wsrep-recover output, in the shape MariaDB 10.11 logs it."""
    return (
        "2026-11-26 10:51:02 0 [Note] Starting MariaDB 10.11.14-MariaDB-0+deb12u2 source revision  "
        "server_uid 6m6bJ0H8WZ7= as process 4242\n"
        "2026-11-26 10:51:02 0 [Note] InnoDB: Using transactional memory\n"
        "2026-11-26 10:51:02 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=47214\n"
        "2026-11-26 10:51:03 0 [Note] InnoDB: 128 rollback segments are active.\n"
        "2026-11-26 10:51:03 0 [Note] InnoDB: log sequence number 51034; transaction id 88\n"
        f"2026-11-26 10:51:03 0 [Note] WSREP: Recovered position: {uuid}:{seqno}{gtid}\n"
        "2026-11-26 10:51:03 0 [Note] InnoDB: FTS optimize thread exiting.\n"
    )


def crashed(name: str, seqno: int, uuid: str = UUID) -> Evidence:
    return Evidence(name, parse_grastate(grastate(uuid)), parse_recovered(recover_log(uuid, seqno)),
                    recover_ran=True)


# --------------------------------------------------------------------------- parsing


# --------------------------------------------------------------------------- the rule


def test_highest_recovered_seqno_after_a_crash() -> None:
    ev = {"db1": crashed("db1", 40), "db2": crashed("db2", 42), "db3": crashed("db3", 41)}
    d = decide(NAMES, ev)
    assert d.ok and d.bootstrap == "db2" and d.join == ("db1", "db3") and d.mark_safe
    assert "highest recovered seqno (42)" in d.reason
    assert d.evidence[1].startswith("db2: grastate.dat uuid") and "--wsrep-recover" in d.evidence[1]


def test_safe_to_bootstrap_wins_when_nobody_is_ahead() -> None:
    ev = {"db1": Evidence("db1", parse_grastate(grastate(seqno=50, safe=1))),
          "db2": crashed("db2", 50), "db3": crashed("db3", 48)}
    d = decide(NAMES, ev)
    assert d.bootstrap == "db1" and not d.mark_safe and "safe_to_bootstrap" in d.reason


def test_a_tie_goes_to_the_first_node_in_the_metadata_file() -> None:
    ev = {"db1": crashed("db1", 30), "db2": crashed("db2", 31), "db3": crashed("db3", 31)}
    d = decide(NAMES, ev)
    assert d.bootstrap == "db2" and "db2, db3 all reached it" in d.reason


def test_all_zero_uuid_and_missing_grastate_are_skipped() -> None:
    ev = {"db1": Evidence("db1", parse_grastate(grastate(ZERO_UUID)),
                          parse_recovered(recover_log(ZERO_UUID, -1)), recover_ran=True),
          "db2": Evidence("db2", None),
          "db3": crashed("db3", 12)}
    d = decide(NAMES, ev)
    assert d.bootstrap == "db3" and d.join == ("db1", "db2")
    assert any("db1 will get a full state transfer" in w for w in d.warnings)
    assert "all-zero cluster UUID" in d.evidence[0]


def test_never_bootstrapped_is_a_fresh_start() -> None:
    ev = {n: Evidence(n, None) for n in NAMES}
    d = decide(NAMES, ev)
    assert d.fresh and d.bootstrap == "db1" and not d.mark_safe


REFUSALS = [
    ("different cluster histories",
     {"db1": crashed("db1", 40), "db2": crashed("db2", 42, OTHER), "db3": crashed("db3", 41)}),
    ("cannot tell how far db3 got",
     {"db1": crashed("db1", 40), "db2": crashed("db2", 42),
      "db3": Evidence("db3", parse_grastate(grastate()), None, True, "InnoDB: corrupted page")}),
    ("db1 is marked safe_to_bootstrap at seqno 10 but db2 reached seqno 12",
     {"db1": Evidence("db1", parse_grastate(grastate(seqno=10, safe=1))),
      "db2": crashed("db2", 12), "db3": crashed("db3", 11)}),
    ("InnoDB recovered",
     {"db1": Evidence("db1", parse_grastate(grastate()), Position(OTHER, 9), True),
      "db2": crashed("db2", 12), "db3": crashed("db3", 11)}),
]


@pytest.mark.parametrize(("message", "evidence"), REFUSALS, ids=[r[0][:30] for r in REFUSALS])
def test_contradicting_evidence_is_refused(message: str, evidence: dict[str, Evidence]) -> None:
    d = decide(NAMES, evidence)
    assert not d.ok and d.bootstrap is None
    assert message in d.refused and "--force NODE" in d.refused
    assert len(d.evidence) == 3


def test_force_overrides_and_warns_what_is_lost() -> None:
    ev = {"db1": Evidence("db1", parse_grastate(grastate(seqno=10, safe=1))),
          "db2": crashed("db2", 12), "db3": crashed("db3", 11, OTHER)}
    d = decide(NAMES, ev, force="db2")
    assert d.ok and d.bootstrap == "db2" and d.mark_safe and d.clear_safe == ("db1",)
    assert any("db3 holds another history" in w for w in d.warnings)
    d = decide(NAMES, ev, force="db1")
    assert d.bootstrap == "db1" and not d.mark_safe
    assert any("db2 reached seqno 12, ahead of db1 (10): its last 2" in w for w in d.warnings)


@pytest.mark.parametrize(("force", "message"), [("db9", "no node of that name"),
                                                ("db3", "holds no usable position")])
def test_force_refuses_a_node_without_history(force: str, message: str) -> None:
    ev = {"db1": crashed("db1", 3), "db2": crashed("db2", 4), "db3": Evidence("db3", None)}
    d = decide(NAMES, ev, force=force)
    assert not d.ok and message in d.refused


def test_recorded_kill9_of_every_node() -> None:
    """Recorded on MariaDB 10.11 after kill -9 of all three nodes under writes: a tie."""
    ev = {}
    for name in NAMES:
        text = (RECORDED / f"kill9-all-{name}.log").read_text()
        pos = parse_recovered(text)
        assert pos is not None
        ev[name] = Evidence(name, parse_grastate(grastate(pos.uuid)), pos, recover_ran=True)
    d = decide(NAMES, ev)
    assert d.bootstrap == "db1" and d.mark_safe and "db1, db2, db3 all reached it" in d.reason


def test_a_node_with_no_committed_position_is_skipped() -> None:
    """An interrupted state transfer: InnoDB knows the cluster but no committed seqno."""
    ev = {"db1": Evidence("db1", parse_grastate(grastate()), Position(UUID, -1), True),
          "db2": crashed("db2", 8), "db3": crashed("db3", 8)}
    d = decide(NAMES, ev)
    assert d.bootstrap == "db2" and d.join == ("db1", "db3")
    assert any(w.startswith("db1 will get a full state transfer") for w in d.warnings)


def test_every_recovered_node_starts_from_its_position() -> None:
    """The history is kept: the bootstrap node and the joiners get --wsrep-start-position."""
    ev = {"db1": crashed("db1", 40), "db2": crashed("db2", 42), "db3": crashed("db3", 41)}
    d = decide(NAMES, ev)
    assert d.start_positions == {"db1": Position(UUID, 40), "db2": Position(UUID, 42),
                                 "db3": Position(UUID, 41)}
    assert d.unclean and d.to_dict()["start_positions"]["db2"] == f"{UUID}:42"
    # a clean stop saved the positions in grastate.dat: nothing to pass
    clean = {n: Evidence(n, GraState(UUID, 9, n == "db3")) for n in NAMES}
    d = decide(NAMES, clean)
    assert d.bootstrap == "db3" and d.start_positions == {} and not d.unclean


def test_forced_node_behind_others_gives_them_no_position() -> None:
    ev = {"db1": crashed("db1", 10), "db2": crashed("db2", 12), "db3": crashed("db3", 9)}
    d = decide(NAMES, ev, force="db1")
    assert set(d.start_positions) == {"db1", "db3"}  # db2 is ahead: it must get a full copy


# ------------------------------------------------- clean stops and running nodes (was plan_start)


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
        ({"db1": gs(9, True), "db2": gs(9, True), "db3": gs(9, True)}, "db1"),
        ({"db1": None, "db2": gs(3, True), "db3": None}, "db2"),
    ],
    ids=["no-state", "no-grastate", "zero-uuid", "last-node-safe", "root-safe",
         "several-safe", "only-one-known"],
)
def test_clean_start_node(states: dict[str, GraState | None], expected: str) -> None:
    d = decide(NAMES, {n: Evidence(n, g) for n, g in states.items()})
    assert d.ok and d.bootstrap == expected and expected in d.reason
    assert d.join == tuple(n for n in NAMES if n != expected)


def test_several_safe_nodes_at_one_position_warn_and_take_the_first() -> None:
    d = decide(NAMES, {n: Evidence(n, gs(9, True)) for n in NAMES})
    assert d.bootstrap == "db1" and d.several_safe == ("db1", "db2", "db3")
    assert any("several nodes are marked safe_to_bootstrap" in w for w in d.warnings)


def test_several_safe_nodes_one_behind_is_refused() -> None:
    """The copies of this rule used to disagree here (one took the highest, one refused)."""
    d = decide(NAMES, {"db1": Evidence("db1", gs(5, True)), "db2": Evidence("db2", gs(9, True)),
                       "db3": Evidence("db3", gs(9, False))})
    assert not d.ok and d.problem == "unsafe-bootstrap-choice" and d.unsafe == ("db1",)


def test_no_node_safe_and_positions_unknown_is_refused() -> None:
    d = decide(NAMES, {"db1": Evidence("db1", gs(-1, False)), "db2": Evidence("db2", gs(7, False)),
                       "db3": Evidence("db3", gs(8, False))})
    assert not d.ok and d.problem == "position-unknown" and d.unclean


def test_no_nodes() -> None:
    assert decide([], {}).problem == "no-nodes"


def synced(name: str) -> NodeStatus:
    return NodeStatus(name, True, "Synced", 4, 1, "Primary", True, True, 10, 0.0, 0, UUID, 3)


def test_running_primary_is_joined_without_bootstrap() -> None:
    d = decide(NAMES, {"db2": crashed("db2", 7), "db3": Evidence("db3", None)},
               running={"db1": synced("db1")})
    assert d.ok and d.bootstrap is None and d.join == ("db2", "db3")
    assert d.start_positions == {"db2": Position(UUID, 7)}  # rejoins by IST


def test_running_nodes_without_primary_are_refused() -> None:
    lonely = NodeStatus("db1", True, "Initialized", 0, 1, "non-Primary")
    d = decide(NAMES, {}, running={"db1": lonely})
    assert not d.ok and d.problem == "no-primary" and "Primary" in d.refused
