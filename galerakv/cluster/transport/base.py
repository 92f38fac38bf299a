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
  files, never on a command line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from galerakv.cluster.render.node import RenderContext
from galerakv.config import NodeSettings, Settings
from galerakv.errors import NodeError
from galerakv.secrets import Secrets

# client errors that mean "could not reach the server", not "the server said no"
UNREACHABLE_CODES = ("ERROR 2002", "ERROR 2003", "ERROR 2006", "ERROR 2013")

Report = Callable[[str], None]
"""Where progress lines go (click.echo in the CLI)."""


class QueryFailed(NodeError):
    """The mariadb client failed on a node; ``unreachable`` when it could not connect."""

    def __init__(self, node: str, message: str, unreachable: bool = False) -> None:
        super().__init__(node, message)
        self.unreachable = unreachable
        self.detail = message


@dataclass(frozen=True)
class Preflight:
    """Problems found before anything starts: errors stop ``up``, warnings are shown."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class Transport(ABC):
    """Runs, stops, configures and queries the nodes of one cluster."""

    def __init__(self, settings: Settings, ctx: RenderContext) -> None:
        self.settings = settings
        self.ctx = ctx

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
    def start(self, node: NodeSettings, bootstrap: bool) -> None:
        """Launch mariadbd (with ``--wsrep-new-cluster`` when ``bootstrap``); do not wait."""

    @abstractmethod
    def is_running(self, node: NodeSettings) -> bool:
        """Whether the mariadbd galerakv started for this node is alive."""

    @abstractmethod
    def stop(self, node: NodeSettings, timeout: float) -> None:
        """Stop the node cleanly (SIGTERM or service stop) and wait until it is gone."""

    @abstractmethod
    def grastate(self, node: NodeSettings) -> str | None:
        """Text of the node's grastate.dat, or None when there is none."""

    @abstractmethod
    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        """The last lines of the node's error log."""

    @abstractmethod
    def wsrep_recover(self, node: NodeSettings, timeout: float) -> str:
        """Run ``mariadbd --wsrep-recover`` on the stopped node (as the mysql user, with
        its own configuration); returns what it logged. The output is also appended
        to the node's error log, where the doctor reads the recovered position."""

    @abstractmethod
    def write_grastate(self, node: NodeSettings, text: str) -> None:
        """Replace the stopped node's grastate.dat, keeping its owner and mode."""

    # -- SQL
    @abstractmethod
    def query(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> str:
        """Run SQL as the admin through the mariadb client in batch mode (-N -B).

        Returns the client's output; raises :class:`QueryFailed` on any error.
        """

    @abstractmethod
    def client_argv(self, node: NodeSettings, batch: bool) -> list[str]:
        """The command that opens the mariadb client as admin on ``node``."""

