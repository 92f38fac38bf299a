"""Starting and stopping the processes galerakv runs, written once.

A :class:`Program` is launched in its own session with a minimal environment,
its output appended to its log, and its PID recorded in a file. It is stopped
only by that PID, and only after checking (Linux ``/proc``) that the PID still
runs the same program with the same configuration: galerakv never signals a
process it did not start. The local transport runs ``mariadbd`` this way, the
balancer runs ``haproxy``, ``maxscale`` and the health-check responders.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from galerakv.errors import ClusterError

POLL = 0.05
EXEC_TIMEOUT = 5.0  # posix_spawn may return before exec has replaced the command line


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    # reap our own exited child first, else it would linger as a zombie that looks alive
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[-1].split()
        return bool(fields) and fields[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid``; empty when it is gone or not readable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def clean_env(extra_keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment a started process gets: PATH and locale, nothing else."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", *extra_keep)
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class StopTimeout(Exception):
    """The process outlived SIGTERM by ``timeout`` and was left running (no escalation)."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.pid = pid


@dataclass(frozen=True)
class Program:
    """One process galerakv runs, and how to recognise it by its command line."""

    label: str
    argv: tuple[str, ...]
    pid_file: Path
    log: Path
    marks: tuple[str, ...]  # arguments its command line must contain
    listens: tuple[tuple[str, int], ...] = ()  # addresses that accept connections once it is up
    names: tuple[str, ...] = ()  # accepted basenames of argv[0] (any when empty)
    env_keep: tuple[str, ...] = ()

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
        if not argv or (self.names and os.path.basename(argv[0]) not in self.names):
            return False
        return all(m in argv for m in self.marks)

    def running_pid(self) -> int | None:
        pid = self.recorded_pid()
        return pid if pid is not None and self.owns(pid) else None

    def launch(self) -> int:
        """Start in a new session, output appended to the log; record the PID. Does not wait
        for readiness, only until exec has replaced the command line (or it died)."""
        binary = shutil.which(self.argv[0]) if not os.path.isabs(self.argv[0]) else self.argv[0]
        if binary is None:
            raise ClusterError(f"{self.label}: {self.argv[0]} is not installed")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = os.posix_spawn(binary, list(self.argv), clean_env(self.env_keep), setsid=True,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, null_fd, 0),
                                               (os.POSIX_SPAWN_DUP2, log_fd, 1),
                                               (os.POSIX_SPAWN_DUP2, log_fd, 2)])
        except OSError as exc:
            raise ClusterError(f"{self.label}: cannot start {binary}: {exc.strerror}") from exc
        finally:
            os.close(log_fd)
            os.close(null_fd)
        self.pid_file.write_text(f"{pid}\n")
        deadline = time.monotonic() + EXEC_TIMEOUT
        while not self.owns(pid) and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def start(self, timeout: float) -> int:
        """:meth:`launch`, then wait until every listen address accepts connections."""
        pid = self.launch()
        deadline = time.monotonic() + timeout
        waiting = list(self.listens)
        while waiting:
            if not pid_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise ClusterError(f"{self.label} exited while starting; its log {self.log} ends:\n"
                                   + tail(self.log))
            if accepts(*waiting[0]):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(f"{self.label} did not listen on {waiting[0][0]}:{waiting[0][1]} "
                                   f"within {timeout:.0f} s; its log {self.log} ends:\n"
                                   + tail(self.log))
            time.sleep(POLL)
        return pid

    def stop(self, timeout: float = 10.0, escalate: bool = True) -> bool:
        """SIGTERM the recorded PID if it is still ours and wait; True if it ran.

        After ``timeout``: SIGKILL when ``escalate``, else raise :class:`StopTimeout`
        and leave it running (a database in a state transfer must not be killed).
        """
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.owns(pid):
            if time.monotonic() > deadline:
                if not escalate:
                    raise StopTimeout(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(POLL)
        self.pid_file.unlink(missing_ok=True)
        return True


def ensure_system_user(name: str, why: str, report: Callable[[str], None]) -> pwd.struct_passwd:
    """The system user ``name`` a program drops to, created (no home, no login, its own group)
    when missing; ``why`` says which program runs as it, for the messages."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", name]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise ClusterError(f"cannot create the system user {name} ({why}): {exc.strerror}") from exc
    if result.returncode != 0:
        raise ClusterError(f"cannot create the system user {name} ({why}): {result.stderr.strip()}; "
                           f"create it with `{' '.join(argv)}`")
    report(f"created the system user {name} (no login, no home): {why}")
    return pwd.getpwnam(name)
