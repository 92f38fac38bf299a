"""MariaDB MaxScale in front of the nodes (``balancer.kind = "maxscale"``).

The MaxScale accounts are created on the cluster, then ``maxscale`` runs with
the rendered ``maxscale.cnf`` when it is installed (MariaDB's repository, not
Debian's).
"""

from __future__ import annotations

import shutil
import tomllib

from galerakv.cluster.render.balancer import (
    MAXSCALE_MONITOR_USER,
    MAXSCALE_SERVICE_USER,
    MaxScaleAccounts,
    maxscale_grants_sql,
    render_maxscale_cnf,
)
from galerakv.cluster.supervise import Program
from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import BalancerPaths
from galerakv.secrets import Account, write_private

START_TIMEOUT = 15.0
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
                        ";\n".join(maxscale_grants_sql(accounts, host)) + ";\n", timeout=60)
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
            pid = program.start(START_TIMEOUT)
            report(f"maxscale on {b.address}: writes :{b.rw_port}, reads :{b.ro_port} (PID {pid})")


def maxscale_program(settings: Settings) -> Program:
    p = BalancerPaths.of(settings)
    b = settings.balancer
    cnf = f"--config={p.maxscale_cnf}"
    return Program("maxscale", ("maxscale", "--nodaemon", cnf), p.maxscale_pid, p.maxscale_log,
                   marks=(cnf,), listens=((b.address, b.rw_port), (b.address, b.ro_port)))


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
