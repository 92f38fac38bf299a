"""A point in a cluster's history, and where nodes keep it.

A node's position is the cluster state UUID and the seqno of the last
transaction it committed. It is saved in ``grastate.dat`` on a clean stop;
after a crash the file says ``seqno: -1`` and the position is only in the
InnoDB files, where ``mariadbd --wsrep-recover`` finds it. Both parsers live
here, so every caller reads positions the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ZERO_UUID = "00000000-0000-0000-0000-000000000000"

_POSITION_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                          r"[0-9a-fA-F]{12}):(-?\d+)$")
# "WSREP: Recovered position: 3ed39e2b-...:1234" (MariaDB may follow the seqno with a
# GTID list, ",0-1-1234"; only the plain integer counts)
_RECOVERED_RE = re.compile(r"WSREP: Recovered position:\s+([0-9a-fA-F-]{36}):(-?\d+)")


@dataclass(frozen=True)
class Position:
    """A point in a cluster's history: the cluster state UUID and the seqno reached."""

    uuid: str
    seqno: int

    def __str__(self) -> str:
        return f"{self.uuid}:{self.seqno}"

    @property
    def known(self) -> bool:
        """A real position: a cluster UUID and a committed seqno (not ``-1``)."""
        return self.uuid != ZERO_UUID and self.seqno >= 0

    @classmethod
    def parse(cls, text: str) -> Position:
        """``UUID:SEQNO`` (as ``--wsrep-start-position`` takes it); ValueError otherwise."""
        match = _POSITION_RE.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a Galera position (UUID:SEQNO)")
        return cls(match.group(1).lower(), int(match.group(2)))


@dataclass(frozen=True)
class GraState:
    """A node's saved Galera position (``grastate.dat``), written when it stops."""

    uuid: str = ZERO_UUID
    seqno: int = -1
    safe_to_bootstrap: bool = False
    version: str = ""

    @property
    def never_joined(self) -> bool:
        return self.uuid == ZERO_UUID

    @property
    def position(self) -> Position:
        return Position(self.uuid, self.seqno)


def parse_grastate(text: str) -> GraState:
    """Parse ``grastate.dat``; unknown lines are ignored, missing ones keep defaults."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    try:
        seqno = int(values.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    return GraState(
        uuid=(values.get("uuid", ZERO_UUID) or ZERO_UUID).lower(),
        seqno=seqno,
        safe_to_bootstrap=values.get("safe_to_bootstrap", "0") == "1",
        version=values.get("version", ""),
    )


def with_safe_to_bootstrap(text: str, safe: bool) -> str:
    """grastate.dat text with ``safe_to_bootstrap`` set; every other line kept as it was."""
    value = f"safe_to_bootstrap: {int(safe)}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("safe_to_bootstrap:"):
            lines[i] = value
            break
    else:
        lines.append(value)
    return "\n".join(lines) + "\n"


def grastate_text(position: Position, safe_to_bootstrap: bool) -> str:
    """A grastate.dat for a stopped node whose data is at ``position`` (a restored backup)."""
    return ("# GALERA saved state\nversion: 2.1\n"
            f"uuid:    {position.uuid}\nseqno:   {position.seqno}\n"
            f"safe_to_bootstrap: {int(safe_to_bootstrap)}\n")


def parse_recovered(text: str) -> Position | None:
    """The last ``Recovered position`` in ``mariadbd --wsrep-recover`` output, or None."""
    found = None
    for match in _RECOVERED_RE.finditer(text):
        found = Position(match.group(1).lower(), int(match.group(2)))
    return found
