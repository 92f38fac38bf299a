"""The SQL of the MariaDB backend's write groups and read batches, built without I/O.

Key conditions for many keys at once, the statements that write a group's
changes back (multi-row upserts kept under ``max_allowed_packet``, one delete,
``COMMIT``) and the rows they read, as pure functions unit-tested without a
database. Arguments go to the driver, which escapes them; no value is ever
formatted into the SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from galerakv.backend.base import Entry
from galerakv.backend.writeset import GroupPlan, RowKey, Unit, by_namespace, group_keys


def chunks(upserts: list[tuple[str, Entry]], max_bytes: int) -> list[list[tuple[str, Entry]]]:
    """Consecutive runs of upserts whose values add up to at most ``max_bytes`` (one at least)."""
    out: list[list[tuple[str, Entry]]] = []
    size = max_bytes + 1
    for item in upserts:
        weight = len(item[1].value) + len(item[1].key)
        if size + weight > max_bytes:
            out.append([])
            size = 0
        out[-1].append(item)
        size += weight
    return out


def rows(fetched: Sequence[Sequence[Any]]) -> dict[RowKey, Entry]:
    """Rows of ``SELECT ns, k, v, ct, ver, exp`` by (namespace, key)."""
    out: dict[RowKey, Entry] = {}
    for ns, k, v, ct, ver, exp in fetched:
        key = bytes(k).decode()
        out[(bytes(ns).decode(), key)] = Entry(key, bytes(v), bytes(ct).decode(), str(ver), exp)
    return out


def changes(plan: GroupPlan, max_statement_bytes: int) -> tuple[list[str], list[Any]]:
    """The statements that write a plan's changes back, ending with COMMIT, and their arguments:
    multi-row upserts (each under max_allowed_packet) and one delete."""
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
    statements.append("COMMIT")
    return statements, args


def lock_rows(units: Sequence[Unit], values: bool) -> tuple[str, list[bytes]]:
    """``SELECT ... FOR UPDATE`` of every row the units touch, expired ones too, and its
    arguments; the stored values only when ``values`` (else an empty binary string)."""
    where, args = where_keys(group_keys(units))
    value = "v" if values else "x''"
    return f"SELECT ns, k, {value}, ct, ver, exp FROM kv WHERE {where} FOR UPDATE", args


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
