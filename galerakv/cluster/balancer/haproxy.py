"""HAProxy in front of the nodes (``balancer.kind = "haproxy"``), run by galerakv.

One ``galerakv clustercheck`` responder per node on the node's address
(``check_port``), then Debian's ``haproxy`` on the balancer address with the
rendered ``haproxy.cfg``; its stats socket tells each server's state.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from galerakv.cluster.render.balancer import HAPROXY_USER, RO_PROXY, RW_PROXY, render_haproxy_cfg
from galerakv.cluster.render.node import MAX_SOCKET_PATH
from galerakv.cluster.supervise import Program, ensure_system_user
from galerakv.cluster.transport.base import Report, Transport
from galerakv.cluster.transport.local import port_problem
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.paths import BalancerPaths, CheckPaths

START_TIMEOUT = 15.0


class HAProxy:
    """The :class:`~galerakv.cluster.balancer.Kind` for HAProxy."""

    name: str = "haproxy"
    packages: tuple[str, ...] = ("haproxy",)

    def program(self, settings: Settings) -> Program:
        return haproxy_program(settings)

    def programs(self, settings: Settings) -> list[Program]:
        return [haproxy_program(settings), *(clustercheck_program(settings, n)
                                             for n in settings.cluster.nodes)]

    def preflight(self, settings: Settings) -> list[str]:
        b = settings.balancer
        errors = [] if shutil.which("haproxy") else ["haproxy is not installed; run `galerakv cluster install`"]
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
        return errors

    def start(self, settings: Settings, transport: Transport, report: Report) -> None:
        b = settings.balancer
        paths = BalancerPaths.of(settings)
        for node in settings.cluster.nodes:
            program = clustercheck_program(settings, node)
            if program.running_pid() is None:
                pid = program.start(START_TIMEOUT)
                scheme = "https" if settings.cluster.tls else "http"
                report(f"{node.name}: health check on {scheme}://{node.address}:{b.check_port}/ (PID {pid})")
        paths.haproxy_cfg.write_text(render_haproxy_cfg(settings))
        program = haproxy_program(settings)
        if program.running_pid() is None:
            ensure_system_user(HAPROXY_USER, "HAProxy drops to it after binding its ports", report)
            prepare_chroot(paths.haproxy_chroot)
            check_haproxy_cfg(paths.haproxy_cfg)
            pid = program.start(START_TIMEOUT)
            report(f"haproxy on {b.address}: writes :{b.rw_port}, reads :{b.ro_port} (PID {pid})")

    def problems(self, settings: Settings, running: bool, drained: Collection[str] = ()) -> tuple[
            list[ServerState], dict[str, bool], list[str]]:
        """Each server's state, whether each node's health check runs, and what is wrong.

        A ``drained`` node (in maintenance) being DOWN is what was asked for, not a problem.
        """
        problems: list[str] = []
        checks: dict[str, bool] = {}
        servers: list[ServerState] = []
        for node in settings.cluster.nodes:
            checks[node.name] = clustercheck_program(settings, node).running_pid() is not None
            if not checks[node.name]:
                problems.append(f"{node.name}: its health check (galerakv clustercheck) is not running")
        if running:
            try:
                servers = server_states(settings)
            except OSError as exc:
                problems.append(f"haproxy's stats socket does not answer: {exc}")
            problems += server_problems(servers, drained)
        return servers, checks, problems


def server_problems(servers: list[ServerState], drained: Collection[str] = ()) -> list[str]:
    """What is wrong with HAProxy's servers: one that is not UP, unless it was drained on purpose
    (in maintenance); and a write listener with no server UP, drained or not."""
    problems = [f"haproxy {s.listener}: {s.server} is {s.status}" for s in servers
                if not s.up and s.server not in drained]
    if servers and not any(s.up for s in servers if s.listener == "rw"):
        problems.append("haproxy rw: no server is up; writes through the balancer fail"
                        + (f" ({', '.join(sorted(drained))} in maintenance)" if drained else ""))
    return problems


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
                   marks=("clustercheck", str(settings.source), node.name),
                   listens=((node.address, b.check_port),), env_keep=("PYTHONPATH",))


def prepare_chroot(directory: Path) -> None:
    """The empty directory HAProxy confines itself to: made here, owned by root, 0755, and
    refused when something else (a symlink, a file, another owner's directory) is in its place."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o755)
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ClusterError(f"{directory} must be an empty directory owned by root, not writable by others "
                           "(HAProxy is confined to it); remove it and run `galerakv cluster up` again")
    if any(directory.iterdir()):
        raise ClusterError(f"{directory} must be empty (HAProxy is confined to it); remove what is in it")


def haproxy_program(settings: Settings) -> Program:
    p = BalancerPaths.of(settings)
    b = settings.balancer
    return Program("haproxy", ("haproxy", "-db", "-f", str(p.haproxy_cfg)), p.haproxy_pid,
                   p.haproxy_log, marks=(str(p.haproxy_cfg),),
                   listens=((b.address, b.rw_port), (b.address, b.ro_port)))


def check_haproxy_cfg(cfg: Path) -> None:
    """``haproxy -c``: a configuration HAProxy refuses is an error before it starts."""
    try:
        result = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True,
                                text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"cannot run haproxy -c: {exc}") from exc
    if result.returncode != 0:
        raise ClusterError(f"haproxy refuses {cfg}:\n{(result.stdout + result.stderr).strip()}")


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
