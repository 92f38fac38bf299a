"""Test hosts that behave like separate machines: one real OpenSSH server per loopback address,
each in a mount namespace of its own.

Each host is ``/usr/sbin/sshd -D`` started through ``unshare --mount --propagation private``, after
bind mounts of a private folder over every directory a node uses (the cluster's ``state_dir``,
/etc/mysql, /var/lib/mysql, /run/mysqld). Whatever runs in an ssh session there (and the
``mariadbd`` it starts) sees the host's own files, not the other hosts' and not the
controller's. The network is shared (loopback), as it is between machines on one LAN. root's
~/.bashrc (which sshd's bash reads before every command) is Debian's default there, as on a fresh
server, not this machine's (a developer's may start pyenv: 0.1 s of CPU per ssh command).

Login: a key made for this run (ed25519, no passphrase) for root; the hosts' keys are made
for this run too and written to a known_hosts file the clients check against
(StrictHostKeyChecking=yes, never ``no``). Each sshd is stopped by its PID; the processes
a test left in a host are killed by the PIDs galerakv recorded in that host's folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.state_dirs import state_root

SSHD = "/usr/sbin/sshd"
SSH_HOST_ADDRESSES = [f"127.0.0.{i}" for i in (61, 62, 63)]  # one node each
SSH_BALANCER_ADDRESS = "127.0.0.65"  # HAProxy and its health checks, on a host of their own
SSH_SPARE_ADDRESSES = ["127.0.0.66", "127.0.0.67"]  # the hosts of nodes add-node brings in
PRIVATE_DIRS = (Path("/etc/mysql"), Path("/var/lib/mysql"), Path("/run/mysqld"))
START_TIMEOUT = 15.0
# sshd runs every command through root's bash, which reads ~/.bashrc: the hosts get Debian's default
# (it returns at once when not interactive), as a freshly installed server has
ROOT_BASHRC, SKEL_BASHRC = Path("/root/.bashrc"), Path("/etc/skel/.bashrc")


@dataclass
class Host:
    address: str
    root: Path  # this host's private folders live here, on the controller's disk
    proc: subprocess.Popen[bytes] | None = None

    def private(self, path: Path) -> Path:
        """Where ``path`` as this host sees it lives on the controller's disk."""
        return self.root / "fs" / str(path).lstrip("/")


@dataclass
class SshHosts:
    """Hosts on ``addresses`` (the nodes') and ``extra`` (the balancer's, a spare); ``state_dir`` is
    private to each (bind-mounted in its namespace)."""

    addresses: list[str]
    state_dir: Path
    extra: list[str] = field(default_factory=list)
    root: Path = field(default_factory=lambda: state_root("ssh-hosts-"))
    hosts: dict[str, Host] = field(default_factory=dict)
    auth_dir: Path | None = None

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def ssh_table(self) -> dict[str, object]:
        """The ``[ssh]`` table of a galerakv.toml that reaches these hosts (all on this machine: the
        nodes run as processes galerakv starts, even where this machine runs systemd)."""
        return {"user": "root", "identity_file": str(self.key), "known_hosts_file": str(self.known_hosts),
                "connect_timeout": 5, "control_persist": 10, "systemd": "no"}

    def start(self) -> None:
        self.root.chmod(0o700)
        # sshd (StrictModes) trusts an authorized_keys file only if no folder above it is writable by
        # others, which /var/tmp is: it goes into a root-only folder under /run
        self.auth_dir = Path(tempfile.mkdtemp(prefix="galerakv-ssh-", dir="/run"))
        self.auth_dir.chmod(0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "galerakv-test",
                        "-f", str(self.key)], check=True, stdin=subprocess.DEVNULL)
        authorized = self.auth_dir / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        authorized.chmod(0o600)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for path in PRIVATE_DIRS:
            path.mkdir(parents=True, exist_ok=True)
        known: list[str] = []
        for i, address in enumerate([*self.addresses, *self.extra], start=1):
            host = Host(address, self.root / f"host{i}")
            self.hosts[address] = host
            (host.root / "etc").mkdir(parents=True)
            hostkey = host.root / "etc" / "ssh_host_ed25519_key"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True,
                           stdin=subprocess.DEVNULL)
            known.append(f"{address} {Path(f'{hostkey}.pub').read_text().split(' ')[0]} "
                         f"{Path(f'{hostkey}.pub').read_text().split(' ')[1]}")
            config = host.root / "etc" / "sshd_config"
            config.write_text("\n".join([
                f"ListenAddress {address}:22",
                f"HostKey {hostkey}",
                f"PidFile {host.root / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes yes",
                "MaxStartups 100:30:200",
                "MaxSessions 50",
                "LogLevel ERROR",
                "",
            ]))
            mounts = []
            for path in (self.state_dir, *PRIVATE_DIRS):
                own = host.private(path)
                own.mkdir(parents=True, exist_ok=True)
                own.chmod(0o755)
                mounts.append(f"mount --bind {own} {path}")
            if ROOT_BASHRC.exists():  # a fresh host's, not this machine's (whose may start pyenv and the like)
                bashrc = host.root / "etc" / "root.bashrc"
                bashrc.write_text(SKEL_BASHRC.read_text() if SKEL_BASHRC.exists() else "")
                mounts.append(f"mount --bind {bashrc} {ROOT_BASHRC}")
            script = " && ".join([*mounts, f"exec {SSHD} -D -e -f {config}"])
            log = (host.root / "sshd.log").open("ab")
            host.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                                          script], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.known_hosts.write_text("\n".join(known) + "\n")
        for host in self.hosts.values():
            self._wait_listening(host)

    def _wait_listening(self, host: Host) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert host.proc is not None
            if host.proc.poll() is not None:
                raise AssertionError(f"sshd on {host.address} exited:\n{(host.root / 'sshd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=1):
                return
            time.sleep(0.05)
        raise AssertionError(f"sshd on {host.address} did not listen within {START_TIMEOUT:.0f} s")

    def ssh(self, address: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on a host, as the toolkit would (its key, its known_hosts)."""
        return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                               "-o", f"UserKnownHostsFile={self.known_hosts}", "-i", str(self.key),
                               f"root@{address}", command], capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)

    def empty_state(self) -> None:
        """Remove what a cluster left in each host's state_dir and in the controller's."""
        for folder in [self.state_dir, *(h.private(self.state_dir) for h in self.hosts.values())]:
            for child in folder.iterdir() if folder.is_dir() else ():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def kill_leftovers(self) -> None:
        """Kill, by the PIDs galerakv recorded in each host's folders, what a test left running there:
        mariadbd, HAProxy and the health checks."""
        for host in self.hosts.values():
            state = host.private(self.state_dir)
            for pid_file in [*state.glob("*/galerakv.pid"), *state.glob("*/clustercheck.pid"),
                             *state.glob("balancer/haproxy.pid")]:
                with contextlib.suppress(ValueError, OSError):
                    pid = int(pid_file.read_text())
                    cmdline = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
                    ours = cmdline and (os.path.basename(cmdline[0]) in ("mariadbd", "mysqld", "haproxy")
                                        or "clustercheck" in cmdline)
                    if ours:
                        os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _sessions(listener: int) -> list[int]:
        """The per-connection sshd processes of the sshd listening as ``listener`` (its children):
        a client's shared connection (ControlPersist) would otherwise outlive the host."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == listener:
                    found.append(int(stat.parent.name))
        return found

    def stop(self) -> None:
        self.kill_leftovers()
        for host in self.hosts.values():
            if host.proc is not None:  # unshare execs sh, which execs sshd: the same PID throughout
                for pid in self._sessions(host.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            if host.proc is not None and host.proc.poll() is None:
                host.proc.terminate()
                try:
                    host.proc.wait(10)
                except subprocess.TimeoutExpired:
                    host.proc.kill()
                    host.proc.wait(10)
        if self.auth_dir is not None:
            shutil.rmtree(self.auth_dir, ignore_errors=True)
        if not os.environ.get("GALERAKV_KEEP_TEST_STATE"):
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.state_dir.parent, ignore_errors=True)


@contextlib.contextmanager
def ssh_hosts(addresses: list[str], state_dir: Path, extra: list[str] | None = None) -> Iterator[SshHosts]:
    hosts = SshHosts(addresses, state_dir, extra or [])
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.stop()
