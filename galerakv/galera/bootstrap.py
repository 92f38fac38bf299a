"""Which node starts a stopped cluster, and from which position: the one rule.

``galerakv cluster up``, ``galerakv cluster recover`` and the doctor all ask
:func:`decide`, a pure function of what the nodes say (:class:`Evidence`:
each stopped node's ``grastate.dat`` and, where that lost its seqno, the
position ``mariadbd --wsrep-recover`` found in InnoDB), unit-tested on recorded
outputs. The rule:

0. some node runs: when one is in a Primary component the stopped nodes join
   it; when none is, refuse (stop them and start again, or recover);
1. nodes without history (no grastate.dat, all-zero UUID, or a recovered
   seqno of -1 after an interrupted state transfer) are skipped: they join
   later by full state transfer;
2. no node holds history: the root node (first in the metadata file) starts a
   new cluster;
3. refuse when the evidence contradicts itself: different cluster UUIDs, a
   node whose position cannot be read, or a node marked ``safe_to_bootstrap:
   1`` that is behind another (unless ``--force NODE`` names the node to keep);
4. the node marked safe (the last to leave after a clean stop); when several
   are, all at the highest seqno (one history), the first in the metadata file;
5. else (an unclean stop: nobody is marked safe) the highest seqno, a tie
   going to the first node in the metadata file; it gets ``safe_to_bootstrap:
   1`` written before it starts.

Whatever the choice, every node whose grastate.dat says ``seqno: -1`` but whose
position was recovered starts with ``--wsrep-start-position=<uuid>:<seqno>``
(:attr:`Decision.start_positions`), as Debian's ``galera_recovery`` does under
systemd: the bootstrap node then keeps the cluster's state UUID and seqno
instead of starting a new history at 0, and a joiner asks for the
transactions it lacks (IST, or nothing) instead of a full copy (SST).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from galerakv.galera.position import ZERO_UUID, GraState, Position
from galerakv.galera.status import NodeStatus

Problem = Literal["", "history-diverged", "position-unknown", "unsafe-bootstrap-choice",
                  "no-primary", "bad-force", "no-nodes"]

FORCE_HINT = "; pass --force NODE to bootstrap a node of your choice (its history wins)"


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

    def start_position(self) -> Position | None:
        """The position to start this node from, when grastate.dat lost it (seqno -1)."""
        if self.grastate is None or self.grastate.seqno >= 0:
            return None
        pos, _, _ = self.position()
        return pos if pos is not None and pos.known else None

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
    """The node to bootstrap (None: join the running Primary component) and the order
    to start the rest, or why not (:attr:`refused`, :attr:`problem`)."""

    bootstrap: str | None
    join: tuple[str, ...]
    reason: str
    evidence: tuple[str, ...] = ()
    refused: str = ""
    problem: Problem = ""
    mark_safe: bool = False  # write safe_to_bootstrap: 1 into the chosen node's grastate.dat
    clear_safe: tuple[str, ...] = ()  # nodes whose safe_to_bootstrap goes back to 0 (--force)
    warnings: tuple[str, ...] = ()
    fresh: bool = False  # no node ever joined a cluster: plain first start
    unclean: bool = False  # history exists and no node is marked safe: a crash or kill -9
    several_safe: tuple[str, ...] = ()  # more than one node marked safe_to_bootstrap
    unsafe: tuple[str, ...] = ()  # nodes marked safe_to_bootstrap that are behind another
    start_positions: Mapping[str, Position] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused and (self.bootstrap is not None or bool(self.join))

    def to_dict(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "join": list(self.join), "reason": self.reason,
                "evidence": list(self.evidence), "refused": self.refused or None,
                "problem": self.problem or None, "mark_safe": self.mark_safe,
                "clear_safe": list(self.clear_safe), "warnings": list(self.warnings),
                "start_positions": {n: str(p) for n, p in self.start_positions.items()}}


def _refuse(problem: Problem, message: str, evidence: tuple[str, ...], **extra: Any) -> Decision:
    return Decision(None, (), "", evidence, refused=message, problem=problem, **extra)


def decide(names: Sequence[str], evidence: Mapping[str, Evidence], force: str | None = None,
           running: Mapping[str, NodeStatus] | None = None) -> Decision:
    """The start plan; see the module docstring for the rule.

    ``evidence`` covers the stopped nodes; ``running`` holds the nodes whose
    process is alive (reachable or not).
    """
    if not names:
        return _refuse("no-nodes", "the metadata file lists no [[cluster.nodes]]", ())
    running = running or {}
    stopped = [n for n in names if n not in running]
    lines = tuple(evidence[n].describe() if n in evidence else f"{n}: no evidence" for n in stopped)
    starts = {n: p for n in stopped if n in evidence
              and (p := evidence[n].start_position()) is not None}
    if running:
        primary = [n for n in names if n in running and running[n].primary]
        if primary:
            return Decision(None, tuple(stopped), f"joining the Primary component of {primary[0]}",
                            lines, start_positions=starts)
        return _refuse("no-primary", "some nodes run (" + ", ".join(n for n in names if n in running)
                       + ") but none is in a Primary component; stop them with `galerakv cluster "
                       "down` and run `galerakv cluster up` again, or `galerakv cluster recover`",
                       lines)

    positions: dict[str, Position] = {}
    unknown: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for n in names:
        pos, why, skip = evidence.get(n, Evidence(n, None)).position()
        if pos is not None:
            positions[n] = pos
        elif skip:
            skipped[n] = why
        else:
            unknown[n] = why
    safe = [n for n in names if n in positions
            and (g := evidence[n].grastate) is not None and g.safe_to_bootstrap]
    unclean = bool(positions or unknown) and not safe
    several = tuple(safe) if len(safe) > 1 else ()

    if force is not None:
        return _forced(names, evidence, force, positions, unknown, skipped, safe, lines, starts)
    if not positions and not unknown:
        return Decision(names[0], tuple(names[1:]),
                        f"{names[0]} is the root node and no node ever joined a cluster: "
                        "it starts a new one", lines, fresh=True)
    uuids = sorted({p.uuid for p in positions.values()})
    if len(uuids) > 1:
        return _refuse("history-diverged", "the nodes hold different cluster histories ("
                       + ", ".join(f"{n}: {p.uuid}" for n, p in positions.items()) + ")"
                       + FORCE_HINT, lines, unclean=unclean, several_safe=several)
    if unknown:
        return _refuse("position-unknown", "cannot tell how far " + ", ".join(unknown) + " got ("
                       + "; ".join(f"{n}: {w}" for n, w in unknown.items())
                       + "), so the most advanced node is not known" + FORCE_HINT, lines,
                       unclean=unclean, several_safe=several)
    best = max(p.seqno for p in positions.values())
    leaders = [n for n in names if n in positions and positions[n].seqno == best]
    warnings = [f"{n} will get a full state transfer ({why})" for n, why in skipped.items()]
    if safe:
        behind = [n for n in safe if positions[n].seqno < best]
        if behind:
            return _refuse("unsafe-bootstrap-choice",
                           ", ".join(f"{n} is marked safe_to_bootstrap at seqno {positions[n].seqno}"
                                     for n in behind)
                           + f" but {', '.join(leaders)} reached seqno {best}" + FORCE_HINT,
                           lines, unsafe=tuple(behind), unclean=unclean,
                           several_safe=several)
        chosen = safe[0]
        reason = (f"{chosen} is marked safe_to_bootstrap (seqno {best}): it stopped last, "
                  "and no node is ahead of it")
        if several:
            warnings.append(f"several nodes are marked safe_to_bootstrap ({', '.join(several)}), "
                            f"all at seqno {best} (one history): the first in the metadata file, "
                            f"{chosen}, starts")
        mark = False
    else:
        chosen = leaders[0]
        reason = f"{chosen} has the highest recovered seqno ({best}) of cluster {uuids[0]}"
        if len(leaders) > 1:
            reason += (f"; {', '.join(leaders)} all reached it (same cluster and seqno: the same "
                       f"history), so the first in the metadata file, {chosen}")
        mark = True
    return Decision(chosen, tuple(n for n in names if n != chosen), reason, lines,
                    mark_safe=mark, warnings=tuple(warnings), start_positions=starts,
                    unclean=unclean, several_safe=several)


def _forced(names: Sequence[str], evidence: Mapping[str, Evidence], force: str,
            positions: Mapping[str, Position], unknown: Mapping[str, str],
            skipped: Mapping[str, str], safe: Sequence[str], lines: tuple[str, ...],
            starts: Mapping[str, Position]) -> Decision:
    if force not in names:
        return _refuse("bad-force", f"--force {force}: no node of that name (known: "
                       f"{', '.join(names)})", lines)
    if force not in positions:
        why = skipped.get(force) or unknown.get(force, "")
        return _refuse("bad-force", f"--force {force}: it holds no usable position ({why}); "
                       "bootstrapping it would start an empty cluster and wipe the others by "
                       "state transfer", lines)
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
    # a node ahead of the forced one cannot rejoin from its own position: give it none
    keep = {n: p for n, p in starts.items()
            if n == force or (p.uuid == mine.uuid and p.seqno <= mine.seqno)}
    return Decision(force, tuple(n for n in names if n != force),
                    f"{force} chosen with --force (seqno {mine.seqno})", lines,
                    mark_safe=not (g is not None and g.safe_to_bootstrap),
                    clear_safe=tuple(n for n in safe if n != force), warnings=tuple(warnings),
                    start_positions=keep)
