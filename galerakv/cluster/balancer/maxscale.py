"""MariaDB MaxScale in front of the nodes (``balancer.kind = "maxscale"``).

The MaxScale accounts are created on the cluster, then ``maxscale`` runs with
the rendered ``maxscale.cnf`` when it is installed (MariaDB's repository, not
Debian's; or built from source with ``scripts/build-maxscale``).

MaxScale refuses to run as root, so galerakv (as root) runs it as the
unprivileged ``maxscale`` system user, created when missing: MaxScale's own
``--user`` option drops to it before the configuration is read. Its
directories under ``state_dir/balancer/maxscale/`` are owned by that user, and
``maxscale.cnf`` (it holds the accounts' passwords) is mode 0600, owned by it.
Run by anyone else, MaxScale runs as that user, in directories it owns already.
"""

from __future__ import annotations

import grp
import os
import shutil
import tomllib
from pathlib import Path

from galerakv.cluster import certs
from galerakv.cluster.render.balancer import (
    MAXSCALE_MONITOR_USER,
    MAXSCALE_SERVICE_USER,
    MAXSCALE_USER,
    MaxScaleAccounts,
    maxscale_grants_sql,
    render_maxscale_cnf,
)
from galerakv.cluster.supervise import Program, ensure_system_user
from galerakv.cluster.transport.base import Report, Transport
from galerakv.cluster.transport.local import untraversable
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import BalancerPaths, TlsPaths
from galerakv.secrets import Account, write_private

START_TIMEOUT = 15.0
MAXSCALE_SUBDIRS = ("log", "data", "cache", "run", "persist")  # the [maxscale] *dir= paths
MAXSCALE_INSTALL_HINT = (
    "MariaDB MaxScale is not in Debian's packages; install it from MariaDB's repository: "
    "curl -LsS https://r.mariadb.com/downloads/mariadb_repo_setup | sudo bash -s -- --skip-server "
    "--skip-tools && sudo apt-get install maxscale (see docs/cluster.md, \"Load balancer\"), "
    'or set balancer.kind = "haproxy"'
)


class MaxScale:
    """The :class:`~galerakv.cluster.balancer.Kind` for MariaDB MaxScale."""

    name: str = "maxscale"
    packages: tuple[str, ...] = ()  # not in Debian

    def program(self, settings: Settings) -> Program:
        return maxscale_program(settings)

    def programs(self, settings: Settings) -> list[Program]:
        return [maxscale_program(settings)]

    def preflight(self, settings: Settings) -> list[str]:
        return [] if shutil.which("maxscale") else [f"no maxscale binary on PATH. {MAXSCALE_INSTALL_HINT}"]

    def start(self, settings: Settings, transport: Transport, report: Report) -> None:
        b = settings.balancer
        paths = BalancerPaths.of(settings)
        accounts = ensure_maxscale_accounts(settings)
        host = "127.%" if settings.cluster.transport == "local" else "%"
        transport.query(settings.cluster.nodes[0],
                        ";\n".join(maxscale_grants_sql(accounts, host, certs.require_clause(settings))) + ";\n",
                        timeout=60)
        report(f"MaxScale accounts {accounts.monitor.user} and {accounts.service.user} ready")
        owner = prepare_maxscale_dirs(settings, report)
        write_private(paths.maxscale_cnf, render_maxscale_cnf(settings, accounts), owner=owner)
        if settings.cluster.tls:  # the listeners' key, readable by MaxScale's user alone
            certs.ensure(settings, report)
            write_private(paths.maxscale_tls_key, TlsPaths.of(settings).key(certs.BALANCER).read_text(),
                          owner=owner)
        program = maxscale_program(settings)
        if shutil.which("maxscale") is None:
            report(f"warning: wrote {paths.maxscale_cnf}, but maxscale is not installed. "
                   + MAXSCALE_INSTALL_HINT)
            return
        if program.running_pid() is None:
            pid = program.start(START_TIMEOUT)
            report(f"maxscale on {b.address}: writes :{b.rw_port}, reads :{b.ro_port} (PID {pid})")


def maxscale_program(settings: Settings) -> Program:
    """``maxscale`` in the foreground; as root, told to drop to the ``maxscale`` user itself."""
    p = BalancerPaths.of(settings)
    b = settings.balancer
    cnf = f"--config={p.maxscale_cnf}"
    user = (f"--user={MAXSCALE_USER}",) if os.geteuid() == 0 else ()
    return Program("maxscale", ("maxscale", "--nodaemon", *user, cnf), p.maxscale_pid, p.maxscale_log,
                   marks=(cnf,), listens=((b.address, b.rw_port), (b.address, b.ro_port)))


def prepare_maxscale_dirs(settings: Settings, report: Report) -> tuple[int, int] | None:
    """Make MaxScale's directories, owned by the user it runs as; returns that (uid, gid) when
    it is not this process's own user (so root), else None.

    The balancer's folder (``state_dir/balancer``, mode 0750) is given the ``maxscale`` group,
    so that user may enter it; a directory above it that the user cannot enter is an error
    naming the fix, found here rather than in MaxScale's log.
    """
    paths = BalancerPaths.of(settings)
    d = paths.maxscale_dir
    dirs = [d, *(d / sub for sub in MAXSCALE_SUBDIRS)]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    if os.geteuid() != 0:
        return None
    pw = ensure_system_user(MAXSCALE_USER, "MaxScale refuses to run as root", report)
    uid, gid = pw.pw_uid, pw.pw_gid
    groups = {g.gr_gid for g in grp.getgrall() if MAXSCALE_USER in g.gr_mem} | {gid}
    if untraversable(paths.root, uid, groups) == paths.root:
        os.chown(paths.root, -1, gid)  # root keeps it; the group may only enter and list
    blocked = untraversable(d, uid, groups)
    if blocked is not None:
        mode = blocked.stat().st_mode & 0o777
        raise ClusterError(f"the {MAXSCALE_USER} user (MaxScale runs as it) cannot enter {blocked} "
                           f"(mode {mode:04o}); run `chmod o+x {blocked}` or put cluster.state_dir "
                           "under a directory every user can enter, such as /var/tmp or /srv")
    for directory in dirs:
        _own(directory, uid, gid)
    for leftover in (d / "log").glob("*"):  # logs written before, maybe as root
        _own(leftover, uid, gid)
    return uid, gid


def _own(path: Path, uid: int, gid: int) -> None:
    st = path.lstat()
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)


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
