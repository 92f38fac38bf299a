"""Nodes on real hosts, driven by running the local transport's commands over ssh.

Each node is the host at its ``address``, reached as ``root@<address>``
(user, port and key come from ~/.ssh/config, as for any ssh command). On the
host the layout is the local one: ``state_dir/<node>/`` holds my.cnf,
cluster.cnf, the datadir, socket, log and the PID galerakv started, and
mariadbd runs with ``--defaults-file`` as the mysql user. Where the host runs
systemd (``[ssh] systemd``), mariadbd runs instead as the unit
``galerakv-node-<name>.service`` (``render/systemd.py`` ``node_unit()``) and
logs to the journal. Every step is a short POSIX shell script; file contents
and SQL travel on standard input, never on a command line.

:class:`ShellRunner` runs the same scripts on this machine instead of over
ssh; the test suite uses it to exercise this transport against real nodes.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from galerakv.cluster import certs
from galerakv.cluster import install as _install
from galerakv.cluster.render.node import GALERA_PORTS, MAX_SOCKET_PATH, RenderContext, render_my_cnf
from galerakv.cluster.render.systemd import (
    START_ARGS_DIR,
    UNIT_DIR,
    node_unit,
    node_unit_name,
    start_args_file,
    start_args_text,
)
from galerakv.cluster.transport.base import (
    STATUS_SQL,
    UNREACHABLE_CODES,
    NodeState,
    Preflight,
    QueryFailed,
    Report,
    Transport,
)
from galerakv.cluster.transport.local import init_sql_text, install_db_argv
from galerakv.config import NodeSettings, Settings
from galerakv.errors import NodeError
from galerakv.galera.log import RECOVER_MARKER, START_MARKER
from galerakv.galera.position import Position, parse_grastate
from galerakv.galera.status import NodeStatus, node_status, parse_status_rows, unreachable
from galerakv.paths import NodePaths, StatePaths
from galerakv.secrets import Secrets, client_option_file

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3")
MARIADBD = "/usr/sbin/mariadbd"
# what the doctor looks for in a datadir (the same names as doctor/collect.py's, which imports this module)
SST_LEFTOVER_NAMES = ("sst_in_progress", "wsrep_sst.pid", "rsync_sst.pid", "rsync_sst.conf", ".sst")
OWNER_IGNORED_NAMES = ("mysql_upgrade_info", "lost+found")
SSH_FAILED = 255  # ssh's own exit status: the connection or the login failed, no command ran
HAS_SYSTEMD = "[ -d /run/systemd/system ] && command -v systemctl >/dev/null"  # sd_booted(3), and its client


class Runner(Protocol):
    """Runs a shell script on a host."""

    def run(self, host: str, script: str, stdin: str | None,
            timeout: float) -> subprocess.CompletedProcess[str]: ...

    def interactive_argv(self, host: str, command: list[str]) -> list[str]: ...

    def argv(self, host: str, script: str) -> list[str]: ...


def control_dir() -> Path:
    """Where the shared connections' sockets live: a folder of this user's alone (0700)."""
    folder = Path.home() / ".ssh" / "galerakv-control"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.parent.chmod(folder.parent.stat().st_mode & 0o700 | 0o700)
    folder.chmod(0o700)
    return folder


@dataclass(frozen=True)
class SshRunner:
    """``ssh`` with the options of ``[ssh]`` in galerakv.toml (~/.ssh/config still applies for the
    rest), one shared connection per host (ControlMaster) kept ``control_persist`` seconds."""

    user: str = "root"
    port: int = 22
    identity_file: str = ""
    known_hosts_file: str = ""
    jump_host: str = ""
    connect_timeout: float = 10.0
    sudo: bool = False
    control_persist: float = 0.0

    @classmethod
    def of(cls, settings: Settings) -> SshRunner:
        s = settings.ssh
        base = settings.base_dir
        return cls(s.user, s.port, str(base / s.identity_file) if s.identity_file else "",
                   str(base / s.known_hosts_file) if s.known_hosts_file else "", s.jump_host,
                   s.connect_timeout, s.sudo, s.control_persist)

    def options(self) -> list[str]:
        opts = [*SSH_OPTIONS, "-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}", "-p", str(self.port)]
        if self.identity_file:
            opts += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts_file:  # the hosts' keys are known: anything else is refused, never learnt
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts_file}", "-o", "StrictHostKeyChecking=yes"]
        if self.jump_host:
            opts += ["-J", self.jump_host]
        if self.control_persist > 0:
            # one shared connection per host and per way of logging in: a changed key, known_hosts
            # or user opens a new one (and is checked) instead of riding an old one
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir()}/{self.login_tag()}-%C",
                     "-o", f"ControlPersist={max(1, round(self.control_persist))}"]
        return opts

    def login_tag(self) -> str:
        """A short digest of how this runner logs in."""
        what = "\0".join([self.user, str(self.port), self.identity_file, self.known_hosts_file, self.jump_host,
                          str(self.sudo)])
        return hashlib.sha256(what.encode()).hexdigest()[:12]

    def _command(self, script: str) -> str:
        command = "sh -c " + shlex.quote(script)
        return f"sudo -n {command}" if self.sudo else command

    def run(self, host: str, script: str, stdin: str | None,
            timeout: float) -> subprocess.CompletedProcess[str]:
        return _run(self.argv(host, script), stdin, timeout)

    def interactive_argv(self, host: str, command: list[str]) -> list[str]:
        remote = ("sudo -n " if self.sudo else "") + shlex.join(command)
        return ["ssh", "-t", *self.options(), f"{self.user}@{host}", remote]

    def argv(self, host: str, script: str) -> list[str]:
        return ["ssh", *self.options(), f"{self.user}@{host}", self._command(script)]

    def failure(self, host: str, result: subprocess.CompletedProcess[str]) -> str | None:
        """What went wrong reaching ``host``, in one line with what to do; None when the command
        itself ran (whatever its exit status)."""
        err = (result.stderr or "").strip()
        where = f"{self.user}@{host}" + (f" port {self.port}" if self.port != 22 else "")
        if "sudo:" in err and ("password is required" in err or "not found" in err
                               or "not in the sudoers" in err or "may not run sudo" in err):
            return (f"{where}: `sudo -n` refused ({_last(err)}): give {self.user} password-less sudo "
                    "(a NOPASSWD rule), or log in as root (ssh.user = \"root\", ssh.sudo = false)")
        if result.returncode != SSH_FAILED:
            return None
        known = self.known_hosts_file or "~/.ssh/known_hosts"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            return (f"{where}: the host's ssh key is not the one in {known} (changed: reinstalled, or "
                    f"someone in between): check the new key with the host's owner, then `ssh-keygen -R "
                    f"{host} -f {known}` and add the new one; galerakv never skips this check")
        if "Host key verification failed" in err or "No ED25519 host key is known" in err \
                or "host key is known" in err:
            return (f"{where}: the host's ssh key is not in {known}: add it once you have checked it "
                    f"(for example `ssh-keyscan -p {self.port} {host} >> {known}`, then compare the "
                    "fingerprint with the host's own)")
        if "Permission denied" in err:
            key = self.identity_file or "ssh's default keys"
            return (f"{where}: the login was refused ({_last(err)}): check ssh.user and ssh.identity_file "
                    f"({key}), and that its public key is in {self.user}'s ~/.ssh/authorized_keys on {host}")
        if any(word in err for word in ("Connection refused", "timed out", "No route to host",
                                        "Could not resolve", "Network is unreachable", "Connection closed",
                                        "Connection reset")):
            via = f" through {self.jump_host}" if self.jump_host else ""
            return (f"{where}: cannot be reached over ssh{via} ({_last(err)}): check that the host is up, "
                    f"that sshd listens on port {self.port}, and ssh.port / ssh.jump_host")
        return f"{where}: ssh failed ({_last(err) or 'exit 255'})"


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@")]
    return lines[-1][:200] if lines else ""


@dataclass(frozen=True)
class ShellRunner:
    """Runs the scripts on this machine (tests; or a host that is this machine)."""

    def run(self, host: str, script: str, stdin: str | None,
            timeout: float) -> subprocess.CompletedProcess[str]:
        return _run(["sh", "-c", script], stdin, timeout)

    def interactive_argv(self, host: str, command: list[str]) -> list[str]:
        return command

    def argv(self, host: str, script: str) -> list[str]:
        return ["sh", "-c", script]


def _run(argv: list[str], stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin if stdin is not None else "",
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer within {timeout:.0f} s: {exc}")
    except OSError as exc:
        return subprocess.CompletedProcess(argv, 127, "", f"cannot run {argv[0]}: {exc.strerror}")


def ssh_context() -> RenderContext:
    """Real hosts: Debian's provider path, full-size memory settings."""
    return RenderContext(run_as="mysql", local_small_memory=False)


class HostUnreachable(NodeError):
    """ssh could not run anything on the node's host (down, refused login, changed key, no sudo)."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(node, message)
        self.detail = message


class SshTransport(Transport):
    """Every node on its own host, reached over ssh."""

    concurrent = True  # the hosts work at the same time: checks, file pushes, status

    def __init__(self, settings: Settings, ctx: RenderContext,
                 runner: Runner | None = None) -> None:
        super().__init__(settings, ctx)
        self.runner: Runner = runner or SshRunner.of(settings)
        self._tails: dict[str, tuple[float, str]] = {}  # node -> (when, log tail read with a failed status)
        self._systemd_hosts: dict[str, bool] = {}  # node -> whether its host runs systemd (asked once)

    def paths(self, node: NodeSettings) -> NodePaths:
        return NodePaths.of(self.settings, node)

    @property
    def admin_cnf(self) -> str:
        return str(StatePaths.of(self.settings).admin_cnf)

    def script_argv(self, node: NodeSettings, script: str) -> list[str]:
        return self.runner.argv(node.address, script)

    def _sh(self, node: NodeSettings, script: str, stdin: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``script`` on the node's host; :class:`HostUnreachable` when ssh itself failed
        (no command ran), with one line saying why and what to do."""
        result = self.runner.run(node.address, script, stdin, timeout)
        failure = getattr(self.runner, "failure", None)
        problem = failure(node.address, result) if failure is not None else None
        if problem is not None:
            raise HostUnreachable(node.name, problem)
        return result

    def _systemd(self, node: NodeSettings) -> bool:
        """Whether the node runs as its systemd unit: ``[ssh] systemd``, and with ``auto`` whether its
        host runs systemd (asked once per node; the preflight's answer when it ran first)."""
        mode = self.settings.ssh.systemd
        if mode != "auto":
            return mode == "yes"
        found = self._systemd_hosts.get(node.name)
        if found is None:
            found = self._systemd_hosts[node.name] = self._sh(node, HAS_SYSTEMD, timeout=30).returncode == 0
        return found

    def _ok(self, node: NodeSettings, what: str, script: str, stdin: str | None = None,
            timeout: float = 60.0) -> str:
        result = self._sh(node, script, stdin, timeout)
        if result.returncode != 0:
            err = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise NodeError(node.name, f"{what} failed on {node.address} "
                            f"(exit {result.returncode}): {err}")
        return result.stdout

    # ------------------------------------------------------------------ checks

    def preflight(self, nodes: tuple[NodeSettings, ...]) -> Preflight:
        found = self.each(nodes, self._preflight_one)
        return Preflight(tuple(e for errors in found for e in errors))

    def _preflight_one(self, node: NodeSettings) -> list[str]:
        errors: list[str] = []
        state_dir = shlex.quote(str(self.settings.state_dir))
        sock = str(self.paths(node).socket)
        if len(sock) > MAX_SOCKET_PATH:
            errors.append(f"{node.name}: socket path {sock} is longer than "
                          f"{MAX_SOCKET_PATH} bytes; choose a shorter cluster.state_dir")
        ports = " ".join(str(p) for p in (node.port, *GALERA_PORTS))
        addr = node.address.replace(".", "\\.")
        user = self.ctx.run_as
        listening = f"({addr}|0\\.0\\.0\\.0|\\*|\\[::\\]):$port"
        script = f"""
[ -f {shlex.quote(self.ctx.provider)} ] \\
  || echo "the Galera library {self.ctx.provider} is missing; run galerakv cluster install"
[ -x {MARIADBD} ] || echo "mariadbd is not installed; run galerakv cluster install"
if command -v ss >/dev/null; then
  for port in {ports}; do
    ss -Hltn "sport = :$port" | awk '{{print $4}}' | grep -q -x -E "{listening}" \\
      && echo "{node.address}:$port is already in use by another program"
  done
fi
d={state_dir}
while [ ! -e "$d" ]; do d=$(dirname "$d"); done
[ -w "$d" ] || echo "cluster.state_dir: $d is not writable"
runuser -u {user} -- sh -c 'cd "$1"' sh "$d" 2>/dev/null \\
  || echo "the {user} user cannot enter $d (datadir-permissions); chmod o+x every parent"
{_SYSTEMD_PROBE}
exit 0
"""
        result = self._sh(node, script, timeout=30)
        if result.returncode != 0:
            return [*errors, f"{node.name}: cannot run commands on {node.address}: {result.stderr.strip()[-200:]}"]
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        systemd = self._saw_systemd(node, lines)
        if self.settings.ssh.systemd == "yes" and not systemd:
            errors.append(f"{node.name}: {node.address} does not run systemd (no /run/systemd/system or "
                          "systemctl), which ssh.systemd = \"yes\" requires: boot it with systemd, or set "
                          "ssh.systemd = \"auto\" to run the node there as a process galerakv starts")
        return errors + [f"{node.name}: {line}" for line in lines if line != _SYSTEMD_FOUND]

    def _saw_systemd(self, node: NodeSettings, lines: list[str]) -> bool:
        """Whether a script's output says the host runs systemd (it ran ``_SYSTEMD_PROBE``); with
        ``ssh.systemd = "auto"`` that is remembered, so :meth:`_systemd` asks no more."""
        found = _SYSTEMD_FOUND in lines
        if self.settings.ssh.systemd == "auto":
            self._systemd_hosts[node.name] = found
        return found

    def missing_packages(self) -> list[str]:
        wanted = _install.required_packages(self.settings.cluster.sst_method)

        def installed(node: NodeSettings) -> set[str]:
            # the first call `up` makes to each host also asks whether it runs systemd
            out = self._sh(node, f"{_install.query_script(wanted)}; {_SYSTEMD_PROBE}; exit 0", timeout=60).stdout
            self._saw_systemd(node, out.splitlines())
            return _install.installed(out)

        missing: list[str] = []
        for ok in self.each(self.settings.cluster.nodes, installed):
            missing += [p for p in wanted if p not in ok and p not in missing]
        return missing

    def install_packages(self, packages: list[str], report: Report) -> None:
        script = _install.install_script(packages)
        for node in self.settings.cluster.nodes:
            report(f"{node.name}: installing on {node.address}")
            out = self._ok(node, "package installation", script, timeout=_install.APT_TIMEOUT)
            for line in _install.script_outcome(out):
                report(f"  {node.name}: {line}")

    # ------------------------------------------------------------------ files

    def _replace(self, target: str, mode: str, owner: str) -> str:
        """Script: stdin becomes ``target`` (``mode``, ``owner``: chmod/chown arguments; ``ref:PATH``
        for both copies PATH's) without following a symlink the mysql user planted.

        The new file is made in state_dir (root's) and renamed over the target: a rename
        replaces a symlink instead of writing through it; a target folder that is a symlink
        is refused.
        """
        q, folder = shlex.quote(target), shlex.quote(str(Path(target).parent))
        if mode.startswith("ref:"):
            ref = shlex.quote(mode[4:])
            perms = f'chmod --reference={ref} "$t"; chown --reference={ref} "$t"'
        else:
            perms = f'chmod {mode} "$t"; chown {owner} "$t"'
        return (f"set -e; umask 077; if [ -L {folder} ]; then echo {folder} 'is a symlink: remove it' >&2; "
                f"exit 1; fi; mkdir -p -m 0755 {self._state}; t=$(mktemp -p {self._state} .galerakv.XXXXXX); "
                f'trap \'rm -f "$t"\' EXIT; cat > "$t"; {perms}; mv -fT "$t" {q}; trap - EXIT')

    @property
    def _state(self) -> str:
        return shlex.quote(str(self.settings.state_dir))

    def _put(self, node: NodeSettings, path: str, text: str, mode: str, owner: str) -> None:
        self._put_many(node, ":", [(path, text, mode, owner)])

    def _put_many(self, node: NodeSettings, prelude: str, files: list[tuple[str, str, str, str]],
                  after: str = "") -> None:
        """After ``prelude`` (a script), write every (path, text, mode, owner) in one ssh call, each as
        :meth:`_replace` does (made in state_dir, renamed over the target, a folder that is a symlink
        refused), then run ``after``. Paths and contents travel on standard input (base64, a line
        each), never on a command line: they hold passwords and keys."""
        lines = [" ".join([base64.b64encode(path.encode()).decode(), mode, owner,
                           base64.b64encode(text.encode()).decode() or "-"]) for path, text, mode, owner in files]
        script = (f"set -e; umask 077; {prelude}; mkdir -p -m 0755 {self._state}; t=''; "
                  "trap 'rm -f \"$t\"' EXIT; "
                  "while read -r p mode owner data; do "
                  "target=$(printf %s \"$p\" | base64 -d); folder=$(dirname \"$target\"); "
                  "if [ -L \"$folder\" ]; then echo \"$folder is a symlink: remove it\" >&2; exit 1; fi; "
                  f"t=$(mktemp -p {self._state} .galerakv.XXXXXX); "
                  "if [ \"$data\" != - ]; then printf %s \"$data\" | base64 -d > \"$t\"; fi; "
                  "chmod \"$mode\" \"$t\"; chown \"$owner\" \"$t\"; mv -fT \"$t\" \"$target\"; t=''; "
                  "done" + (f"; {after}" if after else ""))
        self._ok(node, "writing the configuration", script, stdin="\n".join(lines) + "\n")

    def write_config(self, node: NodeSettings, files: dict[str, str], secrets: Secrets) -> None:
        """The files, and on a host where the node runs as a systemd unit that unit too (its mariadbd
        logs to the journal: the my.cnf written there has no log file)."""
        p = self.paths(node)
        user = self.ctx.run_as
        root = shlex.quote(str(p.root))
        systemd = self._systemd(node)
        if systemd and "my.cnf" in files:
            files = {**files, "my.cnf": render_my_cnf(self.settings, node, replace(self.ctx, journal=True))}
        writes = [(str(p.root / name), text, "0644", "root:root") for name, text in files.items()]
        if self.settings.cluster.sst_method == "mariabackup":
            sst = secrets.sst
            writes.append((str(p.sst_auth_cnf), f"[mysqld]\nwsrep_sst_auth = {sst.user}:{sst.password}\n",
                           "0600", f"{user}:{user}"))
        writes.append((self.admin_cnf, client_option_file(secrets.admin), "0600", "root:root"))
        node_tls = certs.node_tls(self.settings, node)
        if node_tls is not None:
            writes += [(str(p.tls_ca), node_tls.ca, "0644", "root:root"),
                       (str(p.tls_cert), node_tls.cert, "0644", "root:root"),
                       (str(p.tls_key), node_tls.key, "0600", f"{user}:{user}")]
        after = ""
        if systemd:  # started (and enabled) by start(): installing it changes nothing that runs
            writes.append((f"{UNIT_DIR}/{node_unit_name(node)}", node_unit(self.settings, node, self.ctx, MARIADBD),
                           "0644", "root:root"))
            after = "systemctl daemon-reload"
        # one ssh call per node: the node's folder, then every file
        self._put_many(node, f"mkdir -p -m 0755 {self._state}; mkdir -p {root}; chmod 0750 {root}; "
                             f"chown {user}:{user} {root}", writes, after)

    def is_initialized(self, node: NodeSettings) -> bool:
        datadir = shlex.quote(str(self.paths(node).datadir / "mysql"))
        return self._sh(node, f"test -d {datadir}", timeout=30).returncode == 0

    def prepare_empty(self, node: NodeSettings) -> None:
        d = shlex.quote(str(self.paths(node).datadir))
        user = self.ctx.run_as
        self._ok(node, "creating the datadir",
                 f"set -e; mkdir -p {d}; chmod 0750 {d}; chown {user}:{user} {d}")

    def initialize(self, node: NodeSettings, secrets: Secrets) -> None:
        p = self.paths(node)
        self.prepare_empty(node)
        init_sql = str(StatePaths.of(self.settings).init_sql(node.name))
        d = shlex.quote(str(p.datadir))
        script = (f"umask 077; f={shlex.quote(init_sql)}; cat > \"$f\"; "
                  f"{shlex.join(install_db_argv(p, init_sql))} >/dev/null 2>&1; rc=$?; rm -f \"$f\"; "
                  f"if [ $rc -ne 0 ]; then find {d} -mindepth 1 -delete; fi; exit $rc")
        result = self._sh(node, script, stdin=init_sql_text(secrets), timeout=180)
        if result.returncode != 0:
            raise NodeError(node.name, f"mariadb-install-db failed (exit {result.returncode})",
                            self.log_tail(node))

    # ------------------------------------------------------------------ processes

    def _started_script(self, node: NodeSettings) -> str:
        """Script: exit 0 when the mariadbd galerakv started as a process (its recorded PID) is alive."""
        p = self.paths(node)
        return (f"pid=$(cat {shlex.quote(str(p.launcher_pid))} 2>/dev/null) || exit 1; "
                "[ -r /proc/$pid/stat ] || exit 1; "
                "[ \"$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f1)\" != Z ] || exit 1; "
                "tr '\\0' '\\n' < /proc/$pid/cmdline | grep -q -x -F -- "
                f"{shlex.quote(f'--defaults-file={p.my_cnf}')}")

    def _running_script(self, node: NodeSettings) -> str:
        """Script: exit 0 when the node's mariadbd runs: its unit is up (starting, serving or
        stopping: a joiner is "activating" for its whole state transfer), or, without systemd or
        started before the node ran as a unit, the process galerakv started."""
        if not self._systemd(node):
            return self._started_script(node)
        unit = node_unit_name(node)
        return (f"case \"$(systemctl is-active {unit} 2>/dev/null)\" in "
                f"active|activating|deactivating|reloading) exit 0;; esac; {self._started_script(node)}")

    def _tail_script(self, node: NodeSettings, lines: int) -> str:
        """Script: the last ``lines`` lines of the node's log: its unit's journal, or mysqld.log."""
        if self._systemd(node):
            return f"journalctl -u {node_unit_name(node)} -n {int(lines)} --no-pager -q -o cat 2>/dev/null"
        return f"tail -n {int(lines)} {shlex.quote(str(self.paths(node).log))} 2>/dev/null"

    def start(self, node: NodeSettings, bootstrap: bool, position: Position | None = None) -> None:
        p = self.paths(node)
        user = self.ctx.run_as
        log = shlex.quote(str(p.log))
        args: list[str] = []
        if bootstrap:  # this start's arguments only, never in a configuration file
            args.append("--wsrep-new-cluster")
        if position is not None:
            args.append(f"--wsrep-start-position={position}")
        if self._systemd(node):
            self._start_unit(node, args)
            return
        argv = [MARIADBD, f"--defaults-file={p.my_cnf}", *args]
        marker = f"{START_MARKER} {node.name}{' (bootstrap)' if bootstrap else ''}"
        script = (f"set -e; {_plain_log(log)}; touch {log}; chown -h {user}:{user} {log}; "
                  f"echo {shlex.quote(marker)} >> {log}; cd /; "
                  f"setsid {shlex.join(argv)} </dev/null >>{log} 2>&1 & "
                  f"echo $! > {shlex.quote(str(p.launcher_pid))}; "
                  # wait until exec has replaced the command line (or the process died)
                  f"i=0; while [ $i -lt 50 ]; do if ({self._running_script(node)}); then exit 0; fi; "
                  "i=$((i+1)); sleep 0.1; done; exit 0")
        self._ok(node, "starting mariadbd", script, timeout=30)

    def _start_unit(self, node: NodeSettings, args: list[str]) -> None:
        """Enable and start the node's unit; ``args`` (bootstrap, position) go in its file under /run,
        which the unit reads and removes, and a start without any removes a leftover one. Returns
        once systemd has taken the start on, as :meth:`start` returns once mariadbd runs."""
        unit = node_unit_name(node)
        args_file = shlex.quote(start_args_file(node))
        if args:
            put = (f"mkdir -p -m 0755 {START_ARGS_DIR}; t=$(mktemp -p {START_ARGS_DIR} .start.XXXXXX); "
                   f"cat > \"$t\"; chmod 0644 \"$t\"; mv -f \"$t\" {args_file}")
        else:
            put = f"rm -f {args_file}"
        # enabled: the host's next boot starts it (as a joiner); reset-failed: a unit that failed
        # before reads "inactive" until systemd runs the new job
        script = (f"set -e; {put}; systemctl reset-failed {unit} 2>/dev/null || true; "
                  f"systemctl enable --quiet --no-reload {unit}; systemctl start --no-block {unit}; "
                  f"i=0; while [ $i -lt 50 ]; do s=$(systemctl is-active {unit}) || true; "
                  "[ \"$s\" = inactive ] || exit 0; i=$((i+1)); sleep 0.1; done; exit 0")
        self._ok(node, "starting mariadbd", script, stdin=start_args_text(args) if args else None, timeout=30)

    def is_running(self, node: NodeSettings) -> bool:
        return self._sh(node, self._running_script(node), timeout=30).returncode == 0

    def running_status(self, node: NodeSettings, timeout: float = 10.0) -> NodeStatus | None:
        """Both in one ssh call: whether mariadbd runs, then (if it does) its wsrep status."""
        client = shlex.join([*self._client(node), "--batch", "--skip-column-names", "--connect-timeout=5"])
        try:
            # a node that does not answer yet: its log's tail comes along (what it is doing: lifecycle's
            # progress line reads it next), so a start costs one ssh call per poll
            script = (f"if ! ({self._running_script(node)}); then echo {_NOT_RUNNING}; exit 0; fi; "
                      f"out=$({client} 2>&1); rc=$?; "
                      f"if [ $rc -ne 0 ]; then {self._tail_script(node, TAIL_WITH_STATUS)}; echo {_LOG_END}; fi; "
                      f"printf '%s\\n' \"$out\"; echo \"{_STATUS_RC}$rc\"")
            result = self._sh(node, script, stdin=STATUS_SQL, timeout=timeout + 5)
        except HostUnreachable as exc:
            return unreachable(node.name, exc.detail)
        lines = result.stdout.rstrip("\n").splitlines()
        if lines[:1] == [_NOT_RUNNING]:
            return None
        rc = lines[-1][len(_STATUS_RC):] if lines and lines[-1].startswith(_STATUS_RC) else "?"
        if _LOG_END in lines:
            end = lines.index(_LOG_END)
            self._tails[node.name] = (time.monotonic(), "\n".join(lines[:end]))
            lines = lines[end + 1:]
        body = "\n".join(lines[:-1])
        if rc != "0":
            return unreachable(node.name, body.strip().splitlines()[-1] if body.strip() else f"exit {rc}")
        return node_status(node.name, parse_status_rows(body))

    def stop(self, node: NodeSettings, timeout: float) -> None:
        p = self.paths(node)
        pid = shlex.quote(str(p.launcher_pid))
        forget = f"rm -f {pid}"
        kill = f"kill -TERM $(cat {pid})"
        stop = kill
        if self._systemd(node):
            unit = node_unit_name(node)
            # disabled: a node galerakv stopped (down, remove-node) stays down when its host reboots
            forget += f"; systemctl disable --quiet --no-reload {unit} 2>/dev/null; true"
            stop = (f"systemctl disable --quiet --no-reload {unit} 2>/dev/null; "
                    f"case \"$(systemctl is-active {unit})\" in active|activating|reloading) "
                    f"systemctl stop --no-block {unit} || exit 1;; esac; "
                    f"if ({self._started_script(node)}); then {kill}; fi")  # started before it ran as a unit
        # one ssh call: stop it if it runs, wait on the host until it is gone, forget it
        running = self._running_script(node)
        script = (f"if ({running}); then {stop} || exit 1; i=0; while ({running}); do "
                  f"i=$((i+1)); if [ $i -gt {int(timeout * 10)} ]; then echo {_STILL_RUNNING}; exit 0; fi; "
                  f"sleep 0.1; done; fi; {forget}")
        out = self._ok(node, "stopping mariadbd", script, timeout=timeout + 30)
        if _STILL_RUNNING in out.split():
            raise NodeError(node.name, f"mariadbd did not stop within {timeout:.0f} s "
                            "after SIGTERM; it may be in a state transfer", self.log_tail(node))

    def _grastate_text(self, node: NodeSettings) -> str | None:
        result = self._sh(node, f"cat {shlex.quote(str(self.paths(node).grastate))}", timeout=30)
        return result.stdout if result.returncode == 0 else None

    def _wsrep_recover_log(self, node: NodeSettings, timeout: float) -> str:
        p = self.paths(node)
        log = shlex.quote(str(p.log))
        user = self.ctx.run_as
        marker = shlex.quote(f"{RECOVER_MARKER} {node.name}")
        argv = shlex.join([MARIADBD, f"--defaults-file={p.my_cnf}", "--wsrep-recover"])
        if self._systemd(node):  # what it logs goes to the unit's journal, where the doctor reads the log
            script = (f"{_journal_line(node_unit_name(node))}; t=$(mktemp -p {self._state} .recover.XXXXXX) "
                      f"|| exit 1; trap 'rm -f \"$t\"' EXIT; say {marker}; cd /; {argv} </dev/null >\"$t\" 2>&1; "
                      "rc=$?; while IFS= read -r line || [ -n \"$line\" ]; do say \"$line\"; done < \"$t\"; "
                      "cat \"$t\"; exit $rc")
        else:
            script = (f"{_plain_log(log)} || exit 1; touch {log}; chown -h {user}:{user} {log}; "
                      f"echo {marker} >> {log}; start=$(stat -c %s {log}); cd /; {argv} </dev/null >>{log} 2>&1; "
                      f"rc=$?; tail -c +$((start + 1)) {log}; exit $rc")
        result = self._sh(node, script, timeout=timeout)
        if result.returncode != 0:
            raise NodeError(node.name, f"mariadbd --wsrep-recover exited with {result.returncode}",
                            "\n".join(result.stdout.splitlines()[-15:]))
        return result.stdout

    def _write_grastate_text(self, node: NodeSettings, text: str) -> None:
        path = shlex.quote(str(self.paths(node).grastate))
        self._ok(node, "writing grastate.dat", f"set -e; if [ -L {path} ] || [ ! -f {path} ]; then "
                 f"echo {path} 'is not a plain file (a symlink?): remove it' >&2; exit 1; fi; "
                 + self._replace(str(self.paths(node).grastate), f"ref:{self.paths(node).grastate}", ""),
                 stdin=text)

    def read_node_files(self, node: NodeSettings, paths: tuple[str, ...]) -> dict[str, str | None]:
        """Every file in one ssh call: a line with the path, then its base64 (or ``-``)."""
        script = f'for f in "$@"; do printf "%s\\n" "$f"; {_B64_FILE}; done'
        out = self._sh(node, f"set -- {shlex.join(paths)}; {script}", timeout=30).stdout.splitlines()
        found: dict[str, str | None] = dict.fromkeys(paths)
        for path, body in zip(out[::2], out[1::2], strict=False):
            if path in found:
                found[path] = _b64_text(body)
        return found

    def file_report(self, node: NodeSettings) -> str | None:
        """What the doctor reads on the host in one call: the datadir's owners, leftovers and GRA
        logs (``doctor/facts.py`` ``parse_file_report``), and every listening TCP socket
        (``listen HEXADDR:HEXPORT`` from /proc/net/tcp, for the port checks of a stopped node)."""
        p = self.paths(node)
        user = shlex.quote(self.ctx.run_as)
        root, datadir = shlex.quote(str(p.root)), shlex.quote(str(p.datadir))
        leftovers = " ".join(shlex.quote(name) for name in SST_LEFTOVER_NAMES)
        ignored = " ".join(f"! -name {shlex.quote(name)}" for name in OWNER_IGNORED_NAMES)
        script = f"""
r={root}; d={datadir}; u={user}
[ -d "$d" ] && echo "datadir 1" || echo "datadir 0"
t="$d"; [ -e "$t" ] || t="$r"
if [ -e "$t" ]; then
  p=""; for part in $(echo "$t" | tr / ' '); do p="$p/$part"
    runuser -u "$u" -- test -x "$p" 2>/dev/null || {{ echo "blocked $p"; break; }}; done
fi
for f in "$r" "$d"; do
  [ -e "$f" ] && [ "$(stat -c %U "$f")" != "$u" ] && stat -c 'owner %n (owner %U:%G, mode %04a)' "$f"
done
if [ -d "$d" ]; then
  find "$d" -mindepth 1 -maxdepth 1 {ignored} ! -user "$u" -printf 'owner %p (owner %u:%g, mode %04m)\n' | head -n 5000
  for n in {leftovers}; do [ -e "$d/$n" ] && echo "leftover $d/$n"; done
  find "$d" -mindepth 1 -maxdepth 1 -name 'GRA_*.log' -printf 'gra %p\n' | head -n 100
fi
awk '$4 == "0A" {{ print "listen " $2 }}' /proc/net/tcp /proc/net/tcp6 2>/dev/null | head -n 5000
exit 0
"""
        return self._ok(node, "reading the node's files", script, timeout=60)

    def node_state(self, node: NodeSettings, log_lines: int) -> NodeState:
        """In one ssh call: whether mariadbd runs, grastate.dat (base64, ``-`` when missing), then
        the log's tail."""
        grastate = shlex.quote(str(self.paths(node).grastate))
        script = (f"if ({self._running_script(node)}); then echo 1; else echo 0; fi; echo {_GRASTATE}; "
                  f"f={grastate}; {_B64_FILE}; {self._tail_script(node, log_lines)}; exit 0")
        out = self._ok(node, "reading the node's state", script, timeout=30)
        lines = out.split("\n")
        running, marker, body = [*lines, "", ""][:3]
        if marker != _GRASTATE:
            raise NodeError(node.name, f"reading the node's state on {node.address}: unexpected answer "
                            f"{out[:200]!r}")
        text = _b64_text(body)
        return NodeState(running == "1", parse_grastate(text) if text is not None else None,
                         "\n".join(lines[3:]).rstrip())

    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        seen, text = self._tails.pop(node.name, (0.0, ""))
        if lines <= TAIL_WITH_STATUS and time.monotonic() - seen < TAIL_FRESH:  # read with the last status
            return "\n".join(text.splitlines()[-lines:])
        return self._sh(node, self._tail_script(node, lines), timeout=30).stdout.rstrip()

    # ------------------------------------------------------------------ SQL

    def _client(self, node: NodeSettings) -> list[str]:
        return ["mariadb", f"--defaults-file={self.admin_cnf}",
                f"--socket={self.paths(node).socket}"]

    def client_argv(self, node: NodeSettings, batch: bool, extra: tuple[str, ...] = ()) -> list[str]:
        if batch:  # no terminal: the statement's output comes back as it is
            return self.runner.argv(node.address, shlex.join([*self._client(node), "--batch", *extra]))
        return self.runner.interactive_argv(node.address, [*self._client(node), *extra])

    def query(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> str:
        command = shlex.join([*self._client(node), "--batch", "--skip-column-names",
                              "--connect-timeout=5"])
        try:
            result = self._sh(node, command, stdin=sql, timeout=timeout)
        except HostUnreachable as exc:  # status and the doctor show the node as unreachable, and why
            raise QueryFailed(node.name, exc.detail, unreachable=True) from exc
        if result.returncode != 0:
            err = result.stderr.strip().splitlines()
            message = err[-1] if err else f"exit {result.returncode}"
            unreachable = result.returncode in (124, 127, 255) or message.startswith(
                UNREACHABLE_CODES) or "Could not open required defaults file" in message
            raise QueryFailed(node.name, message, unreachable=unreachable)
        return result.stdout


_NOT_RUNNING = "galerakv: not running"
_STILL_RUNNING = "galerakv:still-running"
_SYSTEMD_FOUND = "galerakv: systemd runs here"
_SYSTEMD_PROBE = f"if {HAS_SYSTEMD}; then echo {shlex.quote(_SYSTEMD_FOUND)}; fi"
_GRASTATE = "galerakv: grastate.dat"
# script: the file at $f as one line of base64, "-" when it is missing or unreadable (read by _b64_text)
_B64_FILE = 'if [ -f "$f" ] && [ -r "$f" ]; then base64 -w0 "$f"; else printf -; fi; printf "\\n"'


def _b64_text(line: str) -> str | None:
    """A file's text from its :data:`_B64_FILE` line (None: missing, unreadable or not text)."""
    if line == "-":
        return None
    try:
        return base64.b64decode(line).decode()
    except (ValueError, UnicodeDecodeError):
        return None
_LOG_END = "galerakv: end of log"
TAIL_WITH_STATUS = 200
TAIL_FRESH = 1.0  # seconds a log tail read along with a status is reused
_STATUS_RC = "galerakv: client exit "


def _journal_line(unit: str) -> str:
    """Script: a shell function ``say LINE`` that adds LINE to ``unit``'s journal. journald keeps
    root's lines about a unit (OBJECT_SYSTEMD_UNIT) with the unit's own: ``journalctl -u`` shows both."""
    return (f"say() {{ printf 'MESSAGE=%s\\nOBJECT_SYSTEMD_UNIT=%s\\nSYSLOG_IDENTIFIER=galerakv\\n' \"$1\" {unit} "
            "| logger --journald 2>/dev/null || true; }")


def _plain_log(log: str) -> str:
    """Script: fail unless the (quoted) log path is missing or a plain file of its own (no symlink,
    no hard link), before root appends to it and chowns it."""
    return (f"if [ -L {log} ] || {{ [ -e {log} ] && {{ [ ! -f {log} ] || [ $(stat -c %h {log}) -ne 1 ]; }}; }}; "
            f"then echo {log} 'is not a plain file of its own (a symlink or hard link?): remove it' >&2; false; fi")
