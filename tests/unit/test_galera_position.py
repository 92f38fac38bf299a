"""Positions: grastate.dat, --wsrep-recover output, the markers in a node's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from galerakv.galera.log import RECOVER_MARKER, START_MARKER, last_status_change, recovered_since_last_start
from galerakv.galera.position import (
    ZERO_UUID,
    GraState,
    Position,
    parse_grastate,
    parse_recovered,
    with_safe_to_bootstrap,
)

UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"

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
        ("version: 2.1\nuuid: " + ZERO_UUID + "\nseqno: -1\nsafe_to_bootstrap: 1\n",
         GraState(ZERO_UUID, -1, True, "2.1")),
        ("uuid: " + UUID + "\nseqno: lots\n", GraState(UUID, -1, False, "")),
        ("garbage without colons\n\n", GraState()),
    ],
    ids=["clean-stop", "crash", "empty", "never-joined", "bad-seqno", "garbage"],
)
def test_parse_grastate(text: str, expected: GraState) -> None:
    assert parse_grastate(text) == expected


def test_never_joined() -> None:
    assert GraState().never_joined
    assert not GraState(UUID).never_joined




def test_position_parse_and_print() -> None:
    pos = Position.parse(f"{UUID.upper()}:42")
    assert pos == Position(UUID, 42) and str(pos) == f"{UUID}:42" and pos.known
    assert not Position(UUID, -1).known and not Position(ZERO_UUID, 3).known
    assert GraState(UUID, 7, True).position == Position(UUID, 7)
    for bad in ("", "abc:1", f"{UUID}", f"{UUID}:x", f"{UUID}:1,0-1-1"):
        with pytest.raises(ValueError, match="not a Galera position"):
            Position.parse(bad)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("", None),
        ("x WSREP: Server status change disconnected -> connected\n"
         "y WSREP: Server status change connected -> joiner\n", "joiner"),
        ("WSREP: Server status change joined -> synced", "synced"),
        ("WSREP: Server status change joined -> synced\n"
         f"{START_MARKER} db2\nWSREP: starting\n", None),
    ],
)
def test_last_status_change(log: str, expected: str | None) -> None:
    assert last_status_change(log) == expected


def test_recovered_counts_only_when_no_start_followed() -> None:
    recover = f"{RECOVER_MARKER} db1\nx [Note] WSREP: Recovered position: {UUID}:12\n"
    assert recovered_since_last_start("") is None
    assert recovered_since_last_start(f"{START_MARKER} db1\n" + recover) == Position(UUID, 12)
    assert recovered_since_last_start(recover + f"{START_MARKER} db1\nrunning\n") is None
    # a normal start's "Recovered position from storage" is not a --wsrep-recover result
    assert recovered_since_last_start(f"x WSREP: Recovered position from storage: {UUID}:3\n") is None


RECORDED = Path(__file__).parent / "recovery_recorded"


def grastate(uuid: str = UUID, seqno: int = -1, safe: int = 0) -> str:
    return (f"# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\n"
            f"safe_to_bootstrap: {safe}\n")


def recover_log(uuid: str = UUID, seqno: int = 0, gtid: str = "") -> str:
    return f"2026-11-26 10:51:03 0 [Note] WSREP: Recovered position: {uuid}:{seqno}{gtid}\n"


def test_recovered_position_takes_the_plain_integer() -> None:
    assert parse_recovered(recover_log(seqno=1234)) == Position(UUID, 1234)
    assert parse_recovered(recover_log(seqno=77, gtid=",0-1-77")) == Position(UUID, 77)
    assert parse_recovered("no position here") is None
    # the last one counts (several runs appended to one log)
    assert parse_recovered(recover_log(seqno=5) + recover_log(seqno=9)) == Position(UUID, 9)


def test_recorded_outputs_parse() -> None:
    files = sorted(RECORDED.glob("*.log"))
    assert files, "recorded --wsrep-recover outputs are missing"
    for path in files:
        pos = parse_recovered(path.read_text())
        assert pos is not None and pos.seqno >= 0, path.name


def test_safe_to_bootstrap_is_rewritten_in_place() -> None:
    text = grastate(seqno=-1, safe=0)
    out = with_safe_to_bootstrap(text, True)
    assert out.splitlines()[:4] == text.splitlines()[:4]
    assert parse_grastate(out).safe_to_bootstrap and parse_grastate(out).seqno == -1
    assert not parse_grastate(with_safe_to_bootstrap(out, False)).safe_to_bootstrap
    old = "version: 2.1\nuuid: x\nseqno: 3\n"  # Galera 3 had no such line
    assert with_safe_to_bootstrap(old, True).endswith("safe_to_bootstrap: 1\n")


