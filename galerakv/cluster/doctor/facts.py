"""What the doctor collected, as frozen objects, and the pure parsers that build them.

:mod:`galerakv.cluster.doctor.collect` fills these from the machine (files,
processes, SQL, sockets); the checks read only these, so every check is
unit-tested from recorded inputs: a status snapshot, a log excerpt, a config
text. ``None`` always means "not collected" (offline, node down, ssh host), which
the checks treat as "no evidence", never as a fault.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from galerakv.cluster.balancer.clustercheck import Maintenance
from galerakv.galera.log import last_status_change, recovered_since_last_start
from galerakv.galera.position import GraState, Position

# option groups mariadbd reads ([sst] is mariabackup's and read separately)
SERVER_GROUPS = ("mysqld", "server", "mariadb", "mariadbd", "galera")
_VERSIONED_GROUP = re.compile(r"^(mysqld|mariadb|mariadbd|server)-\d+(\.\d+)?$")


@dataclass(frozen=True)
class Option:
    """One setting: its value and where it was written (``file:line``)."""

    value: str
    where: str


@dataclass(frozen=True)
class ConfigFacts:
    """A node's rendered configuration, includes followed.

    ``options`` holds the server groups' settings, names normalised (lower case,
    ``-`` as ``_``, ``loose_`` dropped), the last one winning as in mariadbd.
    """

    path: str
    options: Mapping[str, Option]
    flags: tuple[Option, ...] = ()  # bootstrap flags seen anywhere (wsrep-new-cluster)
    missing_includes: tuple[str, ...] = ()

    def get(self, name: str) -> Option | None:
        return self.options.get(name)


@dataclass(frozen=True)
class FileFacts:
    """A local node's files (``None`` fields: could not be read)."""

    node_dir: str  # state_dir/<node>: holds the datadir, which exists only once `up` made it
    datadir: str
    datadir_exists: bool
    run_as: str
    wrong_owner: tuple[str, ...] = ()  # "path (owner user:group, mode 0700)"
    blocked_dir: str | None = None  # a parent directory run_as cannot enter
    sst_leftovers: tuple[str, ...] = ()
    gra_logs: tuple[str, ...] = ()


def parse_file_report(node_dir: str, datadir: str, run_as: str, text: str) -> FileFacts:
    """FileFacts from the lines the ssh transport's script prints on the node's host
    (``datadir 0|1``, ``blocked DIR``, ``owner PATH (...)``, ``leftover PATH``, ``gra PATH``)."""
    exists, blocked = False, None
    wrong: list[str] = []
    leftovers: list[str] = []
    gra: list[str] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "datadir":
            exists = rest.strip() == "1"
        elif kind == "blocked" and blocked is None:
            blocked = rest
        elif kind == "owner":
            wrong.append(rest)
        elif kind == "leftover":
            leftovers.append(rest)
        elif kind == "gra":
            gra.append(rest)
    return FileFacts(node_dir, datadir, exists, run_as, tuple(wrong), blocked, tuple(sorted(leftovers)),
                     tuple(sorted(gra)))


def parse_listening(node_address: str, ports: tuple[tuple[int, str], ...], text: str) -> tuple[PortFact, ...]:
    """The bind test of a stopped node on an ssh host, from the ``listen HEXADDR:HEXPORT`` lines of
    the host's /proc/net/tcp and tcp6 (``file_report``): ``in-use`` when a socket listens on the
    node's address or on every address (0.0.0.0, ::) at that port, else ``free``."""
    mine = socket.inet_aton(node_address)[::-1].hex().upper()  # /proc/net/tcp: little-endian words
    wildcards = {"0" * 8, "0" * 32}
    taken: set[int] = set()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        address, _, port = rest.strip().rpartition(":")
        if kind != "listen" or not port:
            continue
        if address.upper() == mine or address in wildcards:
            with contextlib.suppress(ValueError):
                taken.add(int(port, 16))
    return tuple(PortFact(port, purpose, "in-use", f"{node_address}:{port} is already in use by another program")
                 if port in taken else PortFact(port, purpose, "free") for port, purpose in ports)


@dataclass(frozen=True)
class LogFacts:
    """Interesting lines of a node's error log since its last start, and the last
    position ``--wsrep-recover`` (or startup recovery) printed."""

    lines: tuple[str, ...] = ()
    recovered: Position | None = None  # the last --wsrep-recover, if no start since
    last_state_change: str | None = None


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    engine: str
    has_primary_key: bool

    @property
    def qualified(self) -> str:
        return f"`{self.schema}`.`{self.name}`"


@dataclass(frozen=True)
class AccountFact:
    user: str
    host: str
    plugin: str
    empty_password: bool
    ssl: bool = True  # REQUIRE SSL (or X509, ISSUER, SUBJECT, CIPHER)

    @property
    def label(self) -> str:
        return f"'{self.user}'@'{self.host}'"


@dataclass(frozen=True)
class LiveFacts:
    """What a running node answered: status, variables, tables, accounts."""

    status: Mapping[str, str]
    variables: Mapping[str, str]
    tables: tuple[Table, ...] | None = None
    accounts: tuple[AccountFact, ...] | None = None
    root_login_without_password: bool | None = None
    root_login_detail: str = ""


@dataclass(frozen=True)
class PortFact:
    """A port of a node: ``open``/``closed`` (connect test from a peer address, running
    node) or ``free``/``in-use`` (bind test, stopped local node)."""

    port: int
    purpose: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class NodeFacts:
    name: str
    address: str
    port: int
    running: bool | None = None  # the process galerakv started is alive
    config: ConfigFacts | None = None
    files: FileFacts | None = None
    grastate: GraState | None = None
    live: LiveFacts | None = None
    live_error: str = ""
    log: LogFacts = field(default_factory=LogFacts)
    ports: tuple[PortFact, ...] = ()
    maintenance: Maintenance | None = None  # drained from the balancer (its maintenance file exists)


@dataclass(frozen=True)
class BackupFacts:
    """The backups found in ``[backup] dir`` (see :mod:`galerakv.backups`)."""

    dir: str
    max_age_hours: float
    now: float  # when they were read (seconds since the epoch)
    count: int = 0  # backup directories with a readable manifest
    newest_complete: str = ""  # its directory
    newest_complete_at: float = 0.0  # its start time
    newest: str = ""  # the newest attempt's directory, whatever became of it
    newest_state: str = ""  # complete | failed | died | running
    newest_error: str = ""


@dataclass(frozen=True)
class TlsFacts:
    """A TLS cluster's certificates as the toolkit and the nodes hold them (None: not read)."""

    ca: str | None  # the cluster's CA (state_dir/tls/ca.crt), PEM
    node_ca: Mapping[str, str | None] = field(default_factory=dict)  # node -> its tls-ca.crt (local)
    node_cert: Mapping[str, str | None] = field(default_factory=dict)  # node -> its tls-server.crt
    now: float = 0.0  # seconds since the epoch


@dataclass(frozen=True)
class Facts:
    """Everything collected about one cluster."""

    cluster_name: str
    transport: str
    sst_method: str
    nodes: tuple[NodeFacts, ...]
    offline: bool = False
    provider_exists: Mapping[str, bool] = field(default_factory=dict)  # path -> exists (local)
    tools_missing: tuple[str, ...] = ()  # for the SST method, on this machine (local)
    notes: tuple[str, ...] = ()  # what could not be collected, and why
    backups: BackupFacts | None = None
    tls: TlsFacts | None = None  # None: cluster.tls = false

    @property
    def expected_size(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> NodeFacts:
        return next(n for n in self.nodes if n.name == name)


# --------------------------------------------------------------------------- option files


def normalise(name: str) -> str:
    name = name.strip().lower().replace("-", "_")
    return name.removeprefix("loose_")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_option_files(path: str, read: Callable[[str], str | None]) -> ConfigFacts:
    """Parse an option file the way mariadbd does: groups, ``!include``, last value wins.

    ``read(path)`` returns a file's text or None when it does not exist, so the
    parser runs on real files and on recorded texts alike.
    """
    options: dict[str, Option] = {}
    flags: list[Option] = []
    missing: list[str] = []
    seen: set[str] = set()

    def walk(file: str, depth: int) -> None:
        if file in seen or depth > 8:
            return
        seen.add(file)
        text = read(file)
        if text is None:
            missing.append(file)
            return
        group = ""
        short = "/".join(Path(file).parts[-2:])
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("!include "):
                walk(line.removeprefix("!include ").strip(), depth + 1)
                continue
            if line.startswith("!"):
                continue  # !includedir: galerakv never renders it
            if line.startswith("[") and "]" in line:
                group = line[1:line.index("]")].strip().lower()
                continue
            name, sep, value = line.partition("=")
            key = normalise(name)
            where = f"{short}:{number}"
            if key == "wsrep_new_cluster":
                flags.append(Option(line, where))
                continue
            if group in SERVER_GROUPS or _VERSIONED_GROUP.match(group):
                # a bare boolean option (`skip-name-resolve`) means ON
                options[key] = Option(_unquote(value.split(" #")[0]) if sep else "ON", where)

    walk(path, 0)
    return ConfigFacts(path, options, tuple(flags), tuple(missing))


# --------------------------------------------------------------------------- values

TRUE_WORDS = {"on", "1", "true", "yes"}


def is_on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_WORDS


def provider_options(text: str) -> dict[str, str]:
    """``wsrep_provider_options`` (``a.b = 1; c.d=x``) -> {name: value}."""
    found: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = value.strip()
    return found


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.I)


def parse_size(text: str) -> int | None:
    """``64M`` / ``1G`` / ``67108864`` -> bytes."""
    match = _SIZE_RE.match(text)
    if not match:
        return None
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def gcomm_hosts(address: str) -> list[str] | None:
    """Hosts listed in ``gcomm://a:4567,b?opts``; None when it is not a gcomm:// address."""
    address = address.strip()
    if not address.startswith("gcomm://"):
        return None
    body = address.removeprefix("gcomm://").split("?", 1)[0]
    hosts = []
    for item in body.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [ipv6]:port
            hosts.append(item[1:item.find("]")] if "]" in item else item[1:])
        else:
            hosts.append(item.rsplit(":", 1)[0] if item.count(":") == 1 else item)
    return hosts


# --------------------------------------------------------------------------- logs

# lines worth keeping from an error log; the checks decide what they mean
INTERESTING = re.compile(
    r"\[ERROR\]|WSREP_SST|handshake failed|Permission denied|Errcode: 13|"
    r"Inconsisten|writeset size|size exceeded|Access denied|magic file|socat|"
    r"Address already in use|failed to reach primary view|Aborting",
    re.I,
)
MAX_LOG_LINES = 200


def parse_log(text: str, start_marker: str) -> LogFacts:
    """Keep the interesting lines of the last run (after the last start marker)."""
    recovered = recovered_since_last_start(text)
    _, _, current = text.rpartition(start_marker)
    lines = [line.strip() for line in current.splitlines() if INTERESTING.search(line)]
    return LogFacts(tuple(lines[-MAX_LOG_LINES:]), recovered, last_status_change(text))
