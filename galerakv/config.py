"""The metadata configuration file (``galerakv.toml``), parsed once into frozen settings.

Found by ``--config FILE``, else ``$GALERAKV_CONFIG``, else ``./galerakv.toml``;
with none, the defaults run the server on SQLite. Every problem in a file is
collected and reported at once as a :class:`~galerakv.errors.ConfigError`, each
naming the file, the key path, the bad value and a hint.

Relative paths (``cluster.state_dir``, ``server.sqlite_path``) are taken relative
to the directory holding the configuration file, so a file means the same thing
whichever directory a command runs from.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

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
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class NodeSettings:
    """One database node: ``name`` is wsrep_node_name, ``address`` wsrep_node_address."""

    name: str
    address: str
    port: int = 3306


@dataclass(frozen=True)
class ClusterSettings:
    name: str = "galerakv_cluster"
    transport: Transport = "local"
    state_dir: Path = Path(".galerakv")
    sst_method: SstMethod = "rsync"
    nodes: tuple[NodeSettings, ...] = ()

    def node(self, name: str) -> NodeSettings:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise KeyError(f"no node named {name!r} in the configuration (known: {known})")


@dataclass(frozen=True)
class BalancerSettings:
    kind: BalancerKind = "none"
    address: str = "127.0.0.10"
    rw_port: int = 3306
    ro_port: int = 3307
    check_port: int = 9200  # galerakv clustercheck, on each node's address
    check_interval: float = 1.0  # seconds between health checks
    available_when_donor: bool = False


@dataclass(frozen=True)
class DatabaseSettings:
    name: str = "galerakv"
    user: str = "galerakv"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    backend: BackendKind = "sqlite"
    sqlite_path: Path = Path("galerakv-data/kv.sqlite3")
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    route: Route = "balancer"
    engine: Literal["granian", "uvicorn"] = "granian"
    workers: int = 1
    ttl_purge_interval: float = 30.0
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"
    access_log: bool = False


@dataclass(frozen=True)
class LimitsSettings:
    """Request limits; each is stated in the 413 body when exceeded."""

    max_key_bytes: int = 1024
    max_value_bytes: int = 1024 * 1024
    max_batch_ops: int = 256
    max_txn_ops: int = 128
    max_list_limit: int = 1000
    max_ttl_seconds: int = 10 * 365 * 24 * 3600
    max_request_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Token:
    """A bearer token: its SHA-256 and the scope it has per namespace (``*`` = all)."""

    name: str
    sha256: str
    scopes: Mapping[str, Scope]

    def scope_for(self, namespace: str) -> Scope | None:
        return self.scopes.get(namespace, self.scopes.get("*"))


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = False
    tokens: tuple[Token, ...] = ()

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
class Settings:
    """Everything galerakv reads from the metadata configuration file."""

    source: Path | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    balancer: BalancerSettings = field(default_factory=BalancerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the file are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    @property
    def state_dir(self) -> Path:
        return self.cluster.state_dir

    @property
    def secrets_path(self) -> Path:
        """Generated passwords (mode 0600), written by ``galerakv cluster up``."""
        return self.cluster.state_dir / "secrets.toml"


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


class _Reader:
    """Walks one table, recording issues instead of stopping at the first."""

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = issues

    def issue(self, key: str, value: object, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(self.file, key, value, message, hint))

    def table(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.issue(key, value, "must be a table", f"write it as [{key}]")
            return {}
        self.unknown(value, key, allowed)
        return value

    def unknown(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
                self.issue(f"{prefix}.{name}" if prefix else name, table[name], "unknown key", hint)

    def get(self, table: Mapping[str, Any], prefix: str, key: str, kind: type[T] | tuple[type, ...],
            default: T, check: Callable[[Any], str | None] | None = None, hint: str = "") -> T:
        if key not in table:
            return default
        value = table[key]
        path = f"{prefix}.{key}"
        if not hint:
            shown = str(default) if isinstance(default, Path) else default
            hint = f"leave it out for the default ({shown!r}); every key is in docs/configuration.md"
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML true is never a valid number here
        if isinstance(value, bool) and bool not in kinds:
            self.issue(path, value, f"must be {_kind_name(kinds)}, not a boolean", hint)
            return default
        if not isinstance(value, kinds):
            self.issue(path, value, f"must be {_kind_name(kinds)}", hint)
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.issue(path, value, problem, hint)
                return default
        return value  # type: ignore[return-value]

    def choice(self, table: Mapping[str, Any], prefix: str, key: str, choices: tuple[str, ...],
               default: str) -> str:
        def check(v: str) -> str | None:
            return None if v in choices else f"must be one of {', '.join(repr(c) for c in choices)}"
        hint = "use one of " + ", ".join(repr(c) for c in choices)
        value = table.get(key)
        if isinstance(value, str) and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            if close:
                hint = f"did you mean {close[0]!r}?"
        return self.get(table, prefix, key, str, default, check, hint)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: float) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"
    return check


def _matches(regex: re.Pattern[str], what: str) -> Callable[[Any], str | None]:
    def check(v: str) -> str | None:
        return None if regex.match(v) else f"is not a valid {what}"
    return check


def _address(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        return None if _HOST_RE.match(v) else "is not an IP address or host name"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


_TOP = {"cluster", "balancer", "database", "server", "limits", "auth"}
_CLUSTER = {"name", "transport", "state_dir", "sst_method", "nodes"}
_NODE = {"name", "address", "port"}
_BALANCER = {"kind", "address", "rw_port", "ro_port", "check_port", "check_interval",
             "available_when_donor"}
_DATABASE = {"name", "user"}
_SERVER = {"host", "port", "backend", "sqlite_path", "sqlite_synchronous", "route", "engine", "workers",
           "ttl_purge_interval", "log_level", "access_log"}
_LIMITS = {"max_key_bytes", "max_value_bytes", "max_batch_ops", "max_txn_ops", "max_list_limit",
           "max_ttl_seconds", "max_request_bytes"}
_AUTH = {"enabled", "tokens"}
_TOKEN = {"name", "token", "token_sha256", "scopes"}


def parse(data: Mapping[str, Any], source: Path | None = None) -> Settings:
    """Validate a parsed TOML document into :class:`Settings`; raise with every issue."""
    file = str(source) if source else "<defaults>"
    issues: list[ConfigIssue] = []
    r = _Reader(file, issues)
    base = source.parent if source else Path.cwd()
    r.unknown(data, "", _TOP)

    cluster = _parse_cluster(r, r.table(data, "cluster", _CLUSTER), base)
    balancer = _parse_balancer(r, r.table(data, "balancer", _BALANCER))
    database = _parse_database(r, r.table(data, "database", _DATABASE))
    server = _parse_server(r, r.table(data, "server", _SERVER), base)
    limits = _parse_limits(r, r.table(data, "limits", _LIMITS))
    auth = _parse_auth(r, r.table(data, "auth", _AUTH))
    settings = Settings(source, cluster, balancer, database, server, limits, auth)
    _cross_checks(r, settings, data)
    if issues:
        raise ConfigError(issues)
    return settings


def _parse_cluster(r: _Reader, t: dict[str, Any], base: Path) -> ClusterSettings:
    d = ClusterSettings()
    name = r.get(t, "cluster", "name", str, d.name, _matches(_NAME_RE, "cluster name"),
                 "letters, digits, '_' and '-', at most 32 characters, starting with a letter")
    transport = r.choice(t, "cluster", "transport", ("local", "ssh"), d.transport)
    state_dir = r.get(t, "cluster", "state_dir", str, str(d.state_dir),
                      lambda v: None if v.strip() else "must not be empty")
    sst = r.choice(t, "cluster", "sst_method", ("rsync", "mariabackup"), d.sst_method)
    nodes: list[NodeSettings] = []
    raw_nodes = t.get("nodes", [])
    if not isinstance(raw_nodes, list):
        r.issue("cluster.nodes", raw_nodes, "must be an array of tables",
                "write each node as a [[cluster.nodes]] table with name and address")
        raw_nodes = []
    seen_names: dict[str, int] = {}
    seen_addrs: dict[tuple[str, int], int] = {}
    for i, raw in enumerate(raw_nodes):
        prefix = f"cluster.nodes[{i}]"
        if not isinstance(raw, dict):
            r.issue(prefix, raw, "must be a table with name and address",
                    "write it as [[cluster.nodes]] followed by name = ... and address = ...")
            continue
        r.unknown(raw, prefix, _NODE)
        for required in ("name", "address"):
            if required not in raw:
                r.issue(f"{prefix}.{required}", MISSING, "is required",
                        f"add {required} = \"...\" to this node")
        nname = r.get(raw, prefix, "name", str, "", _matches(_NAME_RE, "node name"),
                      "letters, digits, '_' and '-', starting with a letter")
        addr = r.get(raw, prefix, "address", str, "", _address,
                     "an IPv4 address such as 127.0.0.11 (local) or the host's address (ssh)")
        port = r.get(raw, prefix, "port", int, 3306, _range(1, 65535))
        if nname:
            if nname in seen_names:
                r.issue(f"{prefix}.name", nname, f"is already used by cluster.nodes[{seen_names[nname]}]",
                        "every node needs its own name")
            seen_names.setdefault(nname, i)
        if addr:
            if transport == "local" and not _is_loopback(addr):
                r.issue(f"{prefix}.address", addr, "local nodes must use a loopback address",
                        "use 127.0.0.11, 127.0.0.12, ... or set cluster.transport = \"ssh\"")
            if (addr, port) in seen_addrs:
                r.issue(f"{prefix}.address", addr,
                        f"is already used by cluster.nodes[{seen_addrs[(addr, port)]}]",
                        "every node needs its own address")
            seen_addrs.setdefault((addr, port), i)
        if nname and addr:
            nodes.append(NodeSettings(nname, addr, port))
    sd = Path(state_dir)
    return ClusterSettings(name, transport, sd if sd.is_absolute() else base / sd,  # type: ignore[arg-type]
                           sst, tuple(nodes))  # type: ignore[arg-type]


def _parse_balancer(r: _Reader, t: dict[str, Any]) -> BalancerSettings:
    d = BalancerSettings()
    kind = r.choice(t, "balancer", "kind", ("haproxy", "maxscale", "none"), d.kind)
    address = r.get(t, "balancer", "address", str, d.address, _address)
    rw = r.get(t, "balancer", "rw_port", int, d.rw_port, _range(1, 65535))
    ro = r.get(t, "balancer", "ro_port", int, d.ro_port, _range(1, 65535))
    if rw == ro and "rw_port" in t and "ro_port" in t:
        r.issue("balancer.ro_port", ro, "must differ from balancer.rw_port",
                "reads and writes need their own ports, for example 3306 and 3307")
    check_port = r.get(t, "balancer", "check_port", int, d.check_port, _range(1, 65535))
    interval = r.get(t, "balancer", "check_interval", (int, float), d.check_interval, _range(0.1, 60))
    donor = r.get(t, "balancer", "available_when_donor", bool, d.available_when_donor)
    return BalancerSettings(kind, address, rw, ro, check_port, float(interval),  # type: ignore[arg-type]
                            donor)


def _parse_database(r: _Reader, t: dict[str, Any]) -> DatabaseSettings:
    d = DatabaseSettings()
    name = r.get(t, "database", "name", str, d.name, _matches(_IDENT_RE, "database name"),
                 "letters, digits and '_', at most 32 characters")
    user = r.get(t, "database", "user", str, d.user, _matches(_IDENT_RE, "user name"),
                 "letters, digits and '_', at most 32 characters")
    if user == "root":
        r.issue("database.user", user, "must not be root",
                "the application gets its own least-privilege user; pick another name")
        user = d.user
    return DatabaseSettings(name, user)


def _parse_server(r: _Reader, t: dict[str, Any], base: Path) -> ServerSettings:
    d = ServerSettings()
    host = r.get(t, "server", "host", str, d.host, _address)
    port = r.get(t, "server", "port", int, d.port, _range(1, 65535))
    backend = r.choice(t, "server", "backend", ("sqlite", "mariadb"), d.backend)
    path = r.get(t, "server", "sqlite_path", str, str(d.sqlite_path),
                 lambda v: None if v.strip() else "must not be empty")
    sync = r.choice(t, "server", "sqlite_synchronous", ("normal", "full"), d.sqlite_synchronous)
    route = r.choice(t, "server", "route", ("balancer", "nodes"), d.route)
    engine = r.choice(t, "server", "engine", ("granian", "uvicorn"), d.engine)
    workers = r.get(t, "server", "workers", int, d.workers, _range(1, 64))
    purge = r.get(t, "server", "ttl_purge_interval", (int, float), d.ttl_purge_interval,
                  _range(0.1, 86400))
    level = r.choice(t, "server", "log_level", ("critical", "error", "warning", "info", "debug"),
                     d.log_level)
    access = r.get(t, "server", "access_log", bool, d.access_log)
    p = Path(path)
    return ServerSettings(host, port, backend, p if p.is_absolute() else base / p,  # type: ignore[arg-type]
                          sync, route, engine, workers, float(purge), level, access)  # type: ignore[arg-type]


def _parse_limits(r: _Reader, t: dict[str, Any]) -> LimitsSettings:
    d = LimitsSettings()
    return LimitsSettings(
        max_key_bytes=r.get(t, "limits", "max_key_bytes", int, d.max_key_bytes, _range(1, 3000),
                            "keys are part of the primary key; at most 3000 bytes"),
        max_value_bytes=r.get(t, "limits", "max_value_bytes", int, d.max_value_bytes,
                              _range(0, 512 * 1024 * 1024)),
        max_batch_ops=r.get(t, "limits", "max_batch_ops", int, d.max_batch_ops, _range(1, 100_000)),
        max_txn_ops=r.get(t, "limits", "max_txn_ops", int, d.max_txn_ops, _range(1, 100_000)),
        max_list_limit=r.get(t, "limits", "max_list_limit", int, d.max_list_limit,
                             _range(1, 100_000)),
        max_ttl_seconds=r.get(t, "limits", "max_ttl_seconds", int, d.max_ttl_seconds,
                              _range(1, 100 * 365 * 24 * 3600)),
        max_request_bytes=r.get(t, "limits", "max_request_bytes", int, d.max_request_bytes,
                                _range(1024, 1024 * 1024 * 1024),
                                "the largest JSON body of a batch or txn request"),
    )


def _parse_auth(r: _Reader, t: dict[str, Any]) -> AuthSettings:
    enabled = r.get(t, "auth", "enabled", bool, False)
    raw_tokens = t.get("tokens", [])
    if not isinstance(raw_tokens, list):
        r.issue("auth.tokens", raw_tokens, "must be an array of tables",
                "write each token as a [[auth.tokens]] table")
        raw_tokens = []
    tokens: list[Token] = []
    for i, raw in enumerate(raw_tokens):
        prefix = f"auth.tokens[{i}]"
        if not isinstance(raw, dict):
            r.issue(prefix, raw, "must be a table", "write it as [[auth.tokens]]")
            continue
        r.unknown(raw, prefix, _TOKEN)
        name = r.get(raw, prefix, "name", str, f"token{i}")
        secret = r.get(raw, prefix, "token", str, "",
                       lambda v: None if len(v) >= 16 else "is too short (at least 16 characters)",
                       "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
        digest = r.get(raw, prefix, "token_sha256", str, "",
                       lambda v: None if re.fullmatch(r"[0-9a-f]{64}", v) else "must be 64 hex digits",
                       "echo -n TOKEN | sha256sum")
        if not secret and not digest:
            r.issue(f"{prefix}.token", MISSING, "one of token or token_sha256 is required",
                    "token_sha256 keeps the secret itself out of the file")
        scopes_raw = raw.get("scopes", {})
        scopes: dict[str, Scope] = {}
        if not isinstance(scopes_raw, dict) or not scopes_raw:
            r.issue(f"{prefix}.scopes", scopes_raw, "must be a non-empty table of namespace = scope",
                    'for example scopes = { "*" = "read", "app" = "readwrite" }')
        else:
            for ns, scope in scopes_raw.items():
                if ns != "*" and not NAMESPACE_RE.match(ns):
                    r.issue(f"{prefix}.scopes.{ns}", scope, "is not a valid namespace",
                            "letters, digits, '.', '_' and '-', or \"*\" for every namespace")
                elif scope not in ("read", "readwrite"):
                    r.issue(f"{prefix}.scopes.{ns}", scope, "must be \"read\" or \"readwrite\"",
                            "read: GET, HEAD and listing; readwrite: also PUT, DELETE, batch and txn writes")
                else:
                    scopes[ns] = scope
        if secret or digest:
            tokens.append(Token(name, digest or hashlib.sha256(secret.encode()).hexdigest(), scopes))
    if enabled and not tokens and not any(isinstance(x, dict) for x in raw_tokens):
        r.issue("auth.tokens", MISSING, "auth is enabled but no token is configured",
                "add a [[auth.tokens]] table, or set auth.enabled = false")
    return AuthSettings(enabled, tuple(tokens))


def _cross_checks(r: _Reader, s: Settings, data: Mapping[str, Any]) -> None:
    nodes = s.cluster.nodes
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
