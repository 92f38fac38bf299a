"""One Galera write set for a group of writes: the decisions, without I/O.

The MariaDB backend commits the writes that arrive together as one
transaction on the writer (group commit: one replication and certification
round for the group instead of one per write). A :class:`Unit` is what one
caller asked for (a put, a delete, a batch or a transaction); a
:class:`GroupPlan` decides every unit's result in order against the rows the
group's ``SELECT ... FOR UPDATE`` returned, exactly as if the units had run
one after another, and collects the rows to write back: one multi-row upsert
and one delete for the whole group.

Each unit is answered on its own: a failed If-Match of one caller does not
touch another's write. The plan is pure (rows in, results and changes out),
so it is unit-tested without a database.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from galerakv.backend.base import Compare, Entry, Op, OpResult, TxnResult, expiry, settled, with_revision

Shape = Literal["op", "batch", "txn"]
RowKey = tuple[str, str]  # (namespace, key)
UnitResult = OpResult | list[OpResult] | TxnResult


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a group, in order: a put (``entry``) or a delete (``removed``: the version
    deleted). Each takes the next revision when the group commits."""

    ns: str
    key: str
    entry: Entry | None
    removed: str | None = None


@dataclass(frozen=True, slots=True)
class Witness:
    """A change that tells whether a group committed: the key, the version it leaves (None: the
    key was deleted), and where that change is in the group's changes (1-based), which gives the
    group's revisions once the change's revision is found in the history."""

    ns: str
    key: str
    version: str | None
    index: int
    history_version: str


def new_version() -> int:
    """A version never given before to any key: microseconds since the epoch and 12 random bits."""
    return (time.time_ns() // 1000) << 12 | random.getrandbits(12)


@dataclass(frozen=True, slots=True)
class Unit:
    """One caller's write: ``op`` (one put or delete), ``batch`` (independent
    operations) or ``txn`` (compares, then ``ops`` or ``failure``)."""

    ns: str
    shape: Shape
    ops: tuple[Op, ...]
    compares: tuple[Compare, ...] = ()
    failure: tuple[Op, ...] = ()

    def row_keys(self) -> Iterable[RowKey]:
        for op in self.ops:
            yield self.ns, op.key
        for c in self.compares:
            yield self.ns, c.key
        for op in self.failure:
            yield self.ns, op.key

    @property
    def reads_values(self) -> bool:
        """Whether the plan needs the stored values (a get, or a compare on a value)."""
        return (any(op.kind == "get" for op in (*self.ops, *self.failure))
                or any(c.target == "value" for c in self.compares))

    @property
    def blind(self) -> bool:
        """An unconditional put: what it writes does not depend on what is stored, only its
        status (created or replaced) does, so it can be sent before the stored row is read."""
        if self.shape != "op":
            return False
        op = self.ops[0]
        return op.kind == "put" and op.if_match is None and not op.if_none_match

    @property
    def weight(self) -> int:
        """Bytes this unit writes, to bound a group's statement size."""
        return sum(len(op.value) + len(op.key) for op in (*self.ops, *self.failure)) + 64


def by_namespace(keys: Iterable[RowKey]) -> dict[str, list[str]]:
    """Keys grouped by namespace, each once, sorted (the order InnoDB locks them)."""
    out: dict[str, set[str]] = {}
    for ns, key in keys:
        out.setdefault(ns, set()).add(key)
    return {ns: sorted(names) for ns, names in sorted(out.items())}


def group_keys(units: Sequence[Unit]) -> dict[str, list[str]]:
    """Every key the units touch, by namespace, each once, sorted."""
    return by_namespace(key for unit in units for key in unit.row_keys())


class GroupPlan:
    """The results of a group of units and the rows they leave behind.

    ``rows`` are the stored rows of the group's keys, expired ones included
    (the plan treats an entry whose ``expires_at`` has passed as absent).
    ``versions``, when given, are the new versions its puts take, in order:
    two plans of the same blind units with the same versions and time write
    the same rows whatever rows they were given.
    """

    def __init__(self, rows: dict[RowKey, Entry], now: float, versions: Sequence[int] | None = None) -> None:
        self.now = now
        self.versions = list(versions) if versions is not None else None
        self._versions = iter(self.versions) if self.versions is not None else None
        self._state: dict[RowKey, Entry | None] = dict(rows)
        self._changed: dict[RowKey, None] = {}  # insertion-ordered set
        self.results: list[UnitResult] = []
        self.log: list[Change] = []  # every change, in order (also those a later one overwrote)
        self.marks: list[int] = []  # per unit run: how many changes had been made once it was done

    def current(self, ns: str, key: str) -> Entry | None:
        entry = self._state.get((ns, key))
        if entry is None or (entry.expires_at is not None and entry.expires_at <= self.now):
            return None
        return entry

    def apply(self, ns: str, op: Op) -> OpResult:
        cur = self.current(ns, op.key)
        done = settled(op, cur)
        if done is not None:
            return done
        if op.kind == "delete":
            assert cur is not None
            self._state[(ns, op.key)] = None
            self._changed[(ns, op.key)] = None
            self.log.append(Change(ns, op.key, None, cur.version))
            return OpResult("ok", cur)
        version = next(self._versions) if self._versions is not None else new_version()
        entry = Entry(op.key, op.value, op.content_type, str(version), expiry(op.ttl, self.now))
        self._state[(ns, op.key)] = entry
        self._changed[(ns, op.key)] = None
        self.log.append(Change(ns, op.key, entry))
        return OpResult("created" if cur is None else "ok", entry)

    def run(self, unit: Unit) -> UnitResult:
        if unit.shape == "op":
            return self.apply(unit.ns, unit.ops[0])
        if unit.shape == "batch":
            return [self.apply(unit.ns, op) for op in unit.ops]
        ok = all(c.holds(self.current(unit.ns, c.key)) for c in unit.compares)
        branch = unit.ops if ok else unit.failure
        return TxnResult(ok, tuple(self.apply(unit.ns, op) for op in branch))

    def run_all(self, units: Sequence[Unit]) -> list[UnitResult]:
        """Every unit's result, in order; kept in ``results``."""
        self.results = []
        self.marks = []
        for unit in units:
            self.results.append(self.run(unit))
            self.marks.append(len(self.log))
        return self.results

    def stamped(self, last: int) -> list[UnitResult]:
        """The results with their revisions, ``last`` being the group's last change's revision
        (or, for a group without changes, the revision it was decided at)."""
        base = last - len(self.log)
        return [with_revision(result, base + mark) for result, mark in zip(self.results, self.marks, strict=True)]

    def upserts(self) -> list[tuple[str, Entry]]:
        return [(ns, entry) for (ns, key) in self._changed if (entry := self._state[(ns, key)]) is not None]

    def deletes(self) -> list[RowKey]:
        return [rk for rk in self._changed if self._state[rk] is None]

    def witness(self) -> Witness | None:
        """One change that tells whether the group committed, or None for a group without changes.

        A put is preferred: its version was never stored before, so finding it
        proves the commit; an absent row proves less (it may never have existed).
        """
        ups = self.upserts()
        if ups:
            ns, entry = ups[0]
            index = next(i for i, c in enumerate(self.log, 1) if c.entry is not None and c.entry is entry)
            return Witness(ns, entry.key, entry.version, index, entry.version)
        dels = self.deletes()
        if not dels:
            return None
        ns, key = dels[0]
        index, change = next((i, c) for i, c in reversed(list(enumerate(self.log, 1)))
                             if (c.ns, c.key) == (ns, key))
        assert change.removed is not None
        return Witness(ns, key, None, index, change.removed)


def blind_plan(units: Sequence[Unit], now: float) -> GroupPlan:
    """The rows a group of blind units writes, planned before the stored rows are known.

    Its ``versions`` and ``now``, given to a plan of the stored rows, decide
    each unit's status for exactly these rows (see :attr:`Unit.blind`).
    """
    plan = GroupPlan({}, now, [new_version() for _ in units])
    plan.run_all(units)
    return plan
