"""``galerakv cluster verify``: prove that writes replicate, node by node.

Checks, each reported by name:

- every node answers, is Synced in a Primary component and sees the expected
  cluster size, and all agree on the cluster state UUID;
- a marker row written through each node (InnoDB table with a primary key in
  a database made for this run) is read back from every other node, with
  ``wsrep_sync_wait`` so a read waits for what the cluster already committed.

The run's database, ``galerakv_verify_<random>``, is dropped at the end
whatever happened, so no marker stays behind.
"""

from __future__ import annotations

import secrets as _random
from dataclasses import asdict, dataclass
from typing import Any

from galerakv.cluster.operations.lifecycle import status
from galerakv.cluster.transport.base import QueryFailed, Report, Transport
from galerakv.config import NodeSettings, Settings

# bits of wsrep_sync_wait: 1 reads, 2 updates and deletes, 4 inserts and replaces
SYNC_WAIT = 7


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class VerifyResult:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def verify(settings: Settings, transport: Transport, report: Report) -> VerifyResult:
    nodes = settings.cluster.nodes
    expected = len(nodes)
    checks: list[Check] = []
    current = status(settings, transport)
    for st in current.nodes:
        if not st.reachable:
            checks.append(Check(f"{st.name} answers", False, st.error))
            continue
        good = st.synced and st.primary and st.cluster_size == expected
        checks.append(Check(f"{st.name} Synced in a Primary component of size {expected}", good,
                            f"state {st.state}, {st.cluster_status}, size {st.cluster_size}"))
    uuids = {st.cluster_state_uuid for st in current.nodes if st.reachable}
    checks.append(Check("every node reports the same cluster state UUID", len(uuids) == 1,
                        ", ".join(f"{st.name}: {st.cluster_state_uuid}" for st in current.nodes
                                  if st.reachable)))
    live = [n for n, st in zip(nodes, current.nodes, strict=True) if st.reachable and st.primary]
    if live:
        checks += _replication(transport, live, report)
    else:
        checks.append(Check("a node accepts writes", False, "no node is reachable and Primary"))
    for check in checks:
        report(f"{'ok  ' if check.ok else 'FAIL'} {check.name}"
               + ("" if check.ok or not check.detail else f": {check.detail}"))
    return VerifyResult(tuple(checks))


def _replication(transport: Transport, live: list[NodeSettings], report: Report) -> list[Check]:
    token = _random.token_hex(4)
    db = f"galerakv_verify_{token}"
    table = f"`{db}`.`marker`"
    checks: list[Check] = []
    first = live[0]
    try:
        transport.query(first, f"CREATE DATABASE `{db}`;\nCREATE TABLE {table} ("
                        "id VARCHAR(80) NOT NULL PRIMARY KEY, written_on VARCHAR(64) NOT NULL"
                        ") ENGINE=InnoDB;")
    except QueryFailed as exc:
        return [Check(f"create a marker table through {first.name}", False, exc.detail)]
    try:
        written: dict[str, str] = {}
        for node in live:
            marker = f"{node.name}-{token}"
            try:
                transport.query(node, f"SET SESSION wsrep_sync_wait = {SYNC_WAIT};\n"
                                f"INSERT INTO {table} VALUES ('{marker}', '{node.name}');")
            except QueryFailed as exc:
                checks.append(Check(f"write a marker through {node.name}", False, exc.detail))
                continue
            written[marker] = node.name
            checks.append(Check(f"write a marker through {node.name}", True))
        for reader in live:
            try:
                rows = transport.rows(reader, f"SET SESSION wsrep_sync_wait = {SYNC_WAIT};\n"
                                      f"SELECT id FROM {table} ORDER BY id;")
            except QueryFailed as exc:
                checks.append(Check(f"read markers on {reader.name}", False, exc.detail))
                continue
            seen = {row[0] for row in rows}
            for marker, writer in written.items():
                if writer == reader.name:
                    continue
                checks.append(Check(f"{writer} -> {reader.name}", marker in seen,
                                    "" if marker in seen else "marker row not found"))
    finally:
        _drop(transport, live, db, report)
    return checks


def _drop(transport: Transport, live: list[NodeSettings], db: str, report: Report) -> None:
    for node in live:
        try:
            transport.query(node, f"DROP DATABASE IF EXISTS `{db}`;")
            return
        except QueryFailed:
            continue
    report(f"warning: could not drop {db}; drop it by hand with `galerakv cluster sql -e "
           f"'DROP DATABASE {db}'`")
