"""The MariaDB Galera backend: the store contract on a Galera cluster, on asyncmy pools.

Routing (see :mod:`galerakv.backend.routing`): one writer at a time, reads
spread over Synced nodes, endpoints probed every second; a node that fails a
query (connection lost, error 1047 "WSREP has not yet prepared node", a
timeout) is taken out at once and brought back by the probe.

Consistency: reads are causal by default: ``SET STATEMENT wsrep_sync_wait=1
FOR SELECT ...`` makes the node apply every write the cluster committed before
the read began, so a GET after a 2xx write sees it through any node and any
server instance. ``local=True`` (``?consistency=local``) skips the wait.
Point reads that arrive together share one query and one causality wait
(:mod:`galerakv.backend.coalesce`): every read in it began before the query
was sent, so each still sees every write acknowledged before it began.

Writes are group-committed: the writes that arrive while the writer's lanes
are busy go together into one transaction on the writer (one
``SELECT ... FOR UPDATE`` of their keys, one multi-row upsert, one delete,
one COMMIT: one Galera write set, one certification round), and each write's
conditions are decided on its own, in arrival order, by
:class:`~galerakv.backend.writeset.GroupPlan`. Under one retry policy, a
certification conflict (1213) or lock wait timeout is retried with the
conditions checked again; a node failure before COMMIT is retried on the next
writer. When the connection dies during COMMIT the outcome is unknown:
versions are chosen here, before the write, so another node is asked whether
one of the group's new versions is there. Only a group known not to have
committed is repeated; otherwise every caller in it gets OutcomeUnknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncmy
from asyncmy.constants import CLIENT
from asyncmy.errors import MySQLError

from galerakv.backend import routing, statements
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
    with_revision,
)
from galerakv.backend.coalesce import Coalescer
from galerakv.backend.keys import paginate, successor
from galerakv.backend.retry import RetryPolicy
from galerakv.backend.writeset import Change, GroupPlan, RowKey, Unit, UnitResult, blind_plan, by_namespace
from galerakv.config import MAX_KEY_BYTES, Settings
from galerakv.errors import BackendUnavailable, Compacted, InvalidRequest, OutcomeUnknown, StoreError
from galerakv.paths import StatePaths

log = logging.getLogger("galerakv.backend.mariadb")

T = TypeVar("T")

SCHEMA_VERSION = 2
MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS kv ("
        " ns VARBINARY(128) NOT NULL,"
        f" k VARBINARY({MAX_KEY_BYTES}) NOT NULL,"
        " v LONGBLOB NOT NULL,"
        " ct VARBINARY(255) NOT NULL,"
        " ver BIGINT UNSIGNED NOT NULL,"
        " exp DOUBLE NULL,"
        " PRIMARY KEY (ns, k),"
        " KEY kv_exp (exp)"
        ") ENGINE=InnoDB",
    ),
    2: (
        # The history of changes the watch feed reads: one row per change, written in the
        # change's transaction; revisions come from the counter row (see statements.changes).
        "CREATE TABLE IF NOT EXISTS kv_history ("
        " rev BIGINT UNSIGNED NOT NULL PRIMARY KEY,"
        " ns VARBINARY(128) NOT NULL,"
        f" k VARBINARY({MAX_KEY_BYTES}) NOT NULL,"
        " v LONGBLOB NULL,"          # NULL: a delete
        " ct VARBINARY(255) NULL,"   # NULL: a delete
        " ver BIGINT UNSIGNED NULL,"  # the put's version, or the deleted entry's
        " exp DOUBLE NULL,"
        " at DOUBLE NOT NULL"        # commit time, for retention by age
        ") ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS galerakv_revision ("
        " id TINYINT UNSIGNED NOT NULL PRIMARY KEY,"
        " rev BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
        f"INSERT IGNORE INTO galerakv_revision (id, rev) VALUES ({statements.REVISION_ROW}, 0),"
        f" ({statements.COMPACTED_ROW}, 0)",
    ),
}

# MariaDB error codes
ER_LOCK_DEADLOCK = 1213          # also a Galera certification conflict at commit
ER_LOCK_WAIT_TIMEOUT = 1205
ER_UNKNOWN_COM_ERROR = 1047      # WSREP has not yet prepared node for application use
ER_ACCESS_DENIED = 1045
ER_DBACCESS_DENIED = 1044
ER_NO_SUCH_TABLE = 1146
ER_BAD_DB = 1049
ER_QUERY_INTERRUPTED = 1317
CLIENT_ERRORS = range(2000, 3000)  # connection lost, server gone, cannot connect
CONFLICTS = {ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT}
NODE_FAILURES = {ER_UNKNOWN_COM_ERROR, ER_QUERY_INTERRUPTED, 1180, 1927}  # 1927: connection killed

CONNECT_TIMEOUT = 2
READ_TIMEOUT = 3.0
WRITE_TIMEOUT = 12.0
PROBE_INTERVAL = 1.0
WRITER_WAIT = 3.0        # how long a write waits for a new writer right after the last one failed
OUTCOME_TIMEOUT = 15.0   # how long the outcome of a lost COMMIT is sought (> evs.suspect_timeout);
# WRITE_TIMEOUT + OUTCOME_TIMEOUT stays under the 30 s a client commonly waits

# Coalescing (measured in bench/results/galera.md): writes that arrive together are one
# transaction on the writer, point reads that arrive together are one query.
WRITE_LANES = 2          # groups committing at once (each holds one writer connection)
WRITE_GROUP_MAX = 128    # units in one group
WRITE_GROUP_BYTES = 4 << 20  # values in one group, and in one statement (written twice, rows and
# history, escaped: under the rendered max_allowed_packet of 64M)
COMPACT_CHUNK = 1000     # history rows deleted per transaction when compacting (a small write set)
COMPACT_CHUNKS = 100     # transactions per compaction round at most
READ_LANES = 4           # batched point-read queries in flight at once
READ_BATCH_MAX = 64
# what a request wanted a node for, in "no Synced Galera node <purpose>"
WRITE = "to write to"
READ = "to read from"

_LIVE = "(exp IS NULL OR exp > %s)"
_SCHEMA_TABLE_EXISTS = ("SELECT COUNT(*) FROM information_schema.TABLES"
                        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'galerakv_schema'")
_COLS = "k, v, ct, ver, exp"


def _stored(result: UnitResult) -> UnitResult:
    """A blind put's result when only its being stored is known (answered as a replace)."""
    return OpResult("ok", result.entry) if isinstance(result, OpResult) else result


def _event(row: Sequence[Any]) -> Event:
    """An event from a history row of :meth:`MariaDBStore.changes`."""
    rev, _, ns, k, v, ct, ver, exp = row
    version = None if ver is None else str(ver)
    if ct is None:
        return Event(int(rev), bytes(ns).decode(), bytes(k).decode(), "delete", version=version)
    return Event(int(rev), bytes(ns).decode(), bytes(k).decode(), "put", b"" if v is None else bytes(v),
                 bytes(ct).decode(), version, exp)


def _code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _node_failure(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | OSError | ConnectionError):
        return True
    code = _code(exc)
    return code in NODE_FAILURES or code in CLIENT_ERRORS


def _entry(row: Sequence[Any], keys_only: bool = False) -> Entry:
    key = bytes(row[0]).decode()
    if keys_only:
        return Entry(key, b"", "", str(row[1]), row[2])
    return Entry(key, bytes(row[1]), bytes(row[2]).decode(), str(row[3]), row[4])


class _Uncommitted(Exception):
    """The write failed before COMMIT was sent: safe to try again elsewhere."""


class MariaDBStore(Store):
    """Key-value store on a MariaDB Galera cluster (see the module docstring)."""

    kind = "mariadb"

    def __init__(self, settings: Settings, user: str, password: str, *, pool_size: int = 16,
                 policy: RetryPolicy | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._tls = tls  # TLS to the nodes (cluster.tls), verified; None: plain
        self.database = settings.database.name
        self._user = user
        self._password = password
        self.pool_size = pool_size
        self.policy = policy or RetryPolicy()
        self.router = routing.Router(routing.endpoints(settings))
        self._pools: dict[str, Any] = {}
        self._pool_locks: dict[str, asyncio.Lock] = {}
        self._prober: asyncio.Task[None] | None = None
        self._draining: set[asyncio.Future[None]] = set()
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self.last_problem = "not probed yet"
        self.writes: Coalescer[Unit, UnitResult] = Coalescer(
            self._write_group, lanes=WRITE_LANES, max_items=WRITE_GROUP_MAX, max_weight=WRITE_GROUP_BYTES,
            weight=lambda unit: unit.weight)
        self.reads: dict[bool, Coalescer[RowKey, Entry | None]] = {
            local: Coalescer(functools.partial(self._read_batch, local=local),
                             lanes=READ_LANES, max_items=READ_BATCH_MAX)
            for local in (False, True)}

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Probe every endpoint once, prepare the schema if a node serves, then keep probing.

        A cluster that is down is not an error here (the server starts and
        answers 503 until it comes back); wrong credentials are.
        """
        await self._probe_all()
        if any(h.reason.startswith("access denied") for h in self.router.health.values()):
            raise BackendUnavailable(
                f"MariaDB refused the application user {self._user!r}: {self.last_problem}; check the "
                f"[app] password in {StatePaths.of(self.settings).secrets} (written by `galerakv cluster up`)")
        with contextlib.suppress(StoreError):
            await self._ensure_schema()
        self._prober = asyncio.create_task(self._probe_loop())

    async def close(self) -> None:
        closed = BackendUnavailable("the server is shutting down", retry_after=1)
        await self.writes.close(closed)
        for reads in self.reads.values():
            await reads.close(closed)
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
        for pool in self._pools.values():
            pool.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.wait_closed(), 5)
        self._pools.clear()
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)

    # ------------------------------------------------------------------ probing

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self._probe_all()
                if not self._schema_ready and self.router.writer is not None:
                    await self._ensure_schema()
            except StoreError as exc:
                log.info("probe: %s", exc)
            except Exception:  # the prober must never die
                log.exception("probe failed")

    async def _probe_all(self) -> None:
        eps = self.router.endpoints
        results = await asyncio.gather(*(self._probe(ep) for ep in eps))
        before = self.router.writer
        was_healthy = {ep.name: self.router.health.get(ep.name, routing.Health(False)).healthy for ep in eps}
        self.router.update_all({ep.name: health for ep, (health, _) in zip(eps, results, strict=True)})
        for ep, (health, reachable) in zip(eps, results, strict=True):
            if not health.healthy:
                self.last_problem = f"{ep.name}: {health.reason}"
                if was_healthy[ep.name] and not reachable:
                    self._drop_pool(ep.name)  # queries hung on a frozen node fail now, not at their timeout
        if self.router.writer != before:
            # the first choice is not news (every start makes one); a change is
            first = before is None and self.router.writer_lost_at is None
            log.log(logging.INFO if first else logging.WARNING, "writer: %s -> %s", before, self.router.writer)

    async def _probe(self, ep: routing.Endpoint) -> tuple[routing.Health, bool]:
        """The endpoint's health, and whether it answered at all."""
        try:
            conn = await asyncio.wait_for(self._connect(ep), CONNECT_TIMEOUT + 0.5)
        except (MySQLError, OSError, TimeoutError) as exc:
            return routing.Health(False, self._describe(exc)), False
        try:
            async with conn.cursor() as cur:
                await asyncio.wait_for(cur.execute("SHOW STATUS LIKE 'wsrep_%'"), READ_TIMEOUT)
                rows = await cur.fetchall()
            return routing.judge({str(k): str(v) for k, v in rows}), True
        except (MySQLError, OSError, TimeoutError) as exc:
            return routing.Health(False, self._describe(exc)), False
        finally:
            conn.close()

    def _fail(self, ep: routing.Endpoint, exc: BaseException) -> None:
        """A query on ``ep`` failed the way a dead node fails: route around it, drop its connections."""
        self.router.fail(ep.name, self._describe(exc))
        self._drop_pool(ep.name)

    def _drop_pool(self, name: str) -> None:
        """Close every connection to ``name``, in use or not; the next query opens a fresh pool.

        Queries in flight on it fail at once (as a node failure, handled by
        their caller) instead of hanging until their timeout on a frozen node.
        """
        for key in (f"{name}/r", f"{name}/w"):
            pool = self._pools.pop(key, None)
            if pool is None:
                continue
            pool.terminate()
            task = asyncio.ensure_future(self._drain(pool))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    @staticmethod
    async def _drain(pool: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.wait_closed(), 5)

    def _describe(self, exc: BaseException) -> str:
        code = _code(exc)
        if code in (ER_ACCESS_DENIED, ER_DBACCESS_DENIED):
            return f"access denied ({exc.args[1] if len(exc.args) > 1 else exc})"
        if isinstance(exc, TimeoutError):
            return "no answer (timeout)"
        return f"unreachable ({exc.args[1] if len(getattr(exc, 'args', ())) > 1 else exc})"

    async def _connect(self, ep: routing.Endpoint) -> Any:
        return await asyncmy.connect(host=ep.host, port=ep.port, user=self._user, password=self._password,
                                     db=self.database, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                     ssl=self._tls)

    async def _pool(self, ep: routing.Endpoint, writes: bool = False) -> Any:
        """The endpoint's read pool, or its write pool.

        The write pool is larger because every write holds its connection while
        its commit replicates. (Autocommit off instead of an explicit BEGIN was
        measured 2.7x slower with asyncmy: 953 vs 2,596 transactions/s.)
        """
        key = f"{ep.name}/{'w' if writes else 'r'}"
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        lock = self._pool_locks.setdefault(key, asyncio.Lock())
        async with lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = await asyncmy.create_pool(
                    minsize=1, maxsize=self.pool_size * 2 if writes else self.pool_size, host=ep.host,
                    port=ep.port, user=self._user, password=self._password, db=self.database,
                    autocommit=True, connect_timeout=CONNECT_TIMEOUT, pool_recycle=300, ssl=self._tls,
                    client_flag=CLIENT.MULTI_STATEMENTS if writes else 0)
                self._pools[key] = pool
        return pool

    async def _acquire(self, ep: routing.Endpoint, writes: bool = False) -> tuple[Any, Any]:
        """A connection to ``ep`` and the pool to release it to; the pool is made on first use,
        so a dead node fails here (MySQLError, OSError or TimeoutError), whether its pool exists
        or not."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + 1):
                pool = await self._pool(ep, writes)
                return pool, await pool.acquire()
        except RuntimeError as exc:  # the pool was dropped meanwhile: its node failed
            raise ConnectionError(f"{ep.name}: its connections were dropped") from exc

    async def _ensure_schema(self, purpose: str = WRITE) -> None:
        """Create or migrate the tables once (callers test ``_schema_ready`` first), on the writer;
        ``purpose`` says what the caller wanted a node for, when there is none."""
        async with self._schema_lock:
            if self._schema_ready:
                return

            async def migrate(cur: Any) -> None:
                # asked first: on an existing table CREATE TABLE IF NOT EXISTS leaves a note, which
                # the driver logs as a warning, and every start would log it
                await cur.execute(_SCHEMA_TABLE_EXISTS)
                (exists,) = await cur.fetchone()
                if not exists:  # (IF NOT EXISTS: another server may be creating it right now)
                    await cur.execute("CREATE TABLE IF NOT EXISTS galerakv_schema ("
                                      " id TINYINT UNSIGNED NOT NULL PRIMARY KEY,"
                                      " version INT UNSIGNED NOT NULL) ENGINE=InnoDB")
                await cur.execute("SELECT version FROM galerakv_schema WHERE id = 1")
                row = await cur.fetchone()
                current = row[0] if row else 0
                if current > SCHEMA_VERSION:
                    raise InvalidRequest(f"the database schema is version {current}, newer than this "
                                         f"galerakv ({SCHEMA_VERSION}); upgrade galerakv")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[version]:
                        await cur.execute(statement)
                    await cur.execute("INSERT INTO galerakv_schema (id, version) VALUES (1, %s)"
                                      " ON DUPLICATE KEY UPDATE version = VALUES(version)", (version,))

            await self._on_writer(migrate, purpose)
            self._schema_ready = True

    # ------------------------------------------------------------------ plumbing

    def _writer(self, purpose: str = WRITE) -> routing.Endpoint:
        name = self.router.writer
        if name is None:
            raise self._no_node(purpose)
        return self.router.by_name[name]

    def _no_node(self, purpose: str) -> BackendUnavailable:
        return BackendUnavailable(f"no Synced Galera node {purpose} ({self.last_problem})", retry_after=2)

    async def _next_writer(self) -> routing.Endpoint:
        """The writer; right after the last one failed, wait briefly for the probe to find another.

        Queries can mark every node failed at once (a cluster-wide stall while a
        dead member is evicted); the probe brings the live ones back within a
        second, and a write that waits for that is not a failed request.
        """
        lost = self.router.writer_lost_at
        if self.router.writer is None and lost is not None and time.monotonic() - lost < 30:
            deadline = time.monotonic() + WRITER_WAIT
            while self.router.writer is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        return self._writer()

    async def _on_writer(self, work: Callable[[Any], Awaitable[T]], purpose: str = WRITE) -> T:
        """Run ``work`` once on the writer in autocommit mode (schema, purge)."""
        ep = self._writer(purpose)
        try:
            pool, conn = await self._acquire(ep)
        except (MySQLError, OSError, TimeoutError) as exc:
            self._fail(ep, exc)
            raise self._translate(exc) from exc
        try:
            async with conn.cursor() as cur, asyncio.timeout(WRITE_TIMEOUT):
                return await work(cur)
        except (MySQLError, OSError, TimeoutError) as exc:
            conn.close()
            if _node_failure(exc):
                self._fail(ep, exc)
            raise self._translate(exc) from exc
        finally:
            pool.release(conn)

    def _translate(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        code = _code(exc)
        if code in (ER_NO_SUCH_TABLE, ER_BAD_DB):
            self._schema_ready = False
        return BackendUnavailable(f"MariaDB: {exc}")

    async def _read(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run a read on a healthy node, moving on to the next one when a node fails."""
        if not self._schema_ready:
            await self._ensure_schema(READ)
        tried: list[str] = []
        for ep in self.router.readers():
            try:
                pool, conn = await self._acquire(ep)
            except (MySQLError, OSError, TimeoutError) as exc:
                self._fail(ep, exc)
                tried.append(ep.name)
                continue
            try:
                async with conn.cursor() as cur, asyncio.timeout(READ_TIMEOUT):
                    return await work(cur)
            except (MySQLError, OSError, TimeoutError) as exc:
                conn.close()
                if not _node_failure(exc):
                    raise self._translate(exc) from exc
                if not isinstance(exc, TimeoutError):
                    # a slow read is not a dead node: while a member is being evicted every
                    # node's causal reads stall; a frozen node is caught by the probe
                    self._fail(ep, exc)
                tried.append(ep.name)
            finally:
                pool.release(conn)
        if not tried:
            raise self._no_node(READ)
        raise BackendUnavailable(f"no Synced Galera node answered a read (tried {', '.join(tried)}; "
                                 f"{self.last_problem})", retry_after=2)

    async def _write_group(self, units: Sequence[Unit]) -> list[UnitResult]:
        """Commit a group of units in one transaction on the writer under the retry policy."""
        if not self._schema_ready:
            await self._ensure_schema()
        last: BaseException | None = None
        for attempt in self.policy.attempts():
            ep = await self._next_writer()
            try:
                return await self._attempt_group(ep, units)
            except _Uncommitted as exc:
                last = exc.__cause__ or exc
            except MySQLError as exc:
                if _code(exc) not in CONFLICTS:
                    raise self._translate(exc) from exc
                last = exc
            if attempt.last:
                break
            await attempt.backoff()
        raise BackendUnavailable(f"the write did not go through after {self.policy.tries} tries: {last}",
                                 retry_after=1)

    async def _attempt_group(self, ep: routing.Endpoint, units: Sequence[Unit]) -> list[UnitResult]:
        try:
            pool, conn = await self._acquire(ep, writes=True)
        except (MySQLError, OSError, TimeoutError) as exc:
            self._fail(ep, exc)
            raise _Uncommitted() from exc
        committing = False
        plan: GroupPlan | None = None
        decided: GroupPlan | None = None
        results: list[UnitResult] | None = None
        try:
            async with conn.cursor() as cur:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    if all(unit.blind for unit in units):
                        plan = blind_plan(units, time.time())
                        committing = True  # the whole group and its COMMIT go in one round trip
                        rows = await self._blind_send(cur, units, plan)
                        decided = GroupPlan(rows, plan.now, plan.versions)
                        results = decided.run_all(units)
                        revision = await self._last_row(cur, current=False)
                    else:
                        plan = decided = await self._plan(cur, units)
                        results = plan.run_all(units)
                        committing = True  # the changes and COMMIT go in one round trip
                        await cur.execute(*statements.joined(statements.changes(plan, WRITE_GROUP_BYTES)))
                        revision = await self._last_row(cur, current=True)
                return decided.stamped(revision)
        except (MySQLError, OSError, TimeoutError) as exc:
            conn.close()  # never reuse a connection in an unknown transaction state
            if _code(exc) in CONFLICTS:
                raise
            if not _node_failure(exc):
                raise self._translate(exc) from exc
            self._fail(ep, exc)
            if not committing:
                raise _Uncommitted() from exc
            assert plan is not None
            committed = await self._committed(plan, ep, conn.thread_id())
            if committed is None:
                raise OutcomeUnknown(
                    f"{ep.name} failed during COMMIT and no other node could tell whether the write "
                    "committed; read the key before retrying", retry_after=1) from exc
            if committed == 0:
                raise _Uncommitted() from exc
            if results is None:  # a blind group whose old rows never came back: each put was
                plan.results = [_stored(result) for result in plan.results]  # stored, created or not
                return plan.stamped(committed)
            assert decided is not None
            return decided.stamped(committed)
        finally:
            pool.release(conn)

    @staticmethod
    async def _last_row(cur: Any, current: bool) -> int:
        """Read the outcomes of every statement sent (an error surfaces here); the value of the last
        result set that has rows (the group's revision, see statements.changes). ``current``: the
        cursor still stands on the first statement's outcome."""
        found: list[Any] = []
        if current and cur.description:
            found = list(await cur.fetchall())
        while await cur.nextset():
            if cur.description:
                found = list(await cur.fetchall())
        if not found:
            raise BackendUnavailable("MariaDB answered a write group without its revision", retry_after=1)
        return int(found[-1][0])

    @staticmethod
    async def _plan(cur: Any, units: Sequence[Unit]) -> GroupPlan:
        """Begin, then lock and read the rows of every key the group touches (expired ones too),
        in one round trip."""
        select, args = statements.lock_rows(units, values=any(unit.reads_values for unit in units))
        await cur.execute(f"BEGIN; {select}", args)
        await cur.nextset()
        return GroupPlan(statements.rows(await cur.fetchall()), time.time())

    @staticmethod
    async def _blind_send(cur: Any, units: Sequence[Unit], sent: GroupPlan) -> dict[RowKey, Entry]:
        """Send a group of unconditional puts and its COMMIT in one round trip; the old rows.

        What is written does not depend on the old rows, so the upsert was
        planned before they are known (``sent``, see
        :func:`~galerakv.backend.writeset.blind_plan`) and goes with the
        locking read; the old rows, read back from the same transaction, then
        decide each put's status (created or replaced) with the same versions.
        MariaDB stops at the first failing statement, so COMMIT runs only when
        every change was made; an error (a certification conflict at COMMIT
        included) surfaces while the caller reads the remaining results.
        """
        select, args = statements.lock_rows(units, values=False)
        changes, change_args = statements.changes(sent, WRITE_GROUP_BYTES)
        await cur.execute("; ".join(["BEGIN", select, *changes]), [*args, *change_args])
        await cur.nextset()
        return statements.rows(await cur.fetchall())

    async def _committed(self, plan: GroupPlan, failed: routing.Endpoint, thread: int) -> int | None:
        """After a lost COMMIT on ``failed`` (by its connection ``thread``): the revision of the
        group's last change if it committed, 0 if it did not, None if that cannot be known.

        An absent version is an answer only once the COMMIT can no longer land,
        which is known two ways. Another node's Primary component no longer
        holds ``failed`` (``wsrep_incoming_addresses``): Galera delivers a write
        set in a view to every member that survives into the next view or to
        none. Or ``failed`` answers again and the thread that ran the COMMIT is
        gone from its ``SHOW PROCESSLIST``: the COMMIT has ended, so if it
        committed, its write set was ordered before the causal read that
        follows. (The second way matters when a frozen writer is evicted and
        back before the first is seen.) Then, causally, on another node: is the
        group's witness change there (a new version, or a deleted row gone)?
        Until one of the two holds, only a present version is an answer; the
        question is asked again until OUTCOME_TIMEOUT. Behind a balancer the
        members and threads cannot be matched to the endpoint, so only a present
        version is an answer there.
        """
        witness = plan.witness()
        if witness is None:
            return 0
        ns, key, version = witness.ns, witness.key, witness.version
        is_node = self.settings.server.route == "nodes"
        address = f"{failed.host}:{failed.port}"
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        ended = False  # the COMMIT's thread is gone from the failed node

        async def thread_ended() -> bool:
            conn = await asyncio.wait_for(self._connect(failed), CONNECT_TIMEOUT + 0.5)
            try:
                async with conn.cursor() as cur:
                    async with asyncio.timeout(READ_TIMEOUT):
                        await cur.execute("SHOW PROCESSLIST")  # allowed outside a Primary component too
                        return all(int(row[0]) != thread for row in await cur.fetchall())
            finally:
                conn.close()

        async def ask(ep: routing.Endpoint) -> int | None:
            conn = await asyncio.wait_for(self._connect(ep), CONNECT_TIMEOUT + 0.5)
            try:
                async with conn.cursor() as cur:
                    async with asyncio.timeout(READ_TIMEOUT):
                        await cur.execute("SHOW STATUS WHERE Variable_name IN "
                                          "('wsrep_incoming_addresses', 'wsrep_cluster_status')")
                        status = {str(k): str(v) for k, v in await cur.fetchall()}
                    if status.get("wsrep_cluster_status") != "Primary":
                        return None
                    members = status.get("wsrep_incoming_addresses", "").split(",")
                    settled = is_node and (ended or address not in members)
                    async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                        await cur.execute(
                            "SET STATEMENT wsrep_sync_wait=1 FOR SELECT ver FROM kv WHERE ns = %s AND k = %s",
                            (ns.encode(), key.encode()))
                        row = await cur.fetchone()
                    present = (row is None) if version is None else (row is not None and str(row[0]) == version)
                    if present:
                        await cur.execute(*statements.witness_revision(witness))
                        found = await cur.fetchone()
                        if found is not None:
                            return int(found[0]) - witness.index + len(plan.log)
                        if version is not None:
                            return None  # the row is there but its history is not: cannot tell the revision
            finally:
                conn.close()
            return 0 if settled else None

        while time.monotonic() < deadline:
            if is_node and not ended:
                try:
                    ended = await asyncio.wait_for(thread_ended(), max(0.1, deadline - time.monotonic()))
                    if ended:
                        log.info("outcome check: the COMMIT's thread %d on %s has ended", thread, failed.name)
                except (MySQLError, OSError, TimeoutError) as exc:
                    log.info("outcome check on %s: %s", failed.name, self._describe(exc))
            # the healthy endpoints first, then the others: a view change (the failed node
            # evicted, then back) can briefly fail them all, and the window in which the failed
            # node is out of the component is the one that settles the question. Every ask is
            # bounded by the deadline, so a frozen node cannot stretch it.
            healthy = self.router.readers()
            others = [ep for ep in self.router.endpoints if ep.reads and ep not in healthy]
            for ep in (*healthy, *others):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if ep.name == failed.name:
                    continue
                try:
                    answer = await asyncio.wait_for(ask(ep), left)
                except (MySQLError, OSError, TimeoutError) as exc:
                    log.info("outcome check on %s: %s", ep.name, self._describe(exc))
                    continue
                if answer is not None:
                    return answer
            await asyncio.sleep(0.25)
        return None

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _select(local: bool) -> str:
        return "SELECT" if local else "SET STATEMENT wsrep_sync_wait=1 FOR SELECT"

    async def get(self, ns: str, key: str, *, local: bool = False) -> Entry | None:
        return await self.reads[local].submit((ns, key))

    async def _read_batch(self, items: Sequence[RowKey], local: bool) -> list[Entry | None]:
        """The point reads that arrived together, as one query (and one causality wait)."""
        where, args = statements.where_keys(by_namespace(items))
        sql = f"{self._select(local)} ns, {_COLS} FROM kv WHERE ({where}) AND {_LIVE}"
        params = [*args, time.time()]

        async def work(cur: Any) -> dict[RowKey, Entry]:
            await cur.execute(sql, params)
            return {(bytes(row[0]).decode(), (entry := _entry(row[1:])).key): entry
                    for row in await cur.fetchall()}

        found = await self._read(work)
        return [found.get(item) for item in items]

    async def list_keys(self, ns: str, query: ListQuery, *, local: bool = False) -> ListPage:
        now = time.time()
        cols = "k, ver, exp" if query.keys_only else _COLS
        nsb = ns.encode()

        async def fetch(start: str, inclusive: bool, upper: str | None, count: int) -> list[Entry]:
            sql = (f"{self._select(local)} {cols} FROM kv WHERE ns = %s AND k {'>=' if inclusive else '>'} %s"
                   + (" AND k < %s" if upper is not None else "") + f" AND {_LIVE} ORDER BY k LIMIT %s")
            args: list[Any] = [nsb, start.encode(), *([upper.encode()] if upper is not None else []), now, count]

            async def work(cur: Any) -> list[Entry]:
                await cur.execute(sql, args)
                return [_entry(row, query.keys_only) for row in await cur.fetchall()]

            return await self._read(work)

        return await paginate(query, fetch)

    async def namespaces(self, *, local: bool = False) -> list[str]:
        sql = f"{self._select(local)} ns FROM kv WHERE ns > %s AND {_LIVE} ORDER BY ns LIMIT 1"
        now = time.time()
        found: list[bytes] = []

        async def work(cur: Any) -> bytes | None:
            await cur.execute(sql, (found[-1] if found else b"", now))
            row = await cur.fetchone()
            return None if row is None else bytes(row[0])

        # one seek past each namespace (ns leads the primary key), each a read of its own
        while (ns := await self._read(work)) is not None:
            found.append(ns)
        return [ns.decode() for ns in found]

    # ------------------------------------------------------------------ writes

    async def put(self, ns: str, key: str, value: bytes, content_type: str, *,
                  ttl: float | None = None, if_match: str | None = None,
                  if_none_match: bool = False) -> OpResult:
        op = Op("put", key, value, content_type, ttl, if_match, if_none_match)
        result = await self.writes.submit(Unit(ns, "op", (op,)))
        assert isinstance(result, OpResult)
        return result

    async def delete(self, ns: str, key: str, *, if_match: str | None = None) -> OpResult:
        result = await self.writes.submit(Unit(ns, "op", (Op("delete", key, if_match=if_match),)))
        assert isinstance(result, OpResult)
        return result

    async def batch(self, ns: str, ops: Sequence[Op]) -> list[OpResult]:
        if all(op.kind == "get" for op in ops):
            entries = await asyncio.gather(*(self.get(ns, op.key) for op in ops))
            return [OpResult("ok", e) if e else OpResult("not_found") for e in entries]
        result = await self.writes.submit(Unit(ns, "batch", tuple(ops)))
        assert isinstance(result, list)
        return result

    async def txn(self, ns: str, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op]) -> TxnResult:
        unit = Unit(ns, "txn", tuple(success), tuple(compares), tuple(failure))
        if all(op.kind == "get" for op in (*success, *failure)):
            return await self._read_txn(unit)
        result = await self.writes.submit(unit)
        assert isinstance(result, TxnResult)
        return result

    async def _read_txn(self, unit: Unit) -> TxnResult:
        """A transaction that writes nothing, decided on a reader with no row lock: its compares and
        gets see one read view, opened after the causality wait (so every write acknowledged before
        the request is in it), at the revision that view shows. Locking rows on the writer for it
        would let any token that may read make writers wait."""
        select, args = statements.lock_rows([unit], values=unit.reads_values, lock=False)

        async def work(cur: Any) -> tuple[dict[RowKey, Entry], int]:
            await cur.execute("START TRANSACTION READ ONLY")
            # the first read opens the view (repeatable read), after its causality wait
            await cur.execute(f"{self._select(False)} rev FROM galerakv_revision WHERE id = %s",
                              (statements.REVISION_ROW,))
            row = await cur.fetchone()
            await cur.execute(select, args)
            rows = statements.rows(await cur.fetchall())
            await cur.execute("COMMIT")
            return rows, int(row[0]) if row else 0

        rows, revision = await self._read(work)
        result = GroupPlan(rows, time.time()).run(unit)
        assert isinstance(result, TxnResult)
        return with_revision(result, revision)  # type: ignore[no-any-return]

    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired rows in one transaction, each a delete in the history."""
        async def work(cur: Any) -> int:
            await cur.execute("BEGIN")
            try:
                await cur.execute("SELECT ns, k, ver FROM kv WHERE exp IS NOT NULL AND exp <= %s"
                                  " ORDER BY exp LIMIT %s FOR UPDATE", (now, limit))
                expired = [(bytes(ns).decode(), bytes(k).decode(), str(ver)) for ns, k, ver in await cur.fetchall()]
                if not expired:
                    await cur.execute("ROLLBACK")
                    return 0
                where, args = statements.where_keys(by_namespace((ns, k) for ns, k, _ in expired))
                await cur.execute(f"DELETE FROM kv WHERE {where}", args)
                log = [Change(ns, k, None, ver) for ns, k, ver in expired]
                await cur.execute("UPDATE galerakv_revision SET rev = LAST_INSERT_ID(rev + %s) WHERE id = %s",
                                  (len(log), statements.REVISION_ROW))
                for sql, sql_args in statements.history_rows(log, now, WRITE_GROUP_BYTES):
                    await cur.execute(sql, sql_args)
                await cur.execute("COMMIT")
                return len(expired)
            except BaseException:
                with contextlib.suppress(Exception):
                    await cur.execute("ROLLBACK")
                raise

        if self.router.writer is None or not self._schema_ready:
            return 0
        now = time.time()
        return await self._on_writer(work)  # a conflict with a write fails this round; the next one purges

    # ------------------------------------------------------------------ history

    async def revision(self) -> tuple[int, int]:
        async def work(cur: Any) -> dict[int, int]:
            await cur.execute(f"{self._select(False)} id, rev FROM galerakv_revision")
            return {int(i): int(r) for i, r in await cur.fetchall()}

        counters = await self._read(work)
        return counters.get(statements.REVISION_ROW, 0), counters.get(statements.COMPACTED_ROW, 0)

    async def changes(self, query: ChangeQuery) -> ChangePage:
        """One statement, so one snapshot: the counters and the history rows agree (a change's row
        and its revision commit together, and commits become visible in revision order)."""
        where: list[str] = ["rev > %s"]
        args: list[Any] = [query.since]
        if query.ns is not None:
            where.append("ns = %s")
            args.append(query.ns.encode())
        if query.prefix:
            where.append("k >= %s")
            args.append(query.prefix.encode())
            upper = successor(query.prefix)
            if upper is not None:
                where.append("k < %s")
                args.append(upper.encode())
        value = "NULL" if query.keys_only else "v"
        sql = (f"{self._select(False)} id AS rev, 0 AS hist, NULL AS ns, NULL AS k, NULL AS v, NULL AS ct,"
               " rev AS ver, NULL AS exp FROM galerakv_revision UNION ALL"
               f" (SELECT rev, 1, ns, k, {value}, ct, ver, exp FROM kv_history WHERE {' AND '.join(where)}"
               " ORDER BY rev LIMIT %s)")
        args.append(query.limit)

        async def work(cur: Any) -> list[Any]:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

        rows = await self._read(work)
        counters = {int(r[0]): int(r[6]) for r in rows if not r[1]}
        head = counters.get(statements.REVISION_ROW, 0)
        compacted = counters.get(statements.COMPACTED_ROW, 0)
        if query.since < compacted:
            raise Compacted(query.since, compacted, head)
        events = tuple(sorted((_event(r) for r in rows if r[1]), key=lambda e: e.revision))
        done = events[-1].revision if len(events) == query.limit else max(head, query.since)
        return ChangePage(events, done, compacted)

    async def compact(self, retention: Retention) -> int:
        """Move the compaction mark first, then delete the history up to it in small transactions
        (a reader that read past rows about to go then sees the mark and answers 410)."""
        if self.router.writer is None or not self._schema_ready:
            return 0

        async def work(cur: Any) -> int:
            await cur.execute("SELECT id, rev FROM galerakv_revision")
            counters = {int(i): int(r) for i, r in await cur.fetchall()}
            await cur.execute("SELECT rev FROM kv_history WHERE at < %s ORDER BY rev DESC LIMIT 1",
                              (time.time() - retention.seconds,))
            old = await cur.fetchone()
            target = retention.horizon(counters[statements.REVISION_ROW], int(old[0]) if old else 0)
            if target > counters[statements.COMPACTED_ROW]:
                await cur.execute("UPDATE galerakv_revision SET rev = GREATEST(rev, %s) WHERE id = %s",
                                  (target, statements.COMPACTED_ROW))
            mark = max(target, counters[statements.COMPACTED_ROW])
            for _ in range(COMPACT_CHUNKS):
                await cur.execute("DELETE FROM kv_history WHERE rev <= %s LIMIT %s", (mark, COMPACT_CHUNK))
                if cur.rowcount < COMPACT_CHUNK:
                    break
            return mark

        return await self._on_writer(work)

    async def status(self) -> BackendStatus:
        writer = self.router.writer
        extra: dict[str, Any] = {"route": self.settings.server.route, "writer": writer,
                                 "nodes": self.router.summary(), "schema_ready": self._schema_ready,
                                 "coalescing": {
                                     "write_groups": self.writes.batches, "writes": self.writes.items,
                                     "read_batches": sum(r.batches for r in self.reads.values()),
                                     "reads": sum(r.items for r in self.reads.values())}}
        if writer is None:
            return BackendStatus(False, self.kind, f"no Synced Galera node ({self.last_problem})", extra)
        if not self._schema_ready:
            return BackendStatus(False, self.kind, "schema not created yet", extra)
        return BackendStatus(True, self.kind, f"writing to {writer}", extra)
