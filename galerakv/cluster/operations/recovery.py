"""Recover a cluster after a full outage: which node to bootstrap, and why.

After a clean stop the last node to leave writes ``safe_to_bootstrap: 1`` in
its grastate.dat and ``up`` starts from it. After a crash (kill -9, power
loss) every grastate.dat says ``seqno: -1``, ``safe_to_bootstrap: 0``: the
position each node reached is only in its InnoDB files, and ``mariadbd
--wsrep-recover`` prints it (``WSREP: Recovered position: UUID:SEQNO``).

:func:`gather` collects that evidence (running ``--wsrep-recover`` on the
stopped nodes whose seqno is -1, in parallel); :func:`decide` is a pure
function of it, unit-tested on recorded outputs:

1. nodes without history (no grastate.dat, all-zero UUID) are skipped: they
   join later by state transfer;
2. the node marked ``safe_to_bootstrap: 1``, when nobody is ahead of it;
3. else the highest seqno; equal UUID and seqno is the same history, so a tie
   goes to the first node in the metadata file;
4. refuse when the evidence contradicts itself (different cluster UUIDs, a
   node whose position cannot be read, a node marked safe that is behind
   another) unless ``--force NODE`` names the node to keep.

The chosen node gets ``safe_to_bootstrap: 1`` only when it does not have it
(an unclean stop); with ``--force`` any other node marked safe is set back to
0, so exactly one node may bootstrap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, NodeError
from galerakv.galera.status import ZERO_UUID, GraState, parse_grastate

RECOVER_TIMEOUT = 180.0

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


def parse_recovered(text: str) -> Position | None:
    """The last ``Recovered position`` in ``mariadbd --wsrep-recover`` output, or None."""
    found = None
    for match in _RECOVERED_RE.finditer(text):
        found = Position(match.group(1).lower(), int(match.group(2)))
    return found


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


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Evidence:
    """What one stopped node says about how far it got."""

    name: str
    grastate: GraState | None
    recovered: Position | None = None  # from --wsrep-recover, when it ran
    recover_ran: bool = False
    recover_error: str = ""

    def position(self) -> tuple[Position | None, str, bool]:
        """The node's position; else None, why, and whether the node is simply skipped
        (it holds no history: it joins by state transfer) rather than unknown."""
        g = self.grastate
        if g is None:
            return None, "no grastate.dat: never started, or its datadir was wiped", True
        uuid = g.uuid
        if uuid == ZERO_UUID and self.recovered is not None:
            uuid = self.recovered.uuid
        if uuid == ZERO_UUID:
            return None, "all-zero cluster UUID: holds no cluster history", True
        if g.seqno >= 0:
            return Position(uuid, g.seqno), "", False
        if self.recovered is None:
            why = self.recover_error or "mariadbd --wsrep-recover printed no position"
            return None, f"seqno -1 and the position could not be recovered ({why})", False
        if self.recovered.uuid != uuid:
            return None, (f"grastate.dat names cluster {uuid} but InnoDB recovered "
                          f"{self.recovered}"), False
        if self.recovered.seqno < 0:
            # an interrupted state transfer leaves no committed position: nothing to keep
            return None, f"--wsrep-recover found no committed position ({self.recovered})", True
        return self.recovered, "", False

    def describe(self) -> str:
        """One line of evidence, as printed."""
        g = self.grastate
        if g is None:
            saved = "no grastate.dat"
        else:
            saved = (f"grastate.dat uuid {g.uuid} seqno {g.seqno} "
                     f"safe_to_bootstrap {int(g.safe_to_bootstrap)}")
        if self.recover_ran:
            saved += (f"; --wsrep-recover: {self.recovered}" if self.recovered is not None
                      else f"; --wsrep-recover failed: {self.recover_error or 'no position printed'}")
        pos, why, _ = self.position()
        verdict = f"position {pos.seqno}" if pos is not None else why
        return f"{self.name}: {saved} -> {verdict}"


@dataclass(frozen=True)
class Decision:
    """The node to bootstrap and the order to join the rest, or why not."""

    bootstrap: str | None
    join: tuple[str, ...]
    reason: str
    evidence: tuple[str, ...]
    refused: str = ""
    mark_safe: bool = False  # write safe_to_bootstrap: 1 into the chosen node's grastate.dat
    clear_safe: tuple[str, ...] = ()  # nodes whose safe_to_bootstrap goes back to 0 (--force)
    warnings: tuple[str, ...] = ()
    fresh: bool = False  # no node ever joined a cluster: plain first start

    @property
    def ok(self) -> bool:
        return not self.refused and self.bootstrap is not None

    def to_dict(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "join": list(self.join), "reason": self.reason,
                "evidence": list(self.evidence), "refused": self.refused or None,
                "mark_safe": self.mark_safe, "clear_safe": list(self.clear_safe),
                "warnings": list(self.warnings)}


def _refuse(message: str, evidence: tuple[str, ...]) -> Decision:
    return Decision(None, (), "", evidence, refused=message)


def decide(names: Sequence[str], evidence: Mapping[str, Evidence],
           force: str | None = None) -> Decision:
    """The bootstrap choice after a full outage; see the module docstring for the rule."""
    lines = tuple(evidence[n].describe() if n in evidence else f"{n}: no evidence" for n in names)
    positions: dict[str, Position] = {}
    unknown: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for n in names:
        ev = evidence.get(n, Evidence(n, None))
        pos, why, skip = ev.position()
        if pos is not None:
            positions[n] = pos
        elif skip:
            skipped[n] = why
        else:
            unknown[n] = why
    safe = [n for n in positions if (g := evidence[n].grastate) is not None and g.safe_to_bootstrap]
    uuids = sorted({p.uuid for p in positions.values()})

    if force is not None:
        return _forced(names, evidence, force, positions, unknown, skipped, safe, lines)
    if not positions and not unknown:
        return Decision(names[0] if names else None, tuple(names[1:]),
                        "no node ever joined a cluster: the root node starts a new one",
                        lines, fresh=True)
    hint = "; pass --force NODE to bootstrap a node of your choice (its history wins)"
    if len(uuids) > 1:
        return _refuse("the nodes hold different cluster histories ("
                       + ", ".join(f"{n}: {p.uuid}" for n, p in positions.items()) + ")" + hint,
                       lines)
    if unknown:
        return _refuse("cannot tell how far " + ", ".join(unknown) + " got ("
                       + "; ".join(f"{n}: {w}" for n, w in unknown.items())
                       + "), so the most advanced node is not known" + hint, lines)
    best = max(p.seqno for p in positions.values())
    leaders = [n for n in names if n in positions and positions[n].seqno == best]
    if safe:
        behind = [n for n in safe if positions[n].seqno < best]
        if behind:
            return _refuse(", ".join(f"{n} is marked safe_to_bootstrap at seqno {positions[n].seqno}"
                                     for n in behind)
                           + f" but {', '.join(leaders)} reached seqno {best}" + hint, lines)
        chosen = safe[0]
        reason = (f"{chosen} is marked safe_to_bootstrap (seqno {best}): it stopped last, "
                  "and no node is ahead of it")
        mark = False
    else:
        chosen = leaders[0]
        reason = f"{chosen} has the highest recovered seqno ({best}) of cluster {uuids[0]}"
        if len(leaders) > 1:
            reason += (f"; {', '.join(leaders)} all reached it (same cluster and seqno: the same "
                       f"history), so the first in the metadata file, {chosen}")
        mark = True
    warnings = tuple(f"{n} will get a full state transfer ({why})" for n, why in skipped.items())
    return Decision(chosen, tuple(n for n in names if n != chosen), reason, lines,
                    mark_safe=mark, warnings=warnings)


def _forced(names: Sequence[str], evidence: Mapping[str, Evidence], force: str,
            positions: Mapping[str, Position], unknown: Mapping[str, str],
            skipped: Mapping[str, str], safe: Sequence[str], lines: tuple[str, ...]) -> Decision:
    if force not in names:
        return _refuse(f"--force {force}: no node of that name (known: {', '.join(names)})", lines)
    if force not in positions:
        why = skipped.get(force) or unknown.get(force, "")
        return _refuse(f"--force {force}: it holds no usable position ({why}); bootstrapping it "
                       "would start an empty cluster and wipe the others by state transfer", lines)
    mine = positions[force]
    warnings = []
    for n, p in positions.items():
        if n == force:
            continue
        if p.uuid != mine.uuid:
            warnings.append(f"{n} holds another history ({p.uuid}); it gets a full state transfer "
                            "and loses it")
        elif p.seqno > mine.seqno:
            warnings.append(f"{n} reached seqno {p.seqno}, ahead of {force} ({mine.seqno}): "
                            f"its last {p.seqno - mine.seqno} transaction(s) are lost")
    warnings += [f"{n}: position unknown ({w}); what it holds beyond {force} is lost"
                 for n, w in unknown.items()]
    g = evidence[force].grastate
    return Decision(force, tuple(n for n in names if n != force),
                    f"{force} chosen with --force (seqno {mine.seqno})", lines,
                    mark_safe=not (g is not None and g.safe_to_bootstrap),
                    clear_safe=tuple(n for n in safe if n != force), warnings=tuple(warnings))


def needs_recovery(grastates: Mapping[str, GraState | None]) -> bool:
    """Whether a fully stopped cluster stopped uncleanly: it has a history, nobody is safe."""
    known = [g for g in grastates.values() if g is not None and not g.never_joined]
    return bool(known) and not any(g.safe_to_bootstrap for g in known)


# --------------------------------------------------------------------------- I/O


def gather(transport: Transport, nodes: Sequence[NodeSettings], report: Report,
           timeout: float = RECOVER_TIMEOUT) -> dict[str, Evidence]:
    """Read every stopped node's grastate.dat; ``--wsrep-recover`` (in parallel) where seqno is -1."""
    saved: dict[str, GraState | None] = {}
    for node in nodes:
        text = transport.grastate(node)
        saved[node.name] = parse_grastate(text) if text is not None else None
    to_recover = [n for n in nodes if (g := saved[n.name]) is not None and g.seqno < 0]
    if to_recover:
        report("running mariadbd --wsrep-recover on "
               + ", ".join(n.name for n in to_recover) + " (seqno -1: position only in InnoDB)")

    def recover(node: NodeSettings) -> Evidence:
        try:
            text = transport.wsrep_recover(node, timeout)
        except NodeError as exc:
            return Evidence(node.name, saved[node.name], None, True, str(exc).splitlines()[0])
        return Evidence(node.name, saved[node.name], parse_recovered(text), True)

    found = {n.name: Evidence(n.name, saved[n.name]) for n in nodes}
    if to_recover:
        with ThreadPoolExecutor(max_workers=len(to_recover)) as pool:
            for ev in pool.map(recover, to_recover):
                found[ev.name] = ev
    return found


def apply(transport: Transport, settings: Settings, decision: Decision, report: Report) -> None:
    """Make the chosen node the only one allowed to bootstrap."""
    assert decision.bootstrap is not None
    for name in (*decision.clear_safe, *((decision.bootstrap,) if decision.mark_safe else ())):
        node = settings.cluster.node(name)
        text = transport.grastate(node)
        if text is None:
            raise ClusterError(f"{name}: grastate.dat disappeared while recovering")
        safe = name == decision.bootstrap
        transport.write_grastate(node, with_safe_to_bootstrap(text, safe))
        report(f"{name}: grastate.dat safe_to_bootstrap set to {int(safe)}")


def plan(settings: Settings, transport: Transport, report: Report,
         force: str | None = None) -> Decision:
    """Gather, decide and print the evidence; raise when refused. Every node must be stopped."""
    names = [n.name for n in settings.cluster.nodes]
    evidence = gather(transport, settings.cluster.nodes, report)
    decision = decide(names, evidence, force)
    report("evidence:")
    for line in decision.evidence:
        report(f"  {line}")
    for warning in decision.warnings:
        report(f"warning: {warning}")
    if not decision.ok:
        raise ClusterError(f"refusing to bootstrap: {decision.refused}")
    report(f"decision: bootstrap {decision.bootstrap}: {decision.reason}")
    return decision


@dataclass(frozen=True)
class RecoverResult:
    changed: bool
    decision: Decision | None
    message: str
    started: tuple[str, ...] = field(default_factory=tuple)
