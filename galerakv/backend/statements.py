"""The SQL of the MariaDB backend's write groups and read batches, built without I/O.

Key conditions for many keys at once, the statements that write a group's
changes back (multi-row upserts kept under ``max_allowed_packet``, one delete,
``COMMIT``) and the rows they read, as pure functions unit-tested without a
database. Arguments go to the driver, which escapes them; no value is ever
formatted into the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from galerakv.backend.base import Entry
from galerakv.backend.writeset import Change, GroupPlan, RowKey, Unit, Witness, by_namespace, group_keys

T = TypeVar("T")

# The revision counter (row 1) and how far the history was compacted (row 2).
REVISION_ROW = 1
COMPACTED_ROW = 2


def runs(items: Sequence[T], weight: Callable[[T], int], max_bytes: int) -> list[list[T]]:
    """Consecutive runs of items whose weights add up to at most ``max_bytes`` (one item at least)."""
    out: list[list[T]] = []
    size = max_bytes + 1
    for item in items:
        w = weight(item)
        if size + w > max_bytes:
            out.append([])
            size = 0
        out[-1].append(item)
        size += w
    return out


def chunks(upserts: list[tuple[str, Entry]], max_bytes: int) -> list[list[tuple[str, Entry]]]:
    """Consecutive runs of upserts whose values add up to at most ``max_bytes`` (one at least)."""
    return runs(upserts, lambda item: len(item[1].value) + len(item[1].key), max_bytes)


def _change_weight(change: Change) -> int:
    return len(change.key) + (len(change.entry.value) if change.entry is not None else 0)


def rows(fetched: Sequence[Sequence[Any]]) -> dict[RowKey, Entry]:
    """Rows of ``SELECT ns, k, v, ct, ver, exp`` by (namespace, key)."""
    out: dict[RowKey, Entry] = {}
    for ns, k, v, ct, ver, exp in fetched:
        key = bytes(k).decode()
        out[(bytes(ns).decode(), key)] = Entry(key, bytes(v), bytes(ct).decode(), str(ver), exp)
    return out


def changes(plan: GroupPlan, max_statement_bytes: int) -> tuple[list[str], list[Any]]:
    """The statements that write a plan's changes back and commit them, and their arguments.

    Multi-row upserts (each under max_allowed_packet) and one delete; then
    the group's revisions are taken from the counter row (its lock is held
    from here to COMMIT, so revisions follow commit order cluster-wide: a
    writer on another node conflicts on the row and is retried) and every
    change is recorded in ``kv_history``. The last result set is the
    revision of the group's last change (:func:`history_rows` explains it),
    or for a group without changes, the counter as it decided.
    """
    statements: list[str] = []
    args: list[Any] = []
    for chunk in chunks(plan.upserts(), max_statement_bytes):
        for ns, e in chunk:
            args += (ns.encode(), e.key.encode(), e.value, e.content_type.encode(), int(e.version), e.expires_at)
        statements.append(
            "INSERT INTO kv (ns, k, v, ct, ver, exp) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            + " ON DUPLICATE KEY UPDATE v = VALUES(v), ct = VALUES(ct), ver = VALUES(ver), exp = VALUES(exp)")
    deletes = plan.deletes()
    if deletes:
        where, del_args = where_keys(by_namespace(deletes))
        statements.append(f"DELETE FROM kv WHERE {where}")
        args += del_args
    if not plan.log:
        statements += [f"SELECT rev FROM galerakv_revision WHERE id = {REVISION_ROW}", "COMMIT"]
        return statements, args
    statements.append(f"UPDATE galerakv_revision SET rev = LAST_INSERT_ID(rev + %s) WHERE id = {REVISION_ROW}")
    args.append(len(plan.log))
    for sql, sql_args in history_rows(plan.log, plan.now, max_statement_bytes):
        statements.append(sql)
        args += sql_args
    statements += ["COMMIT", "SELECT LAST_INSERT_ID()"]
    return statements, args


def history_rows(log: Sequence[Change], now: float, max_statement_bytes: int) -> list[tuple[str, list[Any]]]:
    """``INSERT INTO kv_history`` of a group's changes, after its counter was moved on by
    ``len(log)`` with ``LAST_INSERT_ID(rev + n)``: change i (1-based) takes revision
    ``LAST_INSERT_ID() - n + i``. A delete has no value and no content type."""
    out: list[tuple[str, list[Any]]] = []
    n = len(log)
    i = 0
    for chunk in runs(log, _change_weight, max_statement_bytes):
        args: list[Any] = []
        for c in chunk:
            i += 1
            if c.entry is not None:
                e = c.entry
                args += (n - i, c.ns.encode(), c.key.encode(), e.value, e.content_type.encode(), int(e.version),
                         e.expires_at, now)
            else:
                args += (n - i, c.ns.encode(), c.key.encode(), None, None,
                         None if c.removed is None else int(c.removed), None, now)
        out.append(("INSERT INTO kv_history (rev, ns, k, v, ct, ver, exp, at) VALUES "
                    + ", ".join(["(LAST_INSERT_ID() - %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk)), args))
    return out


def witness_revision(witness: Witness) -> tuple[str, list[Any]]:
    """The revision of a witness change, found from the newest end of the history (where a change
    just committed is), and its arguments."""
    kind = "ct IS NULL" if witness.version is None else "ct IS NOT NULL"
    return (f"SELECT rev FROM kv_history WHERE ver = %s AND ns = %s AND k = %s AND {kind}"
            " ORDER BY rev DESC LIMIT 1",
            [int(witness.history_version), witness.ns.encode(), witness.key.encode()])


def lock_rows(units: Sequence[Unit], values: bool, lock: bool = True) -> tuple[str, list[bytes]]:
    """``SELECT ... FOR UPDATE`` (plain ``SELECT`` without ``lock``) of every row the units touch,
    expired ones too, and its arguments; the stored values only when ``values`` (else an empty
    binary string)."""
    where, args = where_keys(group_keys(units))
    value = "v" if values else "x''"
    return f"SELECT ns, k, {value}, ct, ver, exp FROM kv WHERE {where}{' FOR UPDATE' if lock else ''}", args


def joined(statements: tuple[list[str], list[Any]]) -> tuple[str, list[Any] | None]:
    """Statements and their arguments as one multi-statement ``execute``."""
    return "; ".join(statements[0]), statements[1] or None


def where_keys(keys: dict[str, list[str]]) -> tuple[str, list[bytes]]:
    """``(ns = ? AND k IN (...)) OR ...`` for keys grouped by namespace, and its arguments."""
    parts: list[str] = []
    args: list[bytes] = []
    for ns, names in keys.items():
        parts.append(f"(ns = %s AND k IN ({', '.join(['%s'] * len(names))}))")
        args.append(ns.encode())
        args.extend(k.encode() for k in names)
    return " OR ".join(parts), args
