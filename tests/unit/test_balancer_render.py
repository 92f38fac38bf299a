"""haproxy.cfg and maxscale.cnf, held to golden files under tests/unit/golden/.

Regenerate after an intended change with:
    GALERAKV_UPDATE_GOLDEN=1 pytest tests/unit/test_balancer_render.py
and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from galerakv import config
from galerakv.cluster.render.balancer import (
    MaxScaleAccounts,
    duration,
    maxscale_grants_sql,
    render_haproxy_cfg,
    render_maxscale_cnf,
)
from galerakv.config import Settings
from galerakv.secrets import Account

GOLDEN = Path(__file__).parent / "golden"
ACCOUNTS = MaxScaleAccounts(Account("galerakv_mxs_monitor", "monitor-pw"),
                            Account("galerakv_mxs_service", "service-pw"))


def settings(kind: str = "haproxy", tls: bool = True, **balancer: Any) -> Settings:
    data = {
        "cluster": {"name": "my_db_cluster", "state_dir": "state", "tls": tls,
                    "nodes": [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"} for i in (1, 2, 3)]},
        "balancer": {"kind": kind, "address": "127.0.0.10", "rw_port": 3306, "ro_port": 3307,
                     **balancer},
    }
    return config.parse(data, source=Path("/srv/galerakv/galerakv.toml"))


CASES = {
    "haproxy.cfg": lambda: render_haproxy_cfg(settings()),
    "haproxy-fast.cfg": lambda: render_haproxy_cfg(settings(check_interval=0.5, check_port=9300)),
    "haproxy-plain.cfg": lambda: render_haproxy_cfg(settings(tls=False)),
    "maxscale.cnf": lambda: render_maxscale_cnf(settings("maxscale"), ACCOUNTS),
    "maxscale-plain.cnf": lambda: render_maxscale_cnf(settings("maxscale", tls=False), ACCOUNTS),
    "maxscale-donor.cnf": lambda: render_maxscale_cnf(
        settings("maxscale", available_when_donor=True, check_interval=2), ACCOUNTS),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden(name: str) -> None:
    text = CASES[name]()
    path = GOLDEN / f"balancer-{name}"
    if os.environ.get("GALERAKV_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}; set GALERAKV_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def _listener(cfg: str, name: str) -> list[str]:
    block = cfg.split(f"listen {name}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()]


def test_haproxy_writes_go_to_one_node_root_first() -> None:
    rw = _listener(render_haproxy_cfg(settings()), "galerakv_rw")
    servers = [line for line in rw if line.startswith("server ")]
    assert [s.split()[1] for s in servers] == ["db1", "db2", "db3"]
    assert not servers[0].endswith(" backup") and all(s.endswith(" backup") for s in servers[1:])
    assert "on-marked-up shutdown-backup-sessions" in servers[0]
    assert "bind 127.0.0.10:3306" in rw
    assert "balance" not in " ".join(rw)  # first available server, no spreading of writes
    assert "option allbackups" not in rw  # only the first backup takes over


def test_haproxy_reads_spread_over_every_node() -> None:
    ro = _listener(render_haproxy_cfg(settings()), "galerakv_ro")
    assert "bind 127.0.0.10:3307" in ro and "balance leastconn" in ro
    servers = [line for line in ro if line.startswith("server ")]
    assert len(servers) == 3 and not any("backup" in s for s in servers)


def test_haproxy_checks_through_clustercheck_not_mysql_check() -> None:
    cfg = render_haproxy_cfg(settings())
    assert "option mysql-check" not in cfg.replace("(option mysql-check cannot", "")
    for name in ("galerakv_rw", "galerakv_ro"):
        block = _listener(cfg, name)
        assert "option httpchk GET /" in block and "http-check expect status 200" in block
        for s in (line for line in block if line.startswith("server ")):
            assert "check port 9200 inter 1s fall 2 rise 2" in s
    assert "stats socket /srv/galerakv/state/balancer/haproxy.sock mode 600 level admin" in cfg


def test_maxscale_services_and_current_syntax() -> None:
    cnf = render_maxscale_cnf(settings("maxscale"), ACCOUNTS)
    lines = cnf.splitlines()
    assert "module=galeramon" in lines and "router=readwritesplit" in lines
    assert "router=readconnroute" in lines and "router_options=synced" in lines
    assert not any(line.startswith("passwd") for line in lines)
    assert lines.count("password=service-pw") == 2 and lines.count("password=monitor-pw") == 1
    assert "monitor_interval=1s" in lines
    # no REST API: galerakv uses neither it nor maxctrl, so the default admin account never listens
    assert "admin_enabled=false" in lines and not any(line.startswith(("admin_host", "admin_port"))
                                                       for line in lines)
    # every duration has a unit
    for line in lines:
        if re.match(r"^(monitor_interval|backend_connect_timeout)=", line):
            assert re.search(r"\d+(ms|s)$", line), line
    assert [line for line in lines if line.startswith("priority=")] == ["priority=1", "priority=2", "priority=3"]
    listeners = cnf.split("[rw-listener]")[1]
    assert "port=3306" in listeners.split("[ro-listener]")[0]
    assert "service=ro-service" in listeners.split("[ro-listener]")[1]


def test_maxscale_grants_as_documented() -> None:
    sql = maxscale_grants_sql(ACCOUNTS, "127.%")
    assert "GRANT REPLICATION CLIENT ON *.* TO 'galerakv_mxs_monitor'@'127.%'" in sql
    for table in ("user", "db", "tables_priv", "columns_priv", "procs_priv", "proxies_priv",
                  "roles_mapping"):
        assert f"GRANT SELECT ON mysql.{table} TO 'galerakv_mxs_service'@'127.%'" in sql
    assert "GRANT SHOW DATABASES ON *.* TO 'galerakv_mxs_service'@'127.%'" in sql
    quoted = maxscale_grants_sql(MaxScaleAccounts(Account("m", "it's"), Account("s", "a\\b")), "%")
    assert "IDENTIFIED BY 'it\\'s'" in quoted[0] and "IDENTIFIED BY 'a\\\\b'" in quoted[3]
    # the TLS requirement goes on new and existing accounts alike
    tls = maxscale_grants_sql(ACCOUNTS, "127.%", "REQUIRE SSL")
    assert "ALTER USER 'galerakv_mxs_monitor'@'127.%' REQUIRE SSL" in tls
    assert "ALTER USER 'galerakv_mxs_service'@'127.%' REQUIRE SSL" in tls
    assert all("REQUIRE NONE" in s for s in sql if s.startswith(("CREATE USER", "ALTER USER")))


@pytest.mark.parametrize(("seconds", "text"), [(1, "1s"), (1.0, "1s"), (0.5, "500ms"), (2.25, "2250ms"),
                                               (60, "60s")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
