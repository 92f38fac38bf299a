"""Run the load balancer in front of the cluster: checks, start, stop, status.

``kind = "haproxy"``: one ``galerakv clustercheck`` per node on the node's
address (``check_port``), then Debian's ``haproxy`` on the balancer address
with the rendered ``haproxy.cfg``. ``kind = "maxscale"``: the MaxScale
accounts are created on the cluster, then ``maxscale`` runs with the rendered
``maxscale.cnf`` when it is installed (MariaDB's repository, not Debian's).

Every process is started in its own session, its PID recorded under
``state_dir``, and stopped only by that PID after checking that it still runs
the same program with the same configuration: galerakv never stops a process
it did not start. Everything that can be checked before starting (binaries,
ports, socket path) is checked in :func:`preflight`, before any node starts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from galerakv.cluster.render.balancer import (
    MAXSCALE_MONITOR_USER,
    MAXSCALE_SERVICE_USER,
    RO_PROXY,
    RW_PROXY,
    MaxScaleAccounts,
    maxscale_grants_sql,
    render_haproxy_cfg,
    render_maxscale_cnf,
)
from galerakv.cluster.render.node import MAX_SOCKET_PATH
from galerakv.cluster.supervise import cmdline, pid_alive
from galerakv.cluster.transport.base import Preflight, Report, Transport
from galerakv.cluster.transport.local import port_problem
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.paths import BalancerPaths, CheckPaths
from galerakv.secrets import Account, write_private

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
POLL = 0.05
MAXSCALE_INSTALL_HINT = (
    "MariaDB MaxScale is not in Debian's packages; install it from MariaDB's repository: "
    "curl -LsS https://r.mariadb.com/downloads/mariadb_repo_setup | sudo bash -s -- --skip-server "
    "--skip-tools && sudo apt-get install maxscale (see docs/cluster.md, \"Load balancer\"), "
    'or set balancer.kind = "haproxy"'
)


def required_packages(settings: Settings) -> list[str]:
    """Debian packages the balancer needs on this machine."""
    return ["haproxy"] if settings.balancer.kind == "haproxy" else []


def managed(settings: Settings) -> bool:
    """Whether galerakv runs the balancer itself (local nodes and a balancer kind)."""
    return settings.balancer.kind != "none" and settings.cluster.transport == "local"


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Program:
    """One process galerakv runs for the balancer, and how to recognise it."""

    label: str
    argv: tuple[str, ...]
    pid_file: Path
    log: Path
    listens: tuple[tuple[str, int], ...]
    marks: tuple[str, ...]  # arguments its command line must contain

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def owns(self, pid: int) -> bool:
        """``pid`` is alive and runs this program with this configuration."""
        if not pid_alive(pid):
            return False
        argv = cmdline(pid)
        return bool(argv) and all(m in argv for m in self.marks)

    def running_pid(self) -> int | None:
        pid = self.recorded_pid()
        return pid if pid is not None and self.owns(pid) else None

    def start(self) -> int:
        """Launch in a new session; wait until every listen address accepts connections."""
        binary = shutil.which(self.argv[0]) if not os.path.isabs(self.argv[0]) else self.argv[0]
        if binary is None:
            raise ClusterError(f"{self.label}: {self.argv[0]} is not installed")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = os.posix_spawn(binary, list(self.argv), _clean_env(), setsid=True, file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ])
        except OSError as exc:
            raise ClusterError(f"{self.label}: cannot start {binary}: {exc.strerror}") from exc
        finally:
            os.close(log_fd)
            os.close(null_fd)
        self.pid_file.write_text(f"{pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.listens)
        while waiting:
            if not pid_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise ClusterError(f"{self.label} exited while starting; its log {self.log} ends:\n"
                                   + _tail(self.log))
            if _accepts(*waiting[0]):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(f"{self.label} did not listen on {waiting[0][0]}:{waiting[0][1]} "
                                   f"within {START_TIMEOUT:.0f} s; its log {self.log} ends:\n"
                                   + _tail(self.log))
            time.sleep(POLL)
        return pid

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the recorded PID (if it is still ours), SIGKILL after ``timeout``; True if it ran."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.owns(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(POLL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _clean_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def clustercheck_program(settings: Settings, node: NodeSettings) -> Program:
    if settings.source is None:
        raise ClusterError("the balancer needs a metadata file (--config) for its health checks")
    b = settings.balancer
    paths = CheckPaths.of(settings, node)
    argv = [sys.executable, "-m", "galerakv.cli.main", "clustercheck", "--config", str(settings.source),
            "--node", node.name, "--port", str(b.check_port)]
    if b.available_when_donor:
        argv.append("--donor-ok")
    return Program(f"clustercheck for {node.name}", tuple(argv), paths.pid, paths.log,
                   ((node.address, b.check_port),),
                   ("clustercheck", str(settings.source), node.name))


def haproxy_program(settings: Settings) -> Program:
    p = BalancerPaths.of(settings)
    b = settings.balancer
    return Program("haproxy", ("haproxy", "-db", "-f", str(p.haproxy_cfg)), p.haproxy_pid,
                   p.haproxy_log, ((b.address, b.rw_port), (b.address, b.ro_port)),
                   (str(p.haproxy_cfg),))


def maxscale_program(settings: Settings) -> Program:
    p = BalancerPaths.of(settings)
    b = settings.balancer
    cnf = f"--config={p.maxscale_cnf}"
    return Program("maxscale", ("maxscale", "--nodaemon", cnf),
                   p.maxscale_pid, p.maxscale_log, ((b.address, b.rw_port), (b.address, b.ro_port)),
                   (cnf,))


def balancer_program(settings: Settings) -> Program:
    return haproxy_program(settings) if settings.balancer.kind == "haproxy" else maxscale_program(settings)


# --------------------------------------------------------------------------- checks


def preflight(settings: Settings) -> Preflight:
    """Everything that would stop the balancer from starting, found before any node starts."""
    b = settings.balancer
    if b.kind == "none":
        return Preflight()
    if settings.cluster.transport != "local":
        return Preflight(warnings=(
            f"galerakv runs the {b.kind} balancer only for local nodes so far; render its "
            "configuration with `galerakv cluster render`, run it yourself, and run "
            "`galerakv clustercheck --node NAME` on each host",))
    errors: list[str] = []
    program = balancer_program(settings)
    if shutil.which(program.argv[0]) is None:
        errors.append("haproxy is not installed; run `galerakv cluster install`" if b.kind == "haproxy"
                      else f"no maxscale binary on PATH. {MAXSCALE_INSTALL_HINT}")
    if program.running_pid() is None:
        for port in (b.rw_port, b.ro_port):
            problem = port_problem(b.address, port)
            if problem:
                errors.append(f"balancer: {b.address}:{port} {problem}")
    if b.kind == "haproxy":
        sock = str(BalancerPaths.of(settings).haproxy_socket)
        if len(sock) > MAX_SOCKET_PATH:
            errors.append(f"balancer: stats socket path {sock} is longer than {MAX_SOCKET_PATH} "
                          "bytes; choose a shorter cluster.state_dir")
        for node in settings.cluster.nodes:
            if clustercheck_program(settings, node).running_pid() is None:
                problem = port_problem(node.address, b.check_port)
                if problem:
                    errors.append(f"{node.name}: health check port {node.address}:{b.check_port} "
                                  f"{problem}; set balancer.check_port to a free port")
    return Preflight(tuple(errors))


# --------------------------------------------------------------------------- start and stop


def start(settings: Settings, transport: Transport, report: Report) -> None:
    """Start whatever part of the balancer is not running; idempotent."""
    if not managed(settings):
        return
    b = settings.balancer
    paths = BalancerPaths.of(settings)
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o750)
    if b.kind == "haproxy":
        for node in settings.cluster.nodes:
            program = clustercheck_program(settings, node)
            if program.running_pid() is None:
                pid = program.start()
                report(f"{node.name}: health check on http://{node.address}:{b.check_port}/ (PID {pid})")
        paths.haproxy_cfg.write_text(render_haproxy_cfg(settings))
        program = haproxy_program(settings)
        if program.running_pid() is None:
            check_haproxy_cfg(paths.haproxy_cfg)
            pid = program.start()
            report(f"haproxy on {b.address}: writes :{b.rw_port}, reads :{b.ro_port} (PID {pid})")
        return
    accounts = ensure_maxscale_accounts(settings)
    host = "127.%" if settings.cluster.transport == "local" else "%"
    transport.query(settings.cluster.nodes[0], ";\n".join(maxscale_grants_sql(accounts, host)) + ";\n",
                    timeout=60)
    report(f"MaxScale accounts {accounts.monitor.user} and {accounts.service.user} ready")
    for sub in ("log", "data", "cache", "run", "persist"):
        (paths.maxscale_dir / sub).mkdir(parents=True, exist_ok=True)
    write_private(paths.maxscale_cnf, render_maxscale_cnf(settings, accounts))
    program = maxscale_program(settings)
    if shutil.which("maxscale") is None:
        report(f"warning: wrote {paths.maxscale_cnf}, but maxscale is not installed. "
               + MAXSCALE_INSTALL_HINT)
        return
    if program.running_pid() is None:
        pid = program.start()
        report(f"maxscale on {b.address}: writes :{b.rw_port}, reads :{b.ro_port} (PID {pid})")


def check_haproxy_cfg(cfg: Path) -> None:
    """``haproxy -c``: a configuration HAProxy refuses is an error before it starts."""
    try:
        result = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True,
                                text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"cannot run haproxy -c: {exc}") from exc
    if result.returncode != 0:
        raise ClusterError(f"haproxy refuses {cfg}:\n{(result.stdout + result.stderr).strip()}")


def stop(settings: Settings, report: Report) -> list[str]:
    """Stop the balancer, then the health checks; returns what was stopped."""
    if settings.balancer.kind == "none" or settings.cluster.transport != "local":
        return []
    stopped: list[str] = []
    programs = [haproxy_program(settings), maxscale_program(settings)]
    programs += [clustercheck_program(settings, n) for n in settings.cluster.nodes]
    for program in programs:
        if program.stop():
            report(f"{program.label}: stopped")
            stopped.append(program.label)
    return stopped


def ensure_maxscale_accounts(settings: Settings) -> MaxScaleAccounts:
    """Load the MaxScale accounts file, creating it (0600) with random passwords."""
    import secrets as _random

    path = BalancerPaths.of(settings).maxscale_accounts
    try:
        data = tomllib.loads(path.read_text())
        return MaxScaleAccounts(Account(data["monitor"]["user"], data["monitor"]["password"]),
                                Account(data["service"]["user"], data["service"]["password"]))
    except FileNotFoundError:
        pass
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}; remove it to generate new accounts") from exc
    accounts = MaxScaleAccounts(Account(MAXSCALE_MONITOR_USER, _random.token_urlsafe(24)),
                                Account(MAXSCALE_SERVICE_USER, _random.token_urlsafe(24)))
    write_private(path, "".join(f'[{role}]\nuser = "{a.user}"\npassword = "{a.password}"\n'
                                for role, a in (("monitor", accounts.monitor),
                                                ("service", accounts.service))))
    return accounts


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ServerState:
    """One server line of HAProxy's ``show stat``."""

    listener: str  # "rw" or "ro"
    server: str
    backup: bool
    status: str  # UP, DOWN, "UP 1/2", "DOWN 1/2", MAINT, DRAIN, no check
    check: str  # last check: L7OK, L7STS, L4CON, ...
    check_detail: str  # e.g. HTTP status code
    sessions: int

    @property
    def up(self) -> bool:
        return self.status.startswith("UP") or self.status == "no check"


def parse_show_stat(text: str) -> list[ServerState]:
    """HAProxy's ``show stat`` CSV -> the servers of galerakv's two listeners."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    rows = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    listeners = {RW_PROXY: "rw", RO_PROXY: "ro"}
    found: list[ServerState] = []
    for row in rows:
        name = row.get("svname", "")
        if row.get("pxname") not in listeners or name in ("FRONTEND", "BACKEND"):
            continue
        try:
            sessions = int(row.get("scur") or 0)
        except ValueError:
            sessions = 0
        found.append(ServerState(listeners[row["pxname"]], name, row.get("bck") == "1",
                                 row.get("status", ""), row.get("check_status", ""),
                                 row.get("check_code", "") or row.get("check_desc", ""), sessions))
    return found


def haproxy_command(settings: Settings, command: str, timeout: float = 2.0) -> str:
    """Send one command to HAProxy's stats socket; its answer."""
    path = BalancerPaths.of(settings).haproxy_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(command.encode() + b"\n")
        chunks: list[bytes] = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def server_states(settings: Settings) -> list[ServerState]:
    """Each server's state as HAProxy sees it now; raises OSError when it does not answer."""
    return parse_show_stat(haproxy_command(settings, "show stat"))


@dataclass(frozen=True)
class BalancerStatus:
    kind: str
    address: str
    rw_port: int
    ro_port: int
    running: bool
    pid: int | None
    servers: tuple[ServerState, ...] = ()
    checks: dict[str, bool] = field(default_factory=dict)  # node -> clustercheck running
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = [dict(asdict(s), up=s.up) for s in self.servers]
        data["problems"] = list(self.problems)
        return data


def status(settings: Settings) -> BalancerStatus | None:
    """The balancer's processes and, for HAProxy, each server's state; None without one."""
    b = settings.balancer
    if not managed(settings):
        return None
    program = balancer_program(settings)
    pid = program.running_pid()
    problems: list[str] = []
    servers: list[ServerState] = []
    checks: dict[str, bool] = {}
    if pid is None:
        problems.append(f"{b.kind} is not running (`galerakv cluster up` starts it)")
    if b.kind == "haproxy":
        for node in settings.cluster.nodes:
            checks[node.name] = clustercheck_program(settings, node).running_pid() is not None
            if not checks[node.name]:
                problems.append(f"{node.name}: its health check (galerakv clustercheck) is not running")
        if pid is not None:
            try:
                servers = server_states(settings)
            except OSError as exc:
                problems.append(f"haproxy's stats socket does not answer: {exc}")
            for s in servers:
                if not s.up:
                    problems.append(f"haproxy {s.listener}: {s.server} is {s.status}")
            if servers and not any(s.up for s in servers if s.listener == "rw"):
                problems.append("haproxy rw: no server is up; writes through the balancer fail")
    return BalancerStatus(b.kind, b.address, b.rw_port, b.ro_port, pid is not None, pid,
                          tuple(servers), checks, tuple(problems))
