"""The cluster toolkit without a database: init, render, bad input, secrets, checks."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from galerakv import config, secrets
from galerakv.cli.main import main
from galerakv.cluster import starter
from galerakv.cluster.operations import lifecycle
from galerakv.cluster.transport.fake import FakeTransport
from galerakv.cluster.transport.local import port_problem, untraversable
from galerakv.errors import ClusterError
from galerakv.paths import StatePaths
from tests.support.state_dirs import state_root


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


# --------------------------------------------------------------------------- init


def test_init_writes_a_valid_starter_file() -> None:
    folder = state_root("init-")  # a folder every user may enter (pytest's tmp_path is 0700)
    try:
        target = folder / "galerakv.toml"
        code, out = invoke("cluster", "init", "--local", "5", "--config", str(target))
        assert code == 0, out
        s = config.load(target)
        assert [n.name for n in s.cluster.nodes] == ["db1", "db2", "db3", "db4", "db5"]
        assert [n.address for n in s.cluster.nodes][::4] == ["127.0.0.11", "127.0.0.15"]
        assert s.balancer.kind == "haproxy"
        assert s.state_dir == folder / ".galerakv" and "state_dir is" not in out
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("home_mode", [0o700, 0o750])
def test_init_from_a_home_directory_puts_state_where_mysql_can_reach_it(tmp_path: Path, home_mode: int) -> None:
    """A home directory of mode 0700/0750 (current Ubuntu) is closed to the mysql user: the
    state goes under /var/lib/galerakv instead, and init says so, rather than `up` refusing."""
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    home.chmod(home_mode)
    target = home / "galerakv.toml"
    code, out = invoke("cluster", "init", "--local", "3", "--config", str(target))
    assert code == 0, out
    s = config.load(target)
    assert s.state_dir.parent == starter.SHARED_STATE_ROOT and s.state_dir.name.startswith("alice-")
    assert f"state_dir is {s.state_dir}" in out and "cannot enter" in out
    # the same file again: the same place; another file: another place
    assert starter.reachable_state_dir(target)[0] == str(s.state_dir)
    assert starter.reachable_state_dir(home / "other.toml")[0] != str(s.state_dir)
    from galerakv.cluster.transport.local import untraversable
    assert untraversable(s.state_dir.parent.parent, -1, set()) is None  # /var/lib: open to every user


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "galerakv.toml"
    target.write_text("# mine\n")
    code, out = invoke("cluster", "init", "--local", "3", "--config", str(target))
    assert code != 0 and "--force" in out
    assert target.read_text() == "# mine\n"
    code, out = invoke("cluster", "init", "--local", "3", "--config", str(target), "--force")
    assert code == 0 and "[[cluster.nodes]]" in target.read_text()


@pytest.mark.parametrize("count", ["0", "-2", "500"])
def test_init_rejects_bad_counts(tmp_path: Path, count: str) -> None:
    code, out = invoke("cluster", "init", "--local", count, "--config", str(tmp_path / "g.toml"))
    assert code != 0 and "error:" in out
    assert not (tmp_path / "g.toml").exists()


def test_init_warns_about_even_counts(tmp_path: Path) -> None:
    code, out = invoke("cluster", "init", "--local", "4", "--config", str(tmp_path / "g.toml"))
    assert code == 0 and "garbd" in out


def test_starter_addresses() -> None:
    assert starter.node_addresses(3) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert starter.node_addresses(2, "127.0.0.21") == ["127.0.0.21", "127.0.0.22"]
    with pytest.raises(ClusterError):
        starter.node_addresses(3, "10.0.0.1")
    with pytest.raises(ClusterError):
        starter.node_addresses(3, "127.0.0.254")


# --------------------------------------------------------------------------- render / bad input


def write_config(tmp_path: Path, count: int = 3) -> Path:
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(count))
    return path


def test_render_prints_and_writes(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, out = invoke("cluster", "render", "--config", str(cfg), "--provider", "/x/libgalera_smm.so")
    assert code == 0, out
    assert "# ==> db3/cluster.cnf <==" in out and "wsrep_provider = /x/libgalera_smm.so" in out
    code, out = invoke("cluster", "render", "--config", str(cfg), "--provider", "/x/l.so",
                       "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert (tmp_path / "out" / "db2" / "cluster.cnf").is_file()


def test_verbs_need_nodes(tmp_path: Path) -> None:
    cfg = tmp_path / "galerakv.toml"
    cfg.write_text("[server]\nport = 8080\n")
    for verb in ("status", "verify", "down", "render"):
        code, out = invoke("cluster", verb, "--config", str(cfg))
        assert code != 0 and "cluster init" in out, (verb, out)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    code, out = invoke("cluster", "status", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "file not found" in out


def test_sql_rejects_unknown_node_and_both_targets(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--node", "db9", "-e", "SELECT 1")
    assert code == 1 and "no node named 'db9'" in out
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--node", "db1", "--via", "rw")
    assert code == 1 and "not both" in out


def test_sql_on_a_node_that_is_down_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client prints its own ERROR 2002; galerakv adds why and what to run."""
    cfg = write_config(tmp_path)
    fake = FakeTransport(config.load(cfg))
    monkeypatch.setattr("galerakv.cli.cluster.make_transport", lambda settings: fake)
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--node", "db2", "-e", "SELECT 1")
    assert (code, out) == (0, "")
    fake.running["db2"] = False
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--node", "db2", "-e", "SELECT 1")
    assert code == 1
    assert out == ("error: db2 is not running: `galerakv cluster status` shows every node; "
                   "`galerakv cluster up` starts the ones that are down\n")
    # a node that runs but does not answer (hung, SIGSTOPped) is named as such
    monkeypatch.setattr(fake, "is_running", lambda node: True)
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--node", "db2")
    assert code == 1 and "db2 does not answer (ERROR 2002 (HY000): Can't connect)" in out


def test_sql_via_balancer_that_is_not_configured(tmp_path: Path) -> None:
    cfg = tmp_path / "galerakv.toml"
    cfg.write_text(starter.starter_toml(3).replace('kind = "haproxy"', 'kind = "none"'))
    code, out = invoke("cluster", "sql", "--config", str(cfg), "--via", "ro", "-e", "SELECT 1")
    assert code == 1 and "no balancer" in out


def test_up_refuses_too_few_nodes_before_doing_anything(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 2)
    code, out = invoke("cluster", "up", "--config", str(cfg), "--no-install")
    assert code == 1 and "--allow-small" in out
    assert not (tmp_path / ".galerakv").exists()


@pytest.mark.parametrize(
    ("count", "allow", "errors", "warnings"),
    [(0, False, 1, 0), (1, False, 1, 0), (2, True, 0, 2), (3, False, 0, 0), (4, False, 0, 1),
     (5, False, 0, 0)],
)
def test_node_count_problems(count: int, allow: bool, errors: int, warnings: int) -> None:
    e, w = lifecycle.node_count_problems(count, allow)
    assert (len(e), len(w)) == (errors, warnings)


# --------------------------------------------------------------------------- secrets


def test_secrets_created_private_and_reused(tmp_path: Path) -> None:
    s = config.load(write_config(tmp_path))
    first, created = secrets.ensure(s)
    assert created
    assert stat.S_IMODE(StatePaths.of(s).secrets.stat().st_mode) == 0o600
    again, created = secrets.ensure(s)
    assert not created and again == first
    assert first.app.user == "galerakv" and first.admin.user == "root"
    assert first.admin.password not in repr(first)
    StatePaths.of(s).secrets.chmod(0o644)
    with pytest.raises(ClusterError, match="chmod 600"):
        secrets.ensure(s)


def test_secrets_file_damaged(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text("[admin]\nuser = 'root'\n")
    with pytest.raises(ClusterError, match=r"\[admin\]"):
        secrets.load(path)


def test_accounts_sql_is_idempotent_and_least_privilege(tmp_path: Path) -> None:
    s = config.load(write_config(tmp_path))
    sql = lifecycle.accounts_sql(s, secrets.generate(s))
    assert "CREATE DATABASE IF NOT EXISTS `galerakv`" in sql
    assert sql.count("CREATE USER IF NOT EXISTS") == 3
    assert "ON `galerakv`.* TO 'galerakv'@'127.%'" in sql
    assert "galerakv_sst" not in sql  # rsync needs no SST account


# --------------------------------------------------------------------------- machine checks


def test_untraversable_finds_the_closed_directory() -> None:
    # pytest's tmp_path sits under a 0700 directory, itself an example of the problem
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        closed = base / "closed"
        inner = closed / "inner"
        inner.mkdir(parents=True)
        assert untraversable(base, 65534, {65534}) is None
        closed.chmod(0o700)
        try:
            assert untraversable(inner, 65534, {65534}) == closed
            assert untraversable(inner, 0, {0}) is None
            assert untraversable(inner, os.geteuid(), set()) is None  # the owner may enter
        finally:
            closed.chmod(0o755)


def test_port_problem() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_problem("127.0.0.1", port) == "is already in use by another program"
    assert port_problem("127.0.0.1", port) is None
    assert port_problem("192.0.2.1", 3306) == "is not an address of this machine"


def test_required_packages() -> None:
    from galerakv.cluster import install

    assert install.required_packages("rsync") == list(install.BASE_PACKAGES)
    assert set(install.MARIABACKUP_PACKAGES) <= set(install.required_packages("mariabackup"))
    assert install.required_packages(None) == install.required_packages("mariabackup")
    assert install.missing_packages([]) == []


def test_status_of_a_cluster_never_started_is_down(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, out = invoke("cluster", "status", "--config", str(cfg), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "down"
    assert all(not n["reachable"] and "never started" in n["error"] for n in data["nodes"])
