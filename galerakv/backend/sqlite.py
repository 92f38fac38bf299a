"""The embedded SQLite backend.

One writer thread owns the only write connection and commits groups of
queued operations in one ``BEGIN IMMEDIATE`` transaction each (group commit);
every operation runs in its own savepoint, so one failing operation does not
undo the others. Reads run on the event loop's own read connection: in WAL
mode they see the last committed state and never wait for the writer.

Every change takes the next value of a database-wide revision counter kept
in the ``meta`` table and bumped under the write lock (a put's revision is
also its version, so versions never repeat, across processes too), and is
written to the ``history`` table in the same transaction: revisions follow
commit order with no gap, which is what the watch feed reads back.
With ``synchronous=NORMAL`` a commit is in the WAL file when the write returns,
so it survives a kill -9 of the server; ``full`` also survives power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from galerakv.backend.base import (
    BackendStatus,
    ChangePage,
    ChangeQuery,
    Compare,
    Entry,
    Event,
    ListPage,
    ListQuery,
    Op,
    OpResult,
    Retention,
    Store,
    TxnResult,
    expiry,
    settled,
    with_revision,
)
from galerakv.backend.keys import paginate, successor
from galerakv.errors import BackendUnavailable, Compacted, InvalidRequest, StoreError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns           TEXT NOT NULL,
    key          TEXT NOT NULL,
    value        BLOB NOT NULL,
    content_type TEXT NOT NULL,
    rev          INTEGER NOT NULL,
    expires_at   REAL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
-- history kept from here on: a database made before it has none before its current revision
INSERT OR IGNORE INTO meta (name, value) SELECT 'compacted', value FROM meta WHERE name = 'revision';
CREATE TABLE IF NOT EXISTS history (
    rev          INTEGER PRIMARY KEY,
    ns           TEXT NOT NULL,
    key          TEXT NOT NULL,
    value        BLOB,            -- NULL: the key was deleted
    content_type TEXT,
    version      INTEGER,         -- the put's version, or the deleted entry's
    expires_at   REAL,
    at           REAL NOT NULL    -- commit time, for retention by age
);
"""
_HISTORY = ("INSERT INTO history (rev, ns, key, value, content_type, version, expires_at, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_GET = f"SELECT value, content_type, rev, expires_at FROM kv WHERE ns = ? AND key = ? AND {_LIVE}"

T = TypeVar("T")
Job = Callable[["_Tx"], Any]

_BATCH_MAX = 256  # operations committed together at most
_COMPACT_CHUNK = 5000  # history rows deleted per write transaction when compacting


def _entry(key: str, row: tuple[Any, ...]) -> Entry:
    return Entry(key, bytes(row[0]), row[1], str(row[2]), row[3])


class _Tx:
    """What a writer job sees: the connection inside an open transaction."""

    def __init__(self, conn: sqlite3.Connection, revision: int, now: float) -> None:
        self.conn = conn
        self.revision = revision
        self.now = now

    def next_version(self) -> int:
        self.revision += 1
        return self.revision

    def current(self, ns: str, key: str) -> Entry | None:
        row = self.conn.execute(_GET, (ns, key, self.now)).fetchone()
        return None if row is None else _entry(key, row)

    def apply(self, ns: str, op: Op) -> OpResult:
        cur = self.current(ns, op.key)
        done = settled(op, cur)
        if done is not None:
            return done
        if op.kind == "delete":
            assert cur is not None
            self.remove(ns, op.key, int(cur.version))
            return OpResult("ok", cur)
        rev = self.next_version()
        expires = expiry(op.ttl, self.now)
        self.conn.execute(
            "INSERT INTO kv (ns, key, value, content_type, rev, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,"
            " content_type = excluded.content_type, rev = excluded.rev,"
            " expires_at = excluded.expires_at",
            (ns, op.key, op.value, op.content_type, rev, expires),
        )
        self.conn.execute(_HISTORY, (rev, ns, op.key, op.value, op.content_type, rev, expires, self.now))
        entry = Entry(op.key, op.value, op.content_type, str(rev), expires)
        return OpResult("created" if cur is None else "ok", entry)

    def remove(self, ns: str, key: str, version: int) -> None:
        """Delete a key's row and record the delete in the history."""
        self.conn.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
        self.conn.execute(_HISTORY, (self.next_version(), ns, key, None, None, version, None, self.now))


class _OneChange:
    """A job that changes at most one key (a put or delete of one key).

    Its statements (the row, then its history) only fail together with the
    whole database (disk full, I/O error), so it runs without a savepoint of
    its own (two statements fewer per write); should one fail anyway, the
    group is rolled back and run again with a savepoint per job.
    """

    __slots__ = ("ns", "op")

    def __init__(self, ns: str, op: Op) -> None:
        self.ns = ns
        self.op = op

    def __call__(self, tx: _Tx) -> OpResult:
        result = tx.apply(self.ns, self.op)
        return with_revision(result, tx.revision)  # type: ignore[no-any-return]


class _Writer(threading.Thread):
    """The single writer: takes jobs from a queue and group-commits them."""

    def __init__(self, path: Path, synchronous: str) -> None:
        super().__init__(name="galerakv-sqlite-writer", daemon=True)
        self.jobs: queue.SimpleQueue[tuple[Job, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self.conn = _connect(path, synchronous)
        # Writers of several worker processes take turns on this lock before BEGIN IMMEDIATE:
        # the kernel wakes the next one when the lock is released, where SQLite's own busy
        # handler sleeps and polls (a PUT p99 of ~500 ms was measured with two workers).
        self.lock = os.open(path.with_name(path.name + "-writer.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def run(self) -> None:
        try:
            while True:
                first = self.jobs.get()
                if first is None:
                    return
                group = [first]
                while len(group) < _BATCH_MAX:
                    try:
                        item = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self.jobs.put(None)  # stop after this group
                        break
                    group.append(item)
                self._commit(group)
        finally:
            self.conn.close()
            os.close(self.lock)

    def _commit(self, group: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            try:
                outcomes = self._commit_locked(group, savepoints=False)
            except _Unsafe:
                outcomes = self._commit_locked(group, savepoints=True)
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        _resolve(group, outcomes)

    def _commit_locked(self, group: list[tuple[Job, asyncio.Future[Any]]],
                       savepoints: bool) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            (revision,) = self.conn.execute(
                "SELECT value FROM meta WHERE name = 'revision'").fetchone()
            tx = _Tx(self.conn, revision, time.time())
            for job, _ in group:
                before = tx.revision  # a failed job gives its revisions back: no gap in the history
                if isinstance(job, _OneChange) and not savepoints:
                    try:
                        outcomes.append((True, job(tx)))
                    except (StoreError, sqlite3.Error) as exc:
                        self.conn.execute("ROLLBACK")
                        raise _Unsafe from exc
                    continue
                self.conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, job(tx)))
                    self.conn.execute("RELEASE op")
                except (StoreError, sqlite3.Error) as exc:
                    self.conn.execute("ROLLBACK TO op")
                    self.conn.execute("RELEASE op")
                    tx.revision = before
                    outcomes.append((False, _translate(exc)))
            self.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (tx.revision,))
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            err = _translate(exc)
            outcomes = [(False, err)] * len(group)
        return outcomes


class _Unsafe(Exception):
    """A job without a savepoint failed: run the group again with one per job."""


def _resolve(group: list[tuple[Job, asyncio.Future[Any]]], outcomes: list[tuple[bool, Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
        by_loop.setdefault(fut.get_loop(), []).append((fut, ok, value))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _translate(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError):
        return InvalidRequest(f"the database rejected the operation: {exc}")
    return BackendUnavailable(f"SQLite error: {exc}")


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _create_private(path: Path) -> None:
    """Create the database file 0600 (its directory 0700 when galerakv creates it), so no other
    local user reads any namespace; SQLite gives the -wal and -shm files the same mode.
    An existing file keeps the mode its owner gave it."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))


class SQLiteStore(Store):
    """Key-value store in one SQLite file (see the module docstring)."""

    kind = "sqlite"

    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        try:
            _create_private(self.path)
            setup = _connect(self.path, self.synchronous)
            try:
                setup.executescript(_SCHEMA)
                setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                setup.close()
            self._writer = _Writer(self.path, self.synchronous)
            self._writer.start()
            self._reader = _connect(self.path, self.synchronous)
            self._reader.execute("PRAGMA query_only = ON")
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailable(
                f"cannot open the SQLite database {self.path}: {exc}; check that its directory "
                "exists and is writable, or set server.sqlite_path"
            ) from exc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.jobs.put(None)
            await asyncio.to_thread(self._writer.join, 10)
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ----------------------------------------------------------------- plumbing

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise BackendUnavailable("the SQLite store is not open")
        return self._reader

    async def _write(self, job: Callable[[_Tx], T]) -> T:
        if self._writer is None:
            raise BackendUnavailable("the SQLite store is not open")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writer.jobs.put((job, fut))
        return await fut

    # ----------------------------------------------------------------- reads

    async def get(self, ns: str, key: str, *, local: bool = False) -> Entry | None:
        try:
            row = self._read().execute(_GET, (ns, key, time.time())).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return None if row is None else _entry(key, row)

    async def list_keys(self, ns: str, query: ListQuery, *, local: bool = False) -> ListPage:
        conn = self._read()
        now = time.time()
        cols = "key, rev, expires_at" if query.keys_only else "key, rev, expires_at, value, content_type"

        async def fetch(start: str, inclusive: bool, upper: str | None, count: int) -> list[Entry]:
            sql = (f"SELECT {cols} FROM kv WHERE ns = ? AND key {'>=' if inclusive else '>'} ?"
                   + (" AND key < ?" if upper is not None else "") + f" AND {_LIVE} ORDER BY key LIMIT ?")
            args: list[Any] = [ns, start, *([upper] if upper is not None else []), now, count]
            try:
                rows = conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            if query.keys_only:
                return [Entry(r[0], b"", "", str(r[1]), r[2]) for r in rows]
            return [Entry(r[0], bytes(r[3]), r[4], str(r[1]), r[2]) for r in rows]

        return await paginate(query, fetch)

    async def namespaces(self, *, local: bool = False) -> list[str]:
        conn = self._read()
        now = time.time()
        found: list[str] = []
        try:
            while (row := conn.execute(f"SELECT ns FROM kv WHERE ns > ? AND {_LIVE} ORDER BY ns LIMIT 1",
                                       (found[-1] if found else "", now)).fetchone()) is not None:
                found.append(row[0])
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return found

    # ----------------------------------------------------------------- writes

    async def put(self, ns: str, key: str, value: bytes, content_type: str, *,
                  ttl: float | None = None, if_match: str | None = None,
                  if_none_match: bool = False) -> OpResult:
        return await self._write(_OneChange(ns, Op("put", key, value, content_type, ttl, if_match, if_none_match)))

    async def delete(self, ns: str, key: str, *, if_match: str | None = None) -> OpResult:
        return await self._write(_OneChange(ns, Op("delete", key, if_match=if_match)))

    async def batch(self, ns: str, ops: Sequence[Op]) -> list[OpResult]:
        if all(op.kind == "get" for op in ops):
            return [OpResult("ok", e) if (e := await self.get(ns, op.key)) else OpResult("not_found")
                    for op in ops]

        def job(tx: _Tx) -> list[OpResult]:
            return with_revision([tx.apply(ns, op) for op in ops], tx.revision)  # type: ignore[no-any-return]

        return await self._write(job)

    async def txn(self, ns: str, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op]) -> TxnResult:
        def job(tx: _Tx) -> TxnResult:
            ok = all(c.holds(tx.current(ns, c.key)) for c in compares)
            branch = success if ok else failure
            results = tuple(tx.apply(ns, op) for op in branch)
            return TxnResult(ok, tuple(with_revision(r, tx.revision) for r in results), tx.revision)

        return await self._write(job)

    async def purge_expired(self, limit: int = 1000) -> int:
        def job(tx: _Tx) -> int:
            expired = tx.conn.execute(
                "SELECT ns, key, rev FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?", (tx.now, limit)).fetchall()
            for ns, key, rev in expired:
                tx.remove(ns, key, rev)
            return len(expired)

        return await self._write(job)

    # ----------------------------------------------------------------- history

    async def revision(self) -> tuple[int, int]:
        try:
            meta = dict(self._read().execute(
                "SELECT name, value FROM meta WHERE name IN ('revision', 'compacted')").fetchall())
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return int(meta["revision"]), int(meta["compacted"])

    async def changes(self, query: ChangeQuery) -> ChangePage:
        conn = self._read()
        where: list[str] = ["rev > ?"]
        args: list[Any] = [query.since]
        if query.ns is not None:
            where.append("ns = ?")
            args.append(query.ns)
        if query.prefix:
            where.append("key >= ?")
            args.append(query.prefix)
            upper = successor(query.prefix)
            if upper is not None:
                where.append("key < ?")
                args.append(upper)
        value = "NULL" if query.keys_only else "value"
        sql = (f"SELECT rev, ns, key, {value}, content_type, version, expires_at, value IS NULL FROM history"
               f" WHERE {' AND '.join(where)} ORDER BY rev LIMIT ?")
        try:
            conn.execute("BEGIN")  # one snapshot: the counters and the rows agree
            try:
                meta = dict(conn.execute(
                    "SELECT name, value FROM meta WHERE name IN ('revision', 'compacted')").fetchall())
                rows = conn.execute(sql, [*args, query.limit]).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        head, compacted = meta["revision"], meta["compacted"]
        if query.since < compacted:
            raise Compacted(query.since, compacted, head)
        events = tuple(
            Event(r[0], r[1], r[2], "delete", version=None if r[5] is None else str(r[5])) if r[7] else
            Event(r[0], r[1], r[2], "put", b"" if r[3] is None else bytes(r[3]), r[4], str(r[5]), r[6])
            for r in rows)
        done = events[-1].revision if len(events) == query.limit else max(head, query.since)
        return ChangePage(events, done, compacted)

    async def compact(self, retention: Retention) -> int:
        """Move the compaction mark, then delete the history up to it a chunk per write
        transaction, so writes go on between the chunks."""
        def mark(tx: _Tx) -> int:
            (compacted,) = tx.conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
            old = tx.conn.execute("SELECT rev FROM history WHERE at < ? ORDER BY rev DESC LIMIT 1",
                                  (tx.now - retention.seconds,)).fetchone()
            target = retention.horizon(tx.revision, old[0] if old else 0)
            if target > compacted:
                tx.conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (target,))
            return int(max(target, compacted))

        def chunk(upto: int) -> Callable[[_Tx], int]:
            def job(tx: _Tx) -> int:
                return tx.conn.execute(
                    "DELETE FROM history WHERE rev IN (SELECT rev FROM history WHERE rev <= ? ORDER BY rev LIMIT ?)",
                    (upto, _COMPACT_CHUNK)).rowcount
            return job

        upto = await self._write(mark)
        while await self._write(chunk(upto)) == _COMPACT_CHUNK:
            await asyncio.sleep(0)
        return upto

    async def status(self) -> BackendStatus:
        try:
            meta = dict(self._read().execute(
                "SELECT name, value FROM meta WHERE name IN ('revision', 'compacted')").fetchall())
        except (sqlite3.Error, BackendUnavailable) as exc:
            return BackendStatus(False, self.kind, f"SQLite not readable: {exc}")
        return BackendStatus(True, self.kind, "ok", {"path": str(self.path), "revision": meta["revision"],
                                                      "compacted": meta["compacted"],
                                                      "synchronous": self.synchronous})
