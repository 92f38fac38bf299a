"""Nodes as real ``mariadbd`` processes on this machine, one loopback address each.

Layout, per node, under ``state_dir/<node>/`` (directory mode 0750, owned by
the user mariadbd runs as, ``mysql`` when galerakv runs as root)::

    my.cnf cluster.cnf   rendered configuration (mariadbd --defaults-file=my.cnf)
    data/                datadir (grastate.dat lives here)
    mysqld.sock .pid .log
    galerakv.pid         PID of the mariadbd galerakv started

and ``state_dir/admin.cnf`` (0600): the admin's client option file.

Processes are started in their own session (they outlive the command) and
stopped only by the PID galerakv recorded, after checking that this PID still
runs mariadbd with this node's configuration.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import BinaryIO

from galerakv.cluster import certs
from galerakv.cluster import install as _install
from galerakv.cluster.render.node import GALERA_PORTS, MAX_SOCKET_PATH, RenderContext, detect_context, server_binary
from galerakv.cluster.supervise import Program, StopTimeout, clean_env, cmdline, pid_alive
from galerakv.cluster.transport.base import (
    UNREACHABLE_CODES,
    Preflight,
    QueryFailed,
    Report,
    Transport,
)
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, NodeError
from galerakv.files import open_append, write_file
from galerakv.galera.log import RECOVER_MARKER, START_MARKER
from galerakv.galera.position import Position
from galerakv.paths import NodePaths, StatePaths
from galerakv.secrets import Secrets, client_option_file, write_private

INSTALL_DB = "mariadb-install-db"
CLIENT = "mariadb"


class LocalTransport(Transport):
    """Runs each node as a mariadbd process on its own loopback address."""

    def __init__(self, settings: Settings, ctx: RenderContext) -> None:
        super().__init__(settings, ctx)
        try:
            pw = pwd.getpwnam(ctx.run_as)
        except KeyError as exc:
            raise ClusterError(f"user {ctx.run_as!r} does not exist; run `galerakv cluster "
                               "install` (the mariadb-server package creates it)") from exc
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.groups = {g.gr_gid for g in grp.getgrall() if ctx.run_as in g.gr_mem} | {pw.pw_gid}

    def paths(self, node: NodeSettings) -> NodePaths:
        return NodePaths.of(self.settings, node)

    @property
    def admin_cnf(self) -> Path:
        return StatePaths.of(self.settings).admin_cnf

    # ------------------------------------------------------------------ checks

    def preflight(self, nodes: tuple[NodeSettings, ...]) -> Preflight:
        errors: list[str] = []
        state_dir = self.settings.state_dir
        errors += self._check_state_dir(state_dir)
        if not os.path.isfile(self.ctx.provider):
            errors.append(f"the Galera library {self.ctx.provider} does not exist; "
                          "run `galerakv cluster install`")
        if server_binary() is None:
            errors.append("mariadbd is not installed; run `galerakv cluster install`")
        for node in nodes:
            sock = str(self.paths(node).socket)
            if len(sock) > MAX_SOCKET_PATH:
                errors.append(f"{node.name}: socket path {sock} is longer than "
                              f"{MAX_SOCKET_PATH} bytes; choose a shorter cluster.state_dir")
            foreign = self._foreign_pid(node)
            if foreign:
                errors.append(f"{node.name}: a mariadbd not started by galerakv (PID {foreign}) "
                              f"uses {self.paths(node).datadir}; stop it first")
            for port in (node.port, *GALERA_PORTS):
                problem = port_problem(node.address, port)
                if problem:
                    errors.append(f"{node.name}: {node.address}:{port} {problem}")
        return Preflight(tuple(errors))

    def _check_state_dir(self, state_dir: Path) -> list[str]:
        existing = state_dir
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return [f"cluster.state_dir {state_dir}: {existing} is not a directory"]
        if not os.access(existing, os.W_OK | os.X_OK):
            return [f"cluster.state_dir {state_dir}: {existing} is not writable by this user; "
                    "choose another state_dir or fix its permissions"]
        blocked = untraversable(existing, self.uid, self.groups)
        if blocked is not None:
            mode = blocked.stat().st_mode & 0o777
            return [f"cluster.state_dir {state_dir}: the {self.ctx.run_as} user cannot enter "
                    f"{blocked} (mode {mode:04o}), so mariadbd could not reach its datadir "
                    f"(datadir-permissions); run `chmod o+x {blocked}` or put state_dir "
                    "under a directory every user can enter, such as /var/tmp or /srv"]
        return []

    def missing_packages(self) -> list[str]:
        return _install.missing_packages(_install.required_packages(self.settings.cluster.sst_method))

    def install_packages(self, packages: list[str], report: Report) -> None:
        _install.install(packages, report)
        self.ctx = detect_context()  # the provider and server version exist now

    # ------------------------------------------------------------------ files

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def _log(self, node: NodeSettings) -> BinaryIO:
        """The node's log for appending, owned by the user mariadbd runs as (never via a symlink)."""
        return open_append(self.paths(node).log, 0o640, (self.uid, self.gid) if os.geteuid() == 0 else None)

    def _node_dir(self, node: NodeSettings) -> Path:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        root = self.paths(node).root
        root.mkdir(exist_ok=True, mode=0o750)
        root.chmod(0o750)
        self._own(root)
        return root

    def write_config(self, node: NodeSettings, files: dict[str, str], secrets: Secrets) -> None:
        root = self._node_dir(node)
        for name, text in files.items():
            write_file(root / name, text, 0o644)
        if self.settings.cluster.sst_method == "mariabackup":
            sst = secrets.sst
            write_private(self.paths(node).sst_auth_cnf,
                          f"[mysqld]\nwsrep_sst_auth = {sst.user}:{sst.password}\n",
                          (self.uid, self.gid) if os.geteuid() == 0 else None)
        write_private(self.admin_cnf, client_option_file(secrets.admin))
        node_tls = certs.node_tls(self.settings, node)
        if node_tls is not None:
            p = self.paths(node)
            write_file(p.tls_ca, node_tls.ca, 0o644)
            write_file(p.tls_cert, node_tls.cert, 0o644)
            write_file(p.tls_key, node_tls.key, 0o600, (self.uid, self.gid) if os.geteuid() == 0 else None)

    def is_initialized(self, node: NodeSettings) -> bool:
        return (self.paths(node).datadir / "mysql").is_dir()

    def prepare_empty(self, node: NodeSettings) -> None:
        datadir = self.paths(node).datadir
        datadir.mkdir(exist_ok=True, mode=0o750)
        self._own(datadir)

    def initialize(self, node: NodeSettings, secrets: Secrets) -> None:
        p = self.paths(node)
        self.prepare_empty(node)
        init_sql = StatePaths.of(self.settings).init_sql(node.name)
        write_private(init_sql, init_sql_text(secrets))
        argv = install_db_argv(p, init_sql)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                                    check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._wipe(p.datadir)
            raise NodeError(node.name, f"{INSTALL_DB} failed: {exc}", self.log_tail(node)) from exc
        finally:
            init_sql.unlink(missing_ok=True)
        if result.returncode != 0:
            self._wipe(p.datadir)
            out = "\n".join((result.stdout + result.stderr).strip().splitlines()[:5])
            raise NodeError(node.name, f"{INSTALL_DB} failed (exit {result.returncode}): {out}",
                            self.log_tail(node))

    @staticmethod
    def _wipe(datadir: Path) -> None:
        """Leave an empty datadir behind a failed initialisation, not a half-made one."""
        for child in datadir.iterdir() if datadir.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    # ------------------------------------------------------------------ processes

    def _program(self, node: NodeSettings, *args: str) -> Program:
        """The node's mariadbd as a supervised program, recognised by its --defaults-file."""
        p = self.paths(node)
        binary = server_binary() or "mariadbd"
        return Program(f"mariadbd of {node.name}", (binary, f"--defaults-file={p.my_cnf}", *args),
                       p.launcher_pid, p.log, marks=(f"--defaults-file={p.my_cnf}",),
                       names=MARIADBD_NAMES)

    def start(self, node: NodeSettings, bootstrap: bool, position: Position | None = None) -> None:
        if server_binary() is None:
            raise NodeError(node.name, "mariadbd is not installed; run `galerakv cluster install`")
        with self._log(node) as log:
            # galera.log.last_status_change() reads only what follows the last marker
            log.write(f"{START_MARKER} {node.name}{' (bootstrap)' if bootstrap else ''}\n".encode())
        args = ["--wsrep-new-cluster"] if bootstrap else []  # command line only, never in a file
        if position is not None:
            args.append(f"--wsrep-start-position={position}")
        try:
            self._program(node, *args).launch()
        except ClusterError as exc:
            raise NodeError(node.name, str(exc)) from exc

    def is_running(self, node: NodeSettings) -> bool:
        return self._program(node).running_pid() is not None

    def _foreign_pid(self, node: NodeSettings) -> int | None:
        """A live mariadbd holding this node's pid file that galerakv did not start."""
        try:
            pid = int(self.paths(node).pid_file.read_text().strip())
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        if pid == self._program(node).recorded_pid() or not pid_alive(pid):
            return None
        return pid if _is_mariadbd(pid) else None

    def stop(self, node: NodeSettings, timeout: float) -> None:
        try:
            self._program(node).stop(timeout, escalate=False)
        except StopTimeout as exc:
            raise NodeError(node.name, f"mariadbd (PID {exc.pid}) did not stop within "
                            f"{timeout:.0f} s after SIGTERM; it may be in a state transfer "
                            "(wait and run `galerakv cluster down` again) or hung (`kill -9 "
                            f"{exc.pid}`; the node then rejoins by state transfer)",
                            self.log_tail(node)) from exc

    def _grastate_text(self, node: NodeSettings) -> str | None:
        try:
            return self.paths(node).grastate.read_text()
        except FileNotFoundError:
            return None

    def _wsrep_recover_log(self, node: NodeSettings, timeout: float) -> str:
        p = self.paths(node)
        binary = server_binary()
        if binary is None:
            raise NodeError(node.name, "mariadbd is not installed; run `galerakv cluster install`")
        if not p.my_cnf.is_file():
            raise NodeError(node.name, f"{p.my_cnf} does not exist; run `galerakv cluster render`")
        with self._log(node) as log:
            log.write(f"{RECOVER_MARKER} {node.name}\n".encode())
            log.flush()
            offset = os.fstat(log.fileno()).st_size
        argv = [binary, f"--defaults-file={p.my_cnf}", "--wsrep-recover"]
        try:
            with self._log(node) as log_out:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log_out,
                                        stderr=log_out, timeout=timeout, check=False,
                                        env=clean_env())
        except subprocess.TimeoutExpired as exc:
            raise NodeError(node.name, f"mariadbd --wsrep-recover did not finish within "
                            f"{timeout:.0f} s", self.log_tail(node)) from exc
        except OSError as exc:
            raise NodeError(node.name, f"cannot run {binary}: {exc.strerror}") from exc
        with open(p.log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        if result.returncode != 0:
            raise NodeError(node.name, f"mariadbd --wsrep-recover exited with {result.returncode}",
                            "\n".join(text.splitlines()[-15:]))
        return text

    def _write_grastate_text(self, node: NodeSettings, text: str) -> None:
        path = self.paths(node).grastate
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            raise NodeError(node.name, f"{path} is not a plain file (a symlink?); remove it and run "
                            "`galerakv cluster recover` again")
        write_file(path, text, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid) if os.geteuid() == 0 else None)

    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        try:
            with open(self.paths(node).log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def script_argv(self, node: NodeSettings, script: str) -> list[str]:
        return ["sh", "-c", script]

    # ------------------------------------------------------------------ SQL

    def client_argv(self, node: NodeSettings, batch: bool, extra: tuple[str, ...] = ()) -> list[str]:
        if not self.admin_cnf.is_file():
            raise ClusterError(f"no admin credentials at {self.admin_cnf}; "
                               "run `galerakv cluster up` first")
        argv = [CLIENT, f"--defaults-file={self.admin_cnf}", f"--socket={self.paths(node).socket}"]
        return [*argv, "--batch", *extra] if batch else [*argv, *extra]

    def query(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> str:
        if not self.admin_cnf.is_file():
            raise QueryFailed(node.name, f"no admin credentials at {self.admin_cnf} "
                              "(the cluster was never started with `galerakv cluster up`)",
                              unreachable=True)
        argv = [*self.client_argv(node, batch=True), "--skip-column-names",
                "--connect-timeout=5"]
        try:
            result = subprocess.run(argv, input=sql, capture_output=True, text=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise QueryFailed(node.name, f"no answer within {timeout:.0f} s",
                              unreachable=True) from exc
        except OSError as exc:
            raise QueryFailed(node.name, f"cannot run {CLIENT}: {exc.strerror}; "
                              "run `galerakv cluster install`") from exc
        if result.returncode != 0:
            err = result.stderr.strip().splitlines()
            message = err[-1] if err else f"{CLIENT} exited with {result.returncode}"
            raise QueryFailed(node.name, message,
                              unreachable=message.startswith(UNREACHABLE_CODES))
        return result.stdout


# --------------------------------------------------------------------------- helpers


def init_sql_text(secrets: Secrets) -> str:
    """SQL run by mariadb-install-db right after it creates the system tables.

    install-db runs with grants disabled, so the root account is edited in place:
    only root@localhost stays, with the generated password from the first second.
    """
    pw = secrets.admin.password.replace("\\", "\\\\").replace("'", "\\'")
    return "\n".join([
        "DELETE FROM mysql.global_priv WHERE User='root' AND Host<>'localhost';",
        "DELETE FROM mysql.global_priv WHERE User='';",
        "UPDATE mysql.global_priv SET Priv=JSON_SET(Priv, '$.plugin', 'mysql_native_password',"
        f" '$.authentication_string', PASSWORD('{pw}')) WHERE User='root' AND Host='localhost';",
        "",
    ])


def install_db_argv(p: NodePaths, init_sql: Path | str) -> list[str]:
    return [INSTALL_DB, f"--defaults-file={p.my_cnf}", "--auth-root-authentication-method=normal",
            "--skip-test-db", f"--extra-file={init_sql}",
            # creating system tables needs no replication; loading Galera costs seconds
            "--wsrep-on=OFF"]


MARIADBD_NAMES = ("mariadbd", "mysqld")


def _is_mariadbd(pid: int) -> bool:
    argv = cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) in MARIADBD_NAMES


def runs_mariadbd(pid: int, my_cnf: Path) -> bool:
    """Whether ``pid`` is alive and is mariadbd started with this ``--defaults-file``."""
    return Program("mariadbd", (), Path(), Path(), marks=(f"--defaults-file={my_cnf}",),
                   names=MARIADBD_NAMES).owns(pid)


def port_problem(address: str, port: int) -> str | None:
    """Why ``address:port`` cannot be listened on, or None when it is free."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "is already in use by another program"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "is not an address of this machine"
        return f"cannot be bound: {exc.strerror}"
    finally:
        sock.close()
    return None


def untraversable(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory from / down to ``path`` that ``uid`` cannot enter, if any."""
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError:
            return directory
        if uid == 0:
            continue
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return directory
    return None
