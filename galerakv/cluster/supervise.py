"""Looking at processes by PID (Linux /proc), for stopping only what galerakv started."""

from __future__ import annotations

import os


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
