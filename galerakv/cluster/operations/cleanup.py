"""``galerakv cluster destroy``: stop everything and delete the state directory.

What goes: every node's datadir, configuration and logs, the balancer's files,
the generated credentials (``state_dir``, on this machine and, with the ssh
transport, on every host). What stays: galerakv.toml, backups (``[backup] dir``
outside ``state_dir``), the installed packages, systemd units (``galerakv
service uninstall``).

The directory is deleted only when it looks like one galerakv made (it holds
the secrets file or a node's directory with its my.cnf) and is not a
directory whose loss would be a disaster (``/``, a top-level directory, the
home directory, the directory of galerakv.toml itself).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from galerakv.cluster.operations import lifecycle
from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import NodePaths, StatePaths


def state_dir_problem(settings: Settings) -> str | None:
    """Why ``state_dir`` must not be deleted, or None when it may."""
    state = settings.state_dir.absolute()
    if len(state.parts) < 3 or state == Path.home() or state == settings.base_dir.absolute():
        return f"state_dir is {state}; galerakv deletes only a directory of its own, never that one"
    if not state.exists():
        return None
    if StatePaths.of(settings).secrets.exists():
        return None
    if any(NodePaths.of(settings, n).my_cnf.exists() for n in settings.cluster.nodes):
        return None
    if not any(state.iterdir()):
        return None
    return (f"{state} holds neither secrets.toml nor a node's my.cnf: it does not look like a galerakv "
            "state directory; check [cluster] state_dir, and delete it by hand if you are sure")


def destroy(settings: Settings, transport: Transport, report: Report) -> list[str]:
    """Stop the nodes and the balancer, delete ``state_dir`` everywhere; what was deleted."""
    problem = state_dir_problem(settings)
    if problem is not None:
        raise ClusterError(problem)
    lifecycle.down(settings, transport, report)
    deleted: list[str] = []
    state = settings.state_dir.absolute()
    if settings.cluster.transport == "ssh":
        for node in settings.cluster.nodes:
            script = f"rm -rf -- {shlex.quote(str(state))}"
            result = subprocess.run(transport.script_argv(node, script), capture_output=True, text=True,
                                    timeout=300, check=False, stdin=subprocess.DEVNULL)
            if result.returncode != 0:
                raise ClusterError(f"{node.name}: cannot delete {state} on {node.address}: "
                                   f"{result.stderr.strip()}; delete it there by hand")
            deleted.append(f"{node.address}:{state}")
            report(f"{node.name}: deleted {state} on {node.address}")
    if state.exists():
        shutil.rmtree(state)
        deleted.append(str(state))
        report(f"deleted {state}")
    return deleted
