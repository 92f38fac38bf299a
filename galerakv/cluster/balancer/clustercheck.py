"""``galerakv clustercheck``: a small HTTP health responder for one Galera node.

In the spirit of Percona's clustercheck: a load balancer asks it over HTTP
whether its node may take traffic, because a MySQL-protocol check cannot tell
a Synced node from a Donor or a non-Primary one, which all accept connections.

Any request gets ``200`` when the node is Synced (``wsrep_local_state`` 4), in
the Primary component and ``wsrep_ready``; otherwise ``503``, with one line
saying why. A Donor/Desynced node (state 2) counts as up only with
``--donor-ok``. While the maintenance file (``state_dir/<node>/maintenance``,
``galerakv cluster maintenance``) exists the answer is ``503`` whatever the
node's state, so an operator can drain a node before working on it.

The node is asked over one kept-open connection as the ``monitor`` account
(``SHOW STATUS`` needs no privilege); every query is bounded by ``timeout``,
so a hung or SIGSTOPped node answers ``503`` in time instead of leaving the
check hanging. The answer is reused for a fraction of a second, so the
read-write and read-only listeners checking together cost one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galerakv.galera.status import node_status

STATUS_SQL = ("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', "
              "'wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_ready')")
REQUEST_LIMIT = 8192
REQUEST_TIMEOUT = 2.0


@dataclass(frozen=True)
class Verdict:
    """What the responder answers: ``ok`` gives 200, otherwise 503."""

    ok: bool
    reason: str

    @property
    def code(self) -> int:
        return 200 if self.ok else 503


def judge(status: Mapping[str, str], donor_ok: bool = False) -> Verdict:
    """The verdict on a node from its wsrep status variables (names in lower case):
    :meth:`~galerakv.galera.status.NodeStatus.serving`, the judgement the server's
    routing and ``galerakv cluster status`` use too."""
    serving = node_status("", status).serving(donor_ok)
    return Verdict(serving.ok, serving.reason)


@dataclass(frozen=True)
class Maintenance:
    """A node drained on purpose: its maintenance file exists, so its check answers 503."""

    node: str
    path: str
    since: float  # when the file was written (seconds since the epoch)
    note: str  # what the file says: who drained it

    @property
    def since_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))

    @property
    def end(self) -> str:
        """The command that brings the node back."""
        return f"galerakv cluster maintenance --node {self.node} off"

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "path": self.path, "since": self.since, "note": self.note,
                "end": self.end}


def read_maintenance(node: str, path: Path) -> Maintenance | None:
    """The node's maintenance, or None when its file does not exist."""
    try:
        since = path.stat().st_mtime
    except OSError:
        return None
    try:
        note = path.read_text(errors="replace").strip()
    except OSError as exc:
        note = f"(unreadable: {exc.strerror or exc})"
    return Maintenance(node, str(path), since, note)


StatusSource = Callable[[], Awaitable[Mapping[str, str]]]
"""Returns a node's wsrep status; raises on any failure."""


class Checker:
    """Answers health questions about one node, reusing fresh answers briefly."""

    def __init__(self, source: StatusSource, *, donor_ok: bool, maintenance: Path | None,
                 timeout: float, reuse: float = 0.2, on_failure: Callable[[], None] | None = None) -> None:
        self.source = source
        self.donor_ok = donor_ok
        self.maintenance = maintenance
        self.timeout = timeout
        self.reuse = reuse
        self.on_failure = on_failure
        self._lock = asyncio.Lock()
        self._last: tuple[float, Verdict] | None = None

    async def verdict(self) -> Verdict:
        if self.maintenance is not None and self.maintenance.exists():
            return Verdict(False, f"maintenance ({self.maintenance} exists)")
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.reuse:
                return self._last[1]
            try:
                status = await asyncio.wait_for(self.source(), self.timeout)
                found = judge(status, self.donor_ok)
            except TimeoutError:
                found = Verdict(False, f"no answer within {self.timeout:g} s")
                if self.on_failure:
                    self.on_failure()
            except Exception as exc:  # any driver or socket error means "not healthy"
                found = Verdict(False, f"cannot query the node: {_short(exc)}")
                if self.on_failure:
                    self.on_failure()
            self._last = (time.monotonic(), found)
            return found

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP exchange: read the request head, answer, close."""
        try:
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            v = await self.verdict()
            body = (v.reason + "\n").encode()
            head = (f"HTTP/1.1 {v.code} {'OK' if v.ok else 'Service Unavailable'}\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            writer.write(head + body)
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError, OSError):
                await asyncio.wait_for(writer.wait_closed(), REQUEST_TIMEOUT)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class NodeStatusSource:
    """The node's wsrep status over one kept-open asyncmy connection."""

    def __init__(self, host: str, port: int, user: str, password: str, connect_timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self.params: dict[str, Any] = {"host": host, "port": port, "user": user, "password": password,
                                       "connect_timeout": connect_timeout, "autocommit": True, "ssl": tls}
        self.conn: Any = None

    async def __call__(self) -> Mapping[str, str]:
        import asyncmy  # the driver is only needed by the running responder

        if self.conn is None:
            self.conn = await asyncmy.connect(**self.params)
        async with self.conn.cursor() as cur:
            await cur.execute(STATUS_SQL)
            rows = await cur.fetchall()
        return {str(name).lower(): str(value) for name, value in rows}

    def drop(self) -> None:
        """Forget the connection after a failure (it may be mid-reply); reconnect next time."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


async def serve(checker: Checker, host: str, port: int, ready: Callable[[], None] | None = None,
                tls: ssl.SSLContext | None = None) -> None:
    """Answer on ``host:port`` (HTTPS with ``tls``) until SIGTERM or SIGINT."""
    server = await asyncio.start_server(checker.handle, host, port, limit=REQUEST_LIMIT,
                                        reuse_address=True, ssl=tls,
                                        ssl_handshake_timeout=REQUEST_TIMEOUT if tls else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready:
        ready()
    async with server:
        await stop.wait()


def drop_privileges(user: str) -> str | None:
    """Run on as ``user`` when started as root (the name, or None when nothing changed).

    The responder needs root for nothing: it listens on an unprivileged port and
    reads only the maintenance file in the node's folder, which the user mariadbd
    runs as owns. Everything it needs from root-only files (the monitor password)
    is read before this.
    """
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    return user


def run(host: str, port: int, source: NodeStatusSource, *, donor_ok: bool, maintenance: Path,
        timeout: float, node: str, run_as: str = "mysql", tls: ssl.SSLContext | None = None) -> None:
    """The ``galerakv clustercheck`` process: as ``run_as`` (when started as root), serve until
    told to stop. ``tls`` (the node's certificate, loaded while still root) makes it HTTPS."""
    import encodings.idna  # noqa: F401  (TLS names a peer through this codec, imported lazily)

    import asyncmy  # noqa: F401  (loaded while the code is still readable by root alone)

    dropped = drop_privileges(run_as)
    checker = Checker(source, donor_ok=donor_ok, maintenance=maintenance, timeout=timeout,
                      on_failure=source.drop)

    def ready() -> None:
        print(f"clustercheck for {node}: listening on {'https' if tls else 'http'}://{host}:{port}/ "
              f"(node {source.params['host']}:{source.params['port']})"
              + (f" as {dropped}" if dropped else ""), flush=True)

    try:
        asyncio.run(serve(checker, host, port, ready, tls))
    finally:
        source.drop()
    print(f"clustercheck for {node}: stopped", file=sys.stderr, flush=True)
