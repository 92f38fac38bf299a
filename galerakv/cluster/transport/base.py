"""What the cluster lifecycle needs from a place where nodes run.

The orchestration (``galerakv.cluster.operations.lifecycle``) is written once against
:class:`Transport`; ``local`` runs nodes as processes on this machine,
``ssh`` does the same on real hosts. Contract:

- every method acts on one node and returns when its step is done, except
  :meth:`Transport.start`, which launches and returns at once (the lifecycle
  waits, showing progress);
- failures raise :class:`~galerakv.errors.NodeError` (with the node's log tail
  when it helps) or :class:`QueryFailed`; nothing raises a third-party exception;
- SQL always travels on the client's standard input and credentials in option
  files, never on a command line;
- what callers need comes back parsed (:class:`~galerakv.galera.position.GraState`,
  :class:`~galerakv.galera.position.Position`, :class:`~galerakv.galera.status.NodeStatus`,
  rows): the text a node prints is read in one place, here. A transport
  implements the primitives (the ``_``-prefixed methods return the raw text).

:class:`~galerakv.cluster.transport.fake.FakeTransport` keeps nodes in memory
for unit tests of the operations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from galerakv.cluster.render.node import RenderContext
from galerakv.config import NodeSettings, Settings
from galerakv.errors import NodeError
from galerakv.galera.position import GraState, Position, parse_grastate, parse_recovered
from galerakv.galera.position import with_safe_to_bootstrap as _with_safe
from galerakv.galera.status import NodeStatus, node_status, parse_status_rows, unreachable
from galerakv.secrets import Secrets

# client errors that mean "could not reach the server", not "the server said no"
UNREACHABLE_CODES = ("ERROR 2002", "ERROR 2003", "ERROR 2006", "ERROR 2013")

T = TypeVar("T")
MAX_PARALLEL_HOSTS = 16

Report = Callable[[str], None]
"""Where progress lines go (click.echo in the CLI)."""


class QueryFailed(NodeError):
    """The mariadb client failed on a node; ``unreachable`` when it could not connect."""

    def __init__(self, node: str, message: str, unreachable: bool = False) -> None:
        super().__init__(node, message)
        self.unreachable = unreachable
        self.detail = message


@dataclass(frozen=True)
class NodeState:
    """What can be read of a node whether it runs or not (the doctor reads it of every node)."""

    running: bool
    grastate: GraState | None
    log: str  # the error log's tail


@dataclass(frozen=True)
class Preflight:
    """Problems found before anything starts: errors stop ``up``, warnings are shown."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class Transport(ABC):
    """Runs, stops, configures and queries the nodes of one cluster."""

    concurrent = False  # whether per-node steps run at once (nodes on hosts of their own)

    def __init__(self, settings: Settings, ctx: RenderContext) -> None:
        self.settings = settings
        self.ctx = ctx

    def each(self, nodes: Iterable[NodeSettings], step: Callable[[NodeSettings], T]) -> list[T]:
        """``step`` of every node, results in the nodes' order; at the same time on every host when
        the transport is ``concurrent`` (the first failure, in the nodes' order, is raised)."""
        todo = list(nodes)
        if not self.concurrent or len(todo) < 2:
            return [step(n) for n in todo]
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(todo))) as pool:
            return list(pool.map(step, todo))

    # -- checks and set-up
    @abstractmethod
    def preflight(self, nodes: tuple[NodeSettings, ...]) -> Preflight:
        """Check that ``nodes`` (stopped ones) can start: paths, ports, provider."""

    @abstractmethod
    def missing_packages(self) -> list[str]:
        """Debian packages the nodes need that are not installed."""

    @abstractmethod
    def install_packages(self, packages: list[str], report: Report) -> None:
        """Install ``packages`` where the nodes run."""

    @abstractmethod
    def write_config(self, node: NodeSettings, files: dict[str, str], secrets: Secrets) -> None:
        """Put the rendered files, the SST credentials (when needed) and the admin's
        client option file in place."""

    @abstractmethod
    def is_initialized(self, node: NodeSettings) -> bool:
        """Whether the node's datadir holds a database (system tables)."""

    @abstractmethod
    def initialize(self, node: NodeSettings, secrets: Secrets) -> None:
        """Create the system tables with the admin password already set (bootstrap node)."""

    @abstractmethod
    def prepare_empty(self, node: NodeSettings) -> None:
        """Create an empty datadir for a node that will get its data by state transfer."""

    # -- processes
    @abstractmethod
    def start(self, node: NodeSettings, bootstrap: bool, position: Position | None = None) -> None:
        """Launch mariadbd (with ``--wsrep-new-cluster`` when ``bootstrap``, and
        ``--wsrep-start-position`` when ``position`` is given: the position recovered
        from InnoDB after an unclean stop); do not wait."""

    @abstractmethod
    def is_running(self, node: NodeSettings) -> bool:
        """Whether the mariadbd galerakv started for this node is alive."""

    @abstractmethod
    def stop(self, node: NodeSettings, timeout: float) -> None:
        """Stop the node cleanly (SIGTERM or service stop) and wait until it is gone."""

    @abstractmethod
    def _grastate_text(self, node: NodeSettings) -> str | None:
        """Text of the node's grastate.dat, or None when there is none."""

    @abstractmethod
    def _write_grastate_text(self, node: NodeSettings, text: str) -> None:
        """Replace the stopped node's grastate.dat, keeping its owner and mode."""

    @abstractmethod
    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        """The last lines of the node's error log."""

    @abstractmethod
    def _wsrep_recover_log(self, node: NodeSettings, timeout: float) -> str:
        """Run ``mariadbd --wsrep-recover`` on the stopped node (as the mysql user, with
        its own configuration), after a :data:`~galerakv.galera.log.RECOVER_MARKER`
        line in its error log; returns what it logged (also kept in the error log,
        where the doctor reads the recovered position). NodeError when it fails."""

    def grastate(self, node: NodeSettings) -> GraState | None:
        """The node's saved position (grastate.dat), or None when there is none."""
        text = self._grastate_text(node)
        return parse_grastate(text) if text is not None else None

    def node_state(self, node: NodeSettings, log_lines: int) -> NodeState:
        """Whether the node runs, its grastate.dat and the last ``log_lines`` of its log, read
        together (over ssh: in one call)."""
        return NodeState(self.is_running(node), self.grastate(node), self.log_tail(node, log_lines))

    def set_safe_to_bootstrap(self, node: NodeSettings, safe: bool) -> None:
        """Set ``safe_to_bootstrap`` in the stopped node's grastate.dat, keeping the rest."""
        text = self._grastate_text(node)
        if text is None:
            raise NodeError(node.name, "grastate.dat is missing (it disappeared while recovering?)")
        self._write_grastate_text(node, _with_safe(text, safe))

    def wsrep_recover(self, node: NodeSettings, timeout: float) -> Position | None:
        """The position InnoDB holds (``mariadbd --wsrep-recover``), None when it printed none."""
        return parse_recovered(self._wsrep_recover_log(node, timeout))

    def read_node_files(self, node: NodeSettings, paths: tuple[str, ...]) -> dict[str, str | None]:
        """The text of each file (None: missing or unreadable), as the node's host has it."""
        found: dict[str, str | None] = {}
        for path in paths:
            try:
                found[path] = Path(path).read_text()
            except (OSError, UnicodeDecodeError):
                found[path] = None
        return found

    def file_report(self, node: NodeSettings) -> str | None:
        """The node's folder as :func:`~galerakv.cluster.doctor.facts.parse_file_report` reads it, from
        a script run on its host; None when this transport reads the files directly."""
        return None

    @abstractmethod
    def script_argv(self, node: NodeSettings, script: str) -> list[str]:
        """The command that runs the POSIX shell ``script`` on the node's host, as the
        toolkit's user there, with this process's standard streams (for long copies whose
        data flows through a pipe: backups and restores)."""

    # -- SQL
    @abstractmethod
    def query(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> str:
        """Run SQL as the admin through the mariadb client in batch mode (-N -B).

        Returns the client's output; raises :class:`QueryFailed` on any error.
        """

    @abstractmethod
    def client_argv(self, node: NodeSettings, batch: bool, extra: tuple[str, ...] = ()) -> list[str]:
        """The command that opens the mariadb client as admin on ``node``, with ``extra`` arguments
        (``-e STATEMENT``) given to the client as they are."""

    def status(self, node: NodeSettings, timeout: float = 10.0) -> NodeStatus:
        """The node's wsrep status; an unreachable :class:`NodeStatus` when it does not answer."""
        try:
            out = self.query(node, STATUS_SQL, timeout=timeout)
        except QueryFailed as exc:
            return unreachable(node.name, exc.detail)
        return node_status(node.name, parse_status_rows(out))

    def running_status(self, node: NodeSettings, timeout: float = 10.0) -> NodeStatus | None:
        """None when the node's mariadbd does not run, else its status (one step on a remote host)."""
        return self.status(node, timeout) if self.is_running(node) else None

    def rows(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> list[tuple[str, ...]]:
        """The result rows of ``sql``, each a tuple of column texts."""
        return [tuple(line.split("\t")) for line in self.query(node, sql, timeout).splitlines()]

    def variables(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> dict[str, str]:
        """``SHOW [GLOBAL] STATUS|VARIABLES ...`` as a dict, names in lower case."""
        return parse_status_rows(self.query(node, sql, timeout))


STATUS_SQL = "SHOW GLOBAL STATUS LIKE 'wsrep%';"
