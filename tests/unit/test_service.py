"""`galerakv service` (systemd units, the PATH link) and `galerakv cluster destroy`'s safety rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from galerakv import config
from galerakv.cluster.operations.cleanup import state_dir_problem
from galerakv.cluster.render import systemd
from tests.support.configs import write_config

CLUSTER = {"cluster": {"name": "c1", "state_dir": "state",
                       "nodes": [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"} for i in (1, 2, 3)]}}


def galerakv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", *args], capture_output=True, text=True,
                            timeout=60, check=False, stdin=subprocess.DEVNULL, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _settings(tmp_path: Path, data: dict[str, Any]) -> config.Settings:
    return config.load(write_config(tmp_path / "galerakv.toml", data))


def test_sqlite_gets_the_api_unit_only_writable_where_its_file_is(tmp_path: Path) -> None:
    s = _settings(tmp_path, {"server": {"sqlite_path": "data/kv.sqlite3"}})
    units = systemd.render(s, Path("/opt/galerakv/bin/galerakv"), s.source or Path())
    assert list(units.files) == [systemd.SERVER_UNIT]
    text = units.files[systemd.SERVER_UNIT]
    assert f"ExecStart=/opt/galerakv/bin/galerakv serve --config {tmp_path}/galerakv.toml" in text
    assert f"ReadWritePaths={tmp_path}/data" in text and "User=galerakv" in text
    assert "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text
    assert units.writable == (tmp_path / "data",)


def test_local_nodes_get_a_cluster_unit_and_the_server_its_secrets_as_a_credential(tmp_path: Path) -> None:
    s = _settings(tmp_path, {**CLUSTER, "server": {"backend": "mariadb", "route": "nodes"}})
    units = systemd.render(s, Path("/opt/galerakv/bin/galerakv"), tmp_path / "galerakv.toml")
    cluster = units.files[systemd.CLUSTER_UNIT]
    assert "Type=oneshot" in cluster and "RemainAfterExit=yes" in cluster
    assert "ExecStart=/opt/galerakv/bin/galerakv cluster up --no-install --config" in cluster
    assert "ExecStop=/opt/galerakv/bin/galerakv cluster down --config" in cluster
    server = units.files[systemd.SERVER_UNIT]
    assert f"LoadCredential=galerakv-secrets.toml:{tmp_path}/state/secrets.toml" in server
    assert f"LoadCredential=galerakv-ca.crt:{tmp_path}/state/tls/ca.crt" in server  # TLS to MariaDB
    assert "galerakv-https" not in server
    pair = {"tls_cert": "state/tls/http.crt", "tls_key": "state/tls/http.key"}
    https = _settings(tmp_path, {**CLUSTER, "server": {"backend": "mariadb", "route": "nodes", **pair}})
    server = systemd.render(https, Path("/opt/galerakv/bin/galerakv"), tmp_path / "galerakv.toml").files[
        systemd.SERVER_UNIT]
    assert f"LoadCredential=galerakv-https.crt:{tmp_path}/state/tls/http.crt" in server
    assert f"LoadCredential=galerakv-https.key:{tmp_path}/state/tls/http.key" in server
    assert f"After=network-online.target {systemd.CLUSTER_UNIT}" in server
    assert "ReadWritePaths" not in server and units.writable == ()


def test_nodes_on_other_hosts_get_no_cluster_unit_here(tmp_path: Path) -> None:
    data: dict[str, Any] = {**CLUSTER, "server": {"backend": "mariadb", "route": "nodes"}}
    data["cluster"] = {**CLUSTER["cluster"], "transport": "ssh"}
    s = _settings(tmp_path, data)
    assert list(systemd.render(s, Path("/x/galerakv"), tmp_path / "galerakv.toml").files) == [systemd.SERVER_UNIT]


def test_installed_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "galerakv.toml",
                               {**CLUSTER, "server": {"backend": "mariadb", "route": "nodes"}})
    units = tmp_path / "units"
    result = galerakv("service", "install", "--config", str(config_path), "--dir", str(units))
    assert result.returncode == 0, result.stderr
    assert "next: systemctl daemon-reload && systemctl enable --now" in result.stdout
    names = sorted(p.name for p in units.iterdir())
    assert names == [systemd.CLUSTER_UNIT, systemd.SERVER_UNIT]
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(units / n) for n in names)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "galerakv.service:" not in verify.stderr  # no warning about our own units

    (units / systemd.SERVER_UNIT).write_text("[Unit]\nDescription=someone else's\n")
    refused = galerakv("service", "install", "--config", str(config_path), "--dir", str(units))
    assert refused.returncode == 1 and "was not written by galerakv" in refused.stderr

    removed = galerakv("service", "uninstall", "--dir", str(units))
    assert removed.returncode == 0
    assert sorted(p.name for p in units.iterdir()) == [systemd.SERVER_UNIT]  # only ours went


def test_the_link_puts_galerakv_on_a_clean_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    made = galerakv("service", "link", "--to", str(bin_dir))
    assert made.returncode == 0, made.stderr
    link = bin_dir / "galerakv"
    assert link.is_symlink()
    # what sudo does: a fresh environment and its own PATH
    env = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"}
    ran = subprocess.run(["galerakv", "--version"], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert ran.returncode == 0 and ran.stdout.startswith("galerakv, version"), ran.stderr
    again = galerakv("service", "link", "--to", str(bin_dir))  # idempotent
    assert again.returncode == 0 and link.is_symlink()
    link.unlink()
    link.write_text("#!/bin/sh\n")
    refused = galerakv("service", "link", "--to", str(bin_dir))
    assert refused.returncode == 1 and "is not a link" in refused.stderr


def test_install_needs_a_configuration_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GALERAKV_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "service", "install", "--dir",
                             str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
                            check=False)
    assert result.returncode == 2 and "pass --config" in result.stderr


@pytest.mark.parametrize(("state_dir", "content", "problem"), [
    ("state", "secrets", None),
    ("state", "node", None),
    ("state", "empty", None),
    ("state", "missing", None),
    ("state", "foreign", "does not look like a galerakv state directory"),
    (".", "secrets", "never that one"),
    ("/", "missing", "never that one"),
    ("/var", "missing", "never that one"),
])
def test_destroy_deletes_only_a_state_directory_of_its_own(tmp_path: Path, state_dir: str, content: str,
                                                           problem: str | None) -> None:
    s = _settings(tmp_path, {"cluster": {**CLUSTER["cluster"], "state_dir": state_dir}})
    state = s.state_dir
    if content != "missing" and state_dir == "state":
        state.mkdir()
        if content == "secrets":
            (state / "secrets.toml").write_text("")
        elif content == "node":
            (state / "db2").mkdir()
            (state / "db2" / "my.cnf").write_text("")
        elif content == "foreign":
            (state / "photos").mkdir()
    found = state_dir_problem(s)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_destroy_without_a_terminal_asks_for_yes(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "galerakv.toml", CLUSTER)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "secrets.toml").write_text("")
    result = galerakv("cluster", "destroy", "--config", str(config_path))
    assert result.returncode == 2 and "pass --yes" in result.stderr
    assert (tmp_path / "state" / "secrets.toml").exists()


def test_systemd_analyze_is_installed() -> None:
    assert shutil.which("systemd-analyze"), "scripts/test installs systemd (systemd-analyze verifies the units)"
