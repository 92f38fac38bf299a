"""The metadata configuration file (``galerakv.toml``), parsed once into frozen settings.

Found by ``--config FILE``, else ``$GALERAKV_CONFIG``, else ``./galerakv.toml``;
with none, the defaults run the server on SQLite. Every problem in a file is
collected and reported at once as a :class:`~galerakv.errors.ConfigError`, each
naming the file, the key path, the bad value and a hint.

Each key is declared once, as a field of the frozen dataclass of its table: the
field gives its name, its type (which says what TOML value it takes) and its
default; ``metadata=_key(...)`` gives its meaning (the row of
docs/configuration.md), its check and its hint. :class:`_Reader` walks those
fields, so the known keys, the "did you mean" of an unknown one and the
construction of the settings all come from the declaration. Checks that involve
more than one key of a table are in ``_TABLE_CHECKS``, checks across tables in
``_cross_checks``.

Relative paths (every key typed :class:`~pathlib.Path`: ``cluster.state_dir``,
``server.sqlite_path``) are taken relative to the directory holding the
configuration file, so a file means the same thing whichever directory a
command runs from.
"""

# No ``from __future__ import annotations`` here: a field's type is read back as
# the object itself (``dataclasses.Field.type``); resolving string annotations
# with typing.get_type_hints would cost every start about a millisecond more.
import dataclasses
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from galerakv.errors import MISSING, ConfigError, ConfigIssue

ENV_VAR = "GALERAKV_CONFIG"
DEFAULT_FILE = "galerakv.toml"

Transport = Literal["local", "ssh"]
SstMethod = Literal["rsync", "mariabackup"]
BalancerKind = Literal["haproxy", "maxscale", "none"]
BackendKind = Literal["sqlite", "mariadb"]
Route = Literal["balancer", "nodes"]
Scope = Literal["read", "readwrite"]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_KEY_BYTES = 2900
"""The longest key any store keeps: MariaDB's key column is VARBINARY(2900), so that with the
namespace (128) the primary key stays within InnoDB's 3072-byte index limit."""

# --------------------------------------------------------------------------- declaring a key

# A check gets a value of the right type and returns what is wrong with it (a
# message, or a message and a hint of its own), or None when it is fine.
Check = Callable[[Any], str | tuple[str, str] | None]

_META = "galerakv"  # the metadata entry of a field that is a key of the file


@dataclass(frozen=True)
class _Key:
    """What a field says about its key beyond its name, type and default."""

    doc: str  # the key's meaning, as in its row of docs/configuration.md
    check: Check | None = None
    hint: str = ""  # how to fix a bad value; by default: leave it out for the default
    shown: str = ""  # the default as people read it, when the value itself would mislead
    entry: type | None = None  # an array of tables read through other keys than its element's fields


def _key(doc: str = "", *, check: Check | None = None, hint: str = "", shown: str = "",
         entry: type | None = None) -> dict[str, _Key]:
    """The ``metadata`` of a dataclass field that is a key of the file."""
    return {_META: _Key(doc, check, hint, shown, entry)}


def _range(lo: float, hi: float) -> Check:
    def check(v: float) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"
    return check


def _matches(regex: re.Pattern[str], what: str) -> Check:
    def check(v: str) -> str | None:
        return None if regex.match(v) else f"is not a valid {what}"
    return check


def _address(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        return None if _HOST_RE.match(v) else "is not an IP address or host name"


def _app_user(v: str) -> str | tuple[str, str] | None:
    if v == "root":
        return "must not be root", "the application gets its own least-privilege user; pick another name"
    return _matches(_IDENT_RE, "user name")(v)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


_PORT = _range(1, 65535)
_NAME_HINT = "letters, digits, '_' and '-', starting with a letter"
_IDENT_HINT = "letters, digits and '_', at most 32 characters"

# --------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class NodeSettings:
    """One database node: ``name`` is wsrep_node_name, ``address`` wsrep_node_address."""

    name: str = field(metadata=_key(
        "`wsrep_node_name`, unique", check=_matches(_NAME_RE, "node name"), hint=_NAME_HINT))
    address: str = field(metadata=_key(
        "`wsrep_node_address`, unique; loopback (127.0.0.x) with the local transport", check=_address,
        hint="an IPv4 address such as 127.0.0.11 (local) or the host's address (ssh)"))
    port: int = field(default=3306, metadata=_key("the node's client port", check=_PORT))


@dataclass(frozen=True)
class ClusterSettings:
    name: str = field(default="galerakv_cluster", metadata=_key(
        "`wsrep_cluster_name`; letters, digits, `_`, `-`, at most 32",
        check=_matches(_NAME_RE, "cluster name"),
        hint="letters, digits, '_' and '-', at most 32 characters, starting with a letter"))
    transport: Transport = field(default="local", metadata=_key(
        "`local`: nodes are processes on this machine (loopback addresses); `ssh`: real hosts"))
    state_dir: Path = field(default=Path(".galerakv"), metadata=_key(
        "datadirs, logs, pid files, rendered configs, the secrets file"))
    sst_method: SstMethod = field(default="rsync", metadata=_key("state transfer: `rsync` or `mariabackup`"))
    tls: bool = field(default=True, metadata=_key(
        "encrypt everything between the nodes and to them: client connections (every account `REQUIRE SSL`), "
        "Galera replication, state transfers, the balancer's health checks; certificates from "
        "`galerakv cluster certs` (docs/security.md). `false` only for local experiments: passwords, keys "
        "and values then cross the network in clear"))
    nodes: tuple[NodeSettings, ...] = field(default=(), metadata=_key(
        "array of `[[cluster.nodes]]` tables, the root node first"))

    def node(self, name: str) -> NodeSettings:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise KeyError(f"no node named {name!r} in the configuration (known: {known})")


@dataclass(frozen=True)
class BalancerSettings:
    kind: BalancerKind = field(default="none", metadata=_key("`haproxy`, `maxscale` or `none`"))
    address: str = field(default="127.0.0.10", metadata=_key(
        "where the balancer listens; must not collide with a node's address and port", check=_address))
    rw_port: int = field(default=3306, metadata=_key(
        "writes: one node at a time, the others as backups", check=_PORT))
    ro_port: int = field(default=3307, metadata=_key(
        "reads: spread over every Synced node; must differ from `rw_port`", check=_PORT))
    check_port: int = field(default=9200, metadata=_key(
        "`galerakv clustercheck` listens here on each node's address; HAProxy's health checks ask it "
        "(200 = Synced, Primary, ready)", check=_PORT))
    check_interval: float = field(default=1.0, metadata=_key(
        "seconds between health checks (HAProxy `inter`, MaxScale `monitor_interval`); a node leaves "
        "rotation after 2 failed checks", check=_range(0.1, 60)))
    available_when_donor: bool = field(default=False, metadata=_key(
        "count a Donor/Desynced node as up (clustercheck `--donor-ok`, galeramon `available_when_donor`)"))


_SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_JUMP_RE = re.compile(r"^$|^([a-z_][a-z0-9_.-]*@)?[A-Za-z0-9.:\[\]-]+(:\d{1,5})?$")  # "": no jump host
_COMMAND_RE = re.compile(r"^[A-Za-z0-9_./+-]+$")  # a command name or an absolute path, no shell syntax


@dataclass(frozen=True)
class SshSettings:
    """How the toolkit reaches the hosts with ``cluster.transport = "ssh"``. Nothing here is needed
    when ~/.ssh/config already says it: ssh reads that file too, and these keys win over it."""

    user: str = field(default="root", metadata=_key(
        "the login on every host; anyone but root needs password-less `sudo` (`sudo = true`)",
        check=_matches(_SSH_USER_RE, "user name"), hint="a login name such as root or deploy"))
    port: int = field(default=22, metadata=_key("sshd's port on every host", check=_PORT))
    identity_file: str = field(default="", metadata=_key(
        "the private key to log in with (relative paths: from this file's folder)", shown="ssh's own choice"))
    known_hosts_file: str = field(default="", metadata=_key(
        "the hosts' public keys; with it, a host whose key is missing or different is refused "
        "(StrictHostKeyChecking=yes)", shown="~/.ssh/known_hosts"))
    jump_host: str = field(default="", metadata=_key(
        "reach the hosts through this bastion (`ssh -J`): `[user@]host[:port]`",
        check=_matches(_JUMP_RE, "jump host"), hint="for example deploy@bastion.example.org:22", shown="none"))
    connect_timeout: float = field(default=10.0, metadata=_key(
        "seconds to wait for a host to answer before it counts as unreachable", check=_range(1, 300)))
    sudo: bool = field(default=False, metadata=_key(
        "run every step through `sudo -n` (for a `user` other than root)"))
    control_persist: float = field(default=60.0, metadata=_key(
        "seconds one ssh connection per host stays open for the next steps (OpenSSH ControlMaster; "
        "0: a new connection per step)", check=_range(0, 3600)))
    galerakv: str = field(default="galerakv", metadata=_key(
        "the galerakv command on the balancer's host, which runs the health checks beside HAProxy "
        "(install galerakv there as on this machine)", check=_matches(_COMMAND_RE, "command"),
        hint="a command or an absolute path such as /opt/galerakv/.venv/bin/galerakv"))
    systemd: Literal["auto", "yes", "no"] = field(default="auto", metadata=_key(
        "how a node runs on its host, and HAProxy and its checks on the balancer's: `yes`: as the systemd "
        "units galerakv writes (`galerakv-node-<name>.service`, `galerakv-haproxy.service`, "
        "`galerakv-check-<node>.service`; a reboot brings a node back as a joiner; their log is the journal), a "
        "host without systemd is refused; `no`: as processes galerakv starts (logs in `state_dir`); `auto`: "
        "units where the host runs systemd, else processes"))


@dataclass(frozen=True)
class DatabaseSettings:
    name: str = field(default="galerakv", metadata=_key(
        "the database galerakv stores its tables in", check=_matches(_IDENT_RE, "database name"),
        hint=_IDENT_HINT))
    user: str = field(default="galerakv", metadata=_key(
        "the least-privilege application user (never root); its password is generated into the secrets file",
        check=_app_user, hint=_IDENT_HINT))


@dataclass(frozen=True)
class ServerSettings:
    host: str = field(default="127.0.0.1", metadata=_key("listen address (`--host` overrides)", check=_address))
    port: int = field(default=8080, metadata=_key("listen port (`--port` overrides)", check=_PORT))
    backend: BackendKind = field(default="sqlite", metadata=_key("`sqlite` or `mariadb`"))
    sqlite_path: Path = field(default=Path("galerakv-data/kv.sqlite3"), metadata=_key(
        "the SQLite file (created with its directory)"))
    sqlite_synchronous: Literal["normal", "full"] = field(default="normal", metadata=_key(
        "`normal`: every acknowledged write survives a crash or kill -9 of the server; `full`: also survives "
        "power loss, at the cost of an fsync per commit group"))
    route: Route = field(default="balancer", metadata=_key(
        "MariaDB: through the balancer's ports, or `nodes` for galerakv's own routing"))
    engine: Literal["granian", "uvicorn"] = field(default="granian", metadata=_key(
        "the HTTP server: `granian` (measured faster for this API, see bench/README.md) or `uvicorn` "
        "(with uvloop and httptools)"))
    workers: int = field(default=1, metadata=_key(
        "worker processes (`--workers` overrides). SQLite: 2 on a 2-core machine measured faster (reads in "
        "parallel, writers take turns on a file lock); MariaDB: 1 measured faster (bigger write groups and "
        "read batches); see bench/README.md", check=_range(1, 64)))
    ttl_purge_interval: float = field(default=30.0, metadata=_key(
        "seconds between background purges of expired keys", check=_range(0.1, 86400)))
    log_level: Literal["critical", "error", "warning", "info", "debug"] = field(default="warning", metadata=_key(
        "`critical`, `error`, `warning`, `info`, `debug`"))
    access_log: bool = field(default=False, metadata=_key("log every request"))
    tls_cert: str = field(default="", metadata=_key(
        "serve HTTPS with this certificate (PEM; the chain after it); `galerakv cluster certs` writes one "
        "at `state_dir/tls/http.crt`. Relative paths are read from this file's folder", shown="none: plain HTTP"))
    tls_key: str = field(default="", metadata=_key(
        "the private key of `tls_cert` (PEM, no passphrase), readable by the server's user only",
        shown="none"))


@dataclass(frozen=True)
class LimitsSettings:
    """Request limits; each is stated in the 413 body when exceeded."""

    max_key_bytes: int = field(default=1024, metadata=_key(
        f"key length in UTF-8 bytes (at most {MAX_KEY_BYTES})", check=_range(1, MAX_KEY_BYTES),
        hint=f"keys are part of the primary key, a VARBINARY({MAX_KEY_BYTES}) column on MariaDB; "
        f"at most {MAX_KEY_BYTES} bytes"))
    max_value_bytes: int = field(default=1024 * 1024, metadata=_key(
        "value size", check=_range(0, 512 * 1024 * 1024)))
    max_batch_ops: int = field(default=256, metadata=_key(
        "operations in one batch", check=_range(1, 100_000)))
    max_txn_ops: int = field(default=128, metadata=_key(
        "compares plus operations in one transaction", check=_range(1, 100_000)))
    max_list_limit: int = field(default=1000, metadata=_key(
        "largest `limit` of a listing page", check=_range(1, 100_000)))
    max_ttl_seconds: int = field(default=10 * 365 * 24 * 3600, metadata=_key(
        "largest TTL (ten years)", check=_range(1, 100 * 365 * 24 * 3600)))
    max_request_bytes: int = field(default=8 * 1024 * 1024, metadata=_key(
        "largest JSON body of a batch or transaction", check=_range(1024, 1024 * 1024 * 1024),
        hint="the largest JSON body of a batch or txn request"))
    max_response_bytes: int = field(default=16 * 1024 * 1024, metadata=_key(
        "value bytes in one answer: a listing page with values ends early (with a `next_cursor`) once its "
        "values reach this; a batch of gets over it is refused (`413 response_too_large`)",
        check=_range(64 * 1024, 1024 * 1024 * 1024)))
    body_timeout: float = field(default=30.0, metadata=_key(
        "seconds a request body may take to arrive in full; then 408 and the connection is closed "
        "(a client trickling its body cannot hold a connection longer)", check=_range(0.1, 3600)))


@dataclass(frozen=True)
class Token:
    """A bearer token: its SHA-256 and the scope it has per namespace (``*`` = all)."""

    name: str
    sha256: str
    scopes: Mapping[str, Scope]
    admin: bool = False

    def scope_for(self, namespace: str) -> Scope | None:
        return self.scopes.get(namespace, self.scopes.get("*"))


@dataclass(frozen=True)
class _TokenKeys:
    """The keys of one ``[[auth.tokens]]`` table, read into a :class:`Token`."""

    name: str = field(default="", metadata=_key(
        "shown in 403 answers and logs", shown="token0, token1, ... by position"))
    token: str = field(default="", metadata=_key(
        "the secret itself (at least 16 characters); this or `token_sha256` is required",
        check=lambda v: None if len(v) >= 16 else "is too short (at least 16 characters)",
        hint="generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'", shown="none"))
    token_sha256: str = field(default="", metadata=_key(
        "or its SHA-256 in hex, which keeps the secret out of the file",
        check=lambda v: None if _SHA256_RE.fullmatch(v) else "must be 64 hex digits",
        hint="echo -n TOKEN | sha256sum", shown="none"))
    scopes: Mapping[str, Scope] = field(default_factory=dict, metadata=_key(
        'namespace = `"read"` or `"readwrite"`; `"*"` for every other namespace',
        shown="required (may be empty with `admin = true`)",
        hint='a table such as scopes = { "*" = "read", "app" = "readwrite" }'))
    admin: bool = field(default=False, metadata=_key(
        "may read the details of `/v1/status` (file paths, node addresses, the writer); other tokens see "
        "its summary"))


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = field(default=False, metadata=_key("require bearer tokens on the data endpoints"))
    tokens: tuple[Token, ...] = field(default=(), metadata=_key(
        "array of `[[auth.tokens]]` tables", entry=_TokenKeys))

    def find(self, presented: str) -> Token | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        for token in self.tokens:
            if _consteq(token.sha256, digest):
                return token
        return None


def _consteq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())

@dataclass(frozen=True)
class WatchSettings:
    """The change feed (``/watch``, ``/changes``) and the history it is read from."""

    history_revisions: int = field(default=100_000, metadata=_key(
        "changes kept in the history at most (older ones are compacted: a `since` before them gets 410)",
        check=_range(1000, 1_000_000_000)))
    history_seconds: float = field(default=3600.0, metadata=_key(
        "seconds a change is kept in the history at most", check=_range(10, 366 * 86400)))
    compact_interval: float = field(default=30.0, metadata=_key(
        "seconds between background compactions of the history", check=_range(0.1, 86400)))
    poll_interval: float = field(default=0.05, metadata=_key(
        "seconds between reads of new changes while someone watches (each server process reads once "
        "for all its watchers; its own writes are read at once)", check=_range(0.005, 10)))
    keepalive: float = field(default=15.0, metadata=_key(
        "seconds between comment lines on an idle event stream", check=_range(0.1, 300)))
    max_watchers: int = field(default=1000, metadata=_key(
        "event streams and waiting `/changes` requests held at once per server process (more get 503)",
        check=_range(1, 100_000)))
    send_timeout: float = field(default=30.0, metadata=_key(
        "seconds a watcher may take to accept an event before it is cut off", check=_range(1, 3600)))


@dataclass(frozen=True)
class BackupSettings:
    """Backups (``galerakv backup``, ``galerakv restore``) and the doctor's checks of them."""

    dir: Path = field(default=Path("backups"), metadata=_key(
        "where `galerakv backup` writes when `--to` is left out, and where the doctor looks for backups"))
    keep: int = field(default=7, metadata=_key(
        "complete backups kept in `dir`: older ones are removed after each successful backup (0: keep all)",
        check=_range(0, 100_000)))
    max_age_hours: float = field(default=26.0, metadata=_key(
        "the doctor reports `backup-old` when the newest complete backup in `dir` is older than this "
        "(only once `dir` holds a backup); 26 leaves a daily schedule two hours of slack",
        check=_range(0.1, 24 * 366)))


@dataclass(frozen=True)
class UiSettings:
    """The dashboard ``galerakv serve`` serves at ``/ui`` (docs/dashboard.md)."""

    enabled: bool = field(default=True, metadata=_key(
        "serve the dashboard at `/ui` (its pages, and the JSON they read under `/ui/api/`)"))
    cluster_refresh: float = field(default=2.0, metadata=_key(
        "seconds the cluster page's reading of the nodes, the balancer and the doctor is reused; read only "
        "while a page asks, at most once per interval per server process", check=_range(0.5, 3600)))
    cluster_config: str = field(default="", metadata=_key(
        "the galerakv.toml the cluster was deployed from, when the server runs from another file: the cluster "
        "page reads the nodes, the balancer and the doctor as `galerakv cluster status --config` that file would",
        shown="this file"))


@dataclass(frozen=True)
class Settings:
    """Everything galerakv reads from the metadata configuration file."""

    source: Path | None = None  # not a key: the file these settings were read from
    cluster: ClusterSettings = field(default_factory=ClusterSettings, metadata=_key())
    balancer: BalancerSettings = field(default_factory=BalancerSettings, metadata=_key())
    ssh: SshSettings = field(default_factory=SshSettings, metadata=_key())
    database: DatabaseSettings = field(default_factory=DatabaseSettings, metadata=_key())
    server: ServerSettings = field(default_factory=ServerSettings, metadata=_key())
    limits: LimitsSettings = field(default_factory=LimitsSettings, metadata=_key())
    watch: WatchSettings = field(default_factory=WatchSettings, metadata=_key())
    backup: BackupSettings = field(default_factory=BackupSettings, metadata=_key())
    ui: UiSettings = field(default_factory=UiSettings, metadata=_key())
    auth: AuthSettings = field(default_factory=AuthSettings, metadata=_key())

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the file are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    @property
    def state_dir(self) -> Path:
        return self.cluster.state_dir


# --------------------------------------------------------------------------- the declaration, read back


@dataclass(frozen=True)
class _Declared:
    """One key of a table: its dataclass field (name, type, default) and what its metadata says."""

    field: dataclasses.Field[Any]
    key: _Key

    @property
    def annotation(self) -> Any:
        """The declared type: what TOML value the key takes."""
        return self.field.type

    @property
    def array(self) -> bool:
        """Whether the key holds an array of tables."""
        return get_origin(self.annotation) is tuple

    @property
    def required(self) -> bool:
        return self.field.default is dataclasses.MISSING and self.field.default_factory is dataclasses.MISSING

    def default(self) -> Any:
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return self.field.default

    @property
    def table(self) -> type | None:
        """The declaration of the table this key holds (or of each entry of an array of tables)."""
        if self.key.entry is not None:
            return self.key.entry
        kind = get_args(self.annotation)[0] if self.array else self.annotation
        return kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None


_DECLARED: dict[type, dict[str, _Declared]] = {}


def _declared(cls: type) -> dict[str, _Declared]:
    """The keys a table declares, by name, in declaration order (fields without key metadata are not keys)."""
    found = _DECLARED.get(cls)
    if found is None:
        found = {f.name: _Declared(f, f.metadata[_META]) for f in dataclasses.fields(cls) if _META in f.metadata}
        _DECLARED[cls] = found
    return found


def _tables(cls: type = Settings, path: str = "") -> Iterator[tuple[str, type, bool]]:
    """Every table of the file: its key path, its declaration and whether it is an array of tables."""
    for name, key in _declared(cls).items():
        table = key.table
        if table is not None:
            sub = f"{path}.{name}" if path else name
            yield sub, table, key.array
            yield from _tables(table, sub)


# --------------------------------------------------------------------------- discovery


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to use, or None to run on defaults.

    An explicitly named file (option or environment variable) that does not
    exist is an error; a missing ``./galerakv.toml`` is not.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                [ConfigIssue(str(path), "--config", MISSING, "file not found",
                             "check the path, or run `galerakv cluster init --local 3` to write one")]
            )
        return path.resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(
                [ConfigIssue(str(path), f"${ENV_VAR}", MISSING, "file not found",
                             f"fix or unset {ENV_VAR}")]
            )
        return path.resolve()
    default = Path.cwd() / DEFAULT_FILE
    return default.resolve() if default.is_file() else None


def load(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find and parse the configuration; defaults when there is none."""
    path = find_config(explicit)
    if path is None:
        return Settings()
    return load_file(path)


def load_file(path: Path) -> Settings:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "(file)", MISSING, f"cannot read: {exc.strerror}",
                                       "check the file's permissions")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "(file)", MISSING,
                                       f"not UTF-8 (byte {exc.start})", "save the file as UTF-8")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "(syntax)", MISSING, f"invalid TOML: {exc}",
                                       "see https://toml.io for the syntax")]) from exc
    return parse(data, source=path)


# --------------------------------------------------------------------------- parsing

T = TypeVar("T")

_BAD: Any = object()  # a value that was reported; its key keeps its default

# What TOML value each declared type takes, and how an error names it.
_KINDS: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    Path: ((str,), "a string"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    Mapping: ((dict,), "a table"),
}


def _near(word: str, choices: Iterable[str]) -> str | None:
    import difflib  # only when something is wrong

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


class _Reader:
    """Reads tables by their declaration, recording issues instead of stopping at the first."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file
        self.base = base  # relative paths are taken from here
        self.issues: list[ConfigIssue] = []
        # the good values of every table read, by key path, for checks across entries
        self.tables: dict[str, dict[str, Any]] = {}

    def issue(self, key: str, value: object, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(self.file, key, value, message, hint))

    def unknown(self, table: Mapping[str, Any], prefix: str, allowed: Mapping[str, object]) -> None:
        for name in table:
            if name not in allowed:
                close = _near(name, sorted(allowed))
                hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
                self.issue(f"{prefix}.{name}" if prefix else name, table[name], "unknown key", hint)

    def table(self, cls: type[T], raw: Mapping[str, Any], prefix: str) -> T | None:
        """One table read into ``cls``, or None when a required key is missing or bad."""
        keys = _declared(cls)
        self.unknown(raw, prefix, keys)
        values: dict[str, Any] = {}
        complete = True
        for name, key in keys.items():
            path = f"{prefix}.{name}" if prefix else name
            if name in raw:
                value = self.value(path, raw[name], key)
            elif key.required:
                self.issue(path, MISSING, "is required", f'add {name} = "..." to {prefix}')
                value = _BAD
            elif key.table is not None and not key.array:
                value = self.table(key.table, {}, path)  # an absent table: its defaults, paths resolved
            else:
                value = key.default()
            if value is _BAD:
                if key.required:
                    complete = False
                    continue
                value = key.default()
            if key.annotation is Path and not value.is_absolute():
                value = self.base / value
            values[name] = value
        self.tables[prefix] = values
        check = _TABLE_CHECKS.get(cls)
        if complete and check is not None:
            complete = check(self, prefix, values, raw)
        return cls(**values) if complete else None

    def value(self, path: str, value: Any, key: _Declared) -> Any:
        """One value checked against its key's type and check; ``_BAD`` once reported."""
        table = key.table
        if table is not None:
            if key.array:
                return self.array(path, value, table)
            if not isinstance(value, dict):
                self.issue(path, value, "must be a table", f"write it as [{path}]")
                value = {}
            return self.table(table, value, path)
        if not key.key.hint and not key.required:
            shown = key.key.shown or repr(str(key.default()) if key.annotation is Path else key.default())
            hint = f"leave it out for the default ({shown}); every key is in docs/configuration.md"
        else:
            hint = key.key.hint
        if get_origin(key.annotation) is Literal:
            return self.choice(path, value, get_args(key.annotation))
        kinds, kind_name = _KINDS[get_origin(key.annotation) or key.annotation]
        # bool is an int in Python; a TOML true is never a valid number here
        if isinstance(value, bool) and bool not in kinds:
            self.issue(path, value, f"must be {kind_name}, not a boolean", hint)
            return _BAD
        well_typed = isinstance(value, kinds)  # (a name of its own: narrowing to a tuple of types gives object)
        if not well_typed:
            self.issue(path, value, f"must be {kind_name}", hint)
            return _BAD
        problem: str | tuple[str, str] | None = None
        if key.annotation is Path and not value.strip():
            problem = "must not be empty"
        if problem is None and key.key.check is not None:
            problem = key.key.check(value)
        if problem:
            message, hint = problem if isinstance(problem, tuple) else (problem, hint)
            self.issue(path, value, message, hint)
            return _BAD
        if key.annotation is Path:
            return Path(value)
        return float(value) if key.annotation is float else value

    def choice(self, path: str, value: Any, choices: tuple[str, ...]) -> Any:
        if isinstance(value, str) and value in choices:
            return value
        listed = ", ".join(repr(c) for c in choices)
        close = _near(value, choices) if isinstance(value, str) else None
        hint = f"did you mean {close!r}?" if close else f"use one of {listed}"
        if isinstance(value, str):
            self.issue(path, value, f"must be one of {listed}", hint)
        else:
            not_bool = ", not a boolean" if isinstance(value, bool) else ""
            self.issue(path, value, f"must be a string{not_bool}", hint)
        return _BAD

    def array(self, path: str, value: Any, entry: type[Any]) -> Any:
        """An array of tables, each read by ``entry``'s declaration; entries that cannot be built are left out."""
        required = [name for name, key in _declared(entry).items() if key.required]
        keys = " and ".join(required)
        if not isinstance(value, list):
            self.issue(path, value, "must be an array of tables",
                       f"write each entry as a [[{path}]] table" + (f" with {keys}" if keys else ""))
            return _BAD
        items: list[Any] = []
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(raw, dict):
                self.issue(where, raw, "must be a table" + (f" with {keys}" if keys else ""),
                           f"write it as [[{path}]]"
                           + (" followed by " + " and ".join(f"{k} = ..." for k in required) if required else ""))
                continue
            item = self.table(entry, raw, where)
            if item is not None:
                items.append(item)
        return tuple(items)


def parse(data: Mapping[str, Any], source: Path | None = None) -> Settings:
    """Validate a parsed TOML document into :class:`Settings`; raise with every issue."""
    r = _Reader(str(source) if source else "<defaults>", source.parent if source else Path.cwd())
    settings = r.table(Settings, data, "")
    if settings is not None:
        settings = dataclasses.replace(settings, source=source)
        _cross_checks(r, settings, data)
    if r.issues or settings is None:
        raise ConfigError(r.issues)
    return settings


# --------------------------------------------------------------------------- checks between keys

# Each gets the reader, the table's key path, its good values (defaults for the
# rest; it may change them) and the raw table; it returns False to leave the
# table out (an entry of an array).
_TableCheck = Callable[[_Reader, str, dict[str, Any], Mapping[str, Any]], bool]


def _check_cluster(r: _Reader, prefix: str, values: dict[str, Any], raw: Mapping[str, Any]) -> bool:
    raw_nodes = raw.get("nodes")
    seen_names: dict[str, int] = {}
    seen_addrs: dict[tuple[str, int], int] = {}
    for i in range(len(raw_nodes) if isinstance(raw_nodes, list) else 0):
        where = f"{prefix}.nodes[{i}]"
        node = r.tables.get(where)
        if node is None:  # not a table
            continue
        name, addr, port = node.get("name"), node.get("address"), node["port"]
        if name:
            if name in seen_names:
                r.issue(f"{where}.name", name, f"is already used by {prefix}.nodes[{seen_names[name]}]",
                        "every node needs its own name")
            seen_names.setdefault(name, i)
        if addr:
            if values["transport"] == "local" and not _is_loopback(addr):
                r.issue(f"{where}.address", addr, "local nodes must use a loopback address",
                        "use 127.0.0.11, 127.0.0.12, ... or set cluster.transport = \"ssh\"")
            if (addr, port) in seen_addrs:
                r.issue(f"{where}.address", addr, f"is already used by {prefix}.nodes[{seen_addrs[(addr, port)]}]",
                        "every node needs its own address")
            seen_addrs.setdefault((addr, port), i)
    return True


def _check_balancer(r: _Reader, prefix: str, values: dict[str, Any], raw: Mapping[str, Any]) -> bool:
    # the ports as they will be used, defaults included (`ro_port = 3306` alone meets the default
    # rw_port); like the other balancer checks, only when there is a balancer to listen on them
    port = values["ro_port"]
    if values["kind"] != "none" and values["rw_port"] == port:
        # blame the key the file wrote (ro_port when both or neither are written)
        key, other = ("rw_port", "ro_port") if "rw_port" in raw and "ro_port" not in raw else ("ro_port", "rw_port")
        given = "" if other in raw else ", its default"
        r.issue(f"{prefix}.{key}", port, f"must differ from {prefix}.{other} ({port}{given}): the "
                f"{values['kind']} listeners for writes and reads cannot share a port",
                "give reads and writes their own ports, for example rw_port = 3306 and ro_port = 3307")
    return True


def _check_token(r: _Reader, prefix: str, values: dict[str, Any], raw: Mapping[str, Any]) -> bool:
    if not values["token"] and not values["token_sha256"]:
        r.issue(f"{prefix}.token", MISSING, "one of token or token_sha256 is required",
                "token_sha256 keeps the secret itself out of the file")
    scopes: dict[str, Scope] = {}
    if not values["scopes"] and not values["admin"] and isinstance(raw.get("scopes", {}), dict):
        # (not a table: reported already); an admin token may have no data scope at all
        r.issue(f"{prefix}.scopes", raw.get("scopes", {}), "must be a non-empty table of namespace = scope",
                'for example scopes = { "*" = "read", "app" = "readwrite" }, or admin = true for a token '
                "that only reads /v1/status")
    for ns, scope in values["scopes"].items():
        if ns != "*" and not NAMESPACE_RE.match(ns):
            r.issue(f"{prefix}.scopes.{ns}", scope, "is not a valid namespace",
                    "letters, digits, '.', '_' and '-', or \"*\" for every namespace")
        elif scope not in get_args(Scope):
            r.issue(f"{prefix}.scopes.{ns}", scope, "must be \"read\" or \"readwrite\"",
                    "read: GET, HEAD and listing; readwrite: also PUT, DELETE, batch and txn writes")
        else:
            scopes[ns] = scope
    values["scopes"] = scopes
    return bool(values["token"] or values["token_sha256"])


def _check_auth(r: _Reader, prefix: str, values: dict[str, Any], raw: Mapping[str, Any]) -> bool:
    entries: tuple[_TokenKeys, ...] = values["tokens"]
    values["tokens"] = tuple(
        Token(e.name or f"token{i}", e.token_sha256 or hashlib.sha256(e.token.encode()).hexdigest(), e.scopes,
              e.admin)
        for i, e in enumerate(entries))
    raw_tokens = raw.get("tokens")
    if values["enabled"] and not entries and not (isinstance(raw_tokens, list)
                                                  and any(isinstance(x, dict) for x in raw_tokens)):
        r.issue(f"{prefix}.tokens", MISSING, "auth is enabled but no token is configured",
                f"add a [[{prefix}.tokens]] table, or set {prefix}.enabled = false")
    return True


_TABLE_CHECKS: dict[type, _TableCheck] = {
    ClusterSettings: _check_cluster,
    BalancerSettings: _check_balancer,
    _TokenKeys: _check_token,
    AuthSettings: _check_auth,
}


def _cross_checks(r: _Reader, s: Settings, data: Mapping[str, Any]) -> None:
    nodes = s.cluster.nodes
    if s.cluster.transport == "ssh" and s.ssh.user != "root" and not s.ssh.sudo:
        r.issue("ssh.user", s.ssh.user, "is not root, and ssh.sudo is false: the toolkit installs packages, "
                "writes configuration and starts mariadbd as root on every host",
                "log in as root, or set sudo = true in [ssh] (the user needs password-less sudo)")
    if bool(s.server.tls_cert) != bool(s.server.tls_key):
        given, missing = ("tls_cert", "tls_key") if s.server.tls_cert else ("tls_key", "tls_cert")
        r.issue(f"server.{missing}", MISSING, f"server.{given} is set but server.{missing} is not",
                "HTTPS needs both the certificate and its key (`galerakv cluster certs` writes "
                "state_dir/tls/http.crt and http.key), or neither for plain HTTP")
    if s.server.backend == "mariadb":
        if not nodes:
            r.issue("server.backend", "mariadb", "needs at least one [[cluster.nodes]] entry",
                    "describe the cluster nodes, or use backend = \"sqlite\"")
        if s.server.route == "balancer" and s.balancer.kind == "none":
            r.issue("server.route", "balancer", "balancer.kind is \"none\"",
                    "set route = \"nodes\" for galerakv's own routing, or configure [balancer]")
    if s.balancer.kind != "none":
        for i, node in enumerate(nodes):
            for port_key, port in (("rw_port", s.balancer.rw_port), ("ro_port", s.balancer.ro_port)):
                if node.address == s.balancer.address and port in (node.port, s.balancer.check_port,
                                                                   4567, 4568, 4444):
                    r.issue(f"balancer.{port_key}", port,
                            f"collides with cluster.nodes[{i}] ({node.name}) at {node.address}:{port}",
                            "give the balancer its own address, for example 127.0.0.10")
            if s.balancer.check_port in (node.port, 4567, 4568, 4444):
                r.issue("balancer.check_port", s.balancer.check_port,
                        f"collides with a port cluster.nodes[{i}] ({node.name}) uses at {node.address}",
                        "the health check listens on each node's address; leave it at 9200")
        if s.cluster.transport == "ssh" and s.balancer.kind == "haproxy":
            # the checks run beside HAProxy on its host: check_port + each node's index
            taken = range(s.balancer.check_port, s.balancer.check_port + len(nodes))
            for port_key, port in (("rw_port", s.balancer.rw_port), ("ro_port", s.balancer.ro_port)):
                if port in taken:
                    r.issue(f"balancer.{port_key}", port,
                            f"collides with the health checks on the balancer's host (ports "
                            f"{taken.start}-{taken.stop - 1}: check_port + each node's index)",
                            "move balancer.check_port, for example to 9200")
