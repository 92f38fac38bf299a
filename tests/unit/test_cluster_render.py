"""Rendered node configuration, held to golden files under tests/unit/golden/.

Regenerate after an intended change with:
    GALERAKV_UPDATE_GOLDEN=1 pytest tests/unit/test_cluster_render.py
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from galerakv import config
from galerakv.cluster.render import node as render
from galerakv.cluster.render.node import RenderContext
from galerakv.config import Settings

GOLDEN = Path(__file__).parent / "golden"
CTX = RenderContext(provider="/usr/lib/galera/libgalera_smm.so", server_version=(10, 11),
                    run_as="mysql")


def settings(sst: str = "rsync", count: int = 3, tls: bool = True) -> Settings:
    data = {
        "cluster": {
            "name": "my_db_cluster",
            "state_dir": "state",
            "sst_method": sst,
            "tls": tls,
            "nodes": [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"}
                      for i in range(1, count + 1)],
        },
    }
    return config.parse(data, source=Path("/srv/galerakv/galerakv.toml"))


CASES = {
    "rsync": settings(),
    "mariabackup": settings("mariabackup"),
    "plain": settings(tls=False),  # cluster.tls = false: no ssl lines, no socket.ssl, no [sst] ssl-mode
}


def golden_cases() -> list[tuple[str, str, str]]:
    return [(case, node, name) for case, s in CASES.items()
            for node, files in render.render_all(s, CTX).items() for name in files]


@pytest.mark.parametrize(("case", "node", "name"), golden_cases())
def test_render_matches_golden(case: str, node: str, name: str) -> None:
    text = render.render_all(CASES[case], CTX)[node][name]
    path = GOLDEN / f"render-{case}-{node}-{name}"
    if os.environ.get("GALERAKV_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}; set GALERAKV_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_render_is_deterministic() -> None:
    assert render.render_all(settings(), CTX) == render.render_all(settings(), CTX)


def test_mandatory_settings_on_every_node() -> None:
    for node, files in render.render_all(settings(count=5), CTX).items():
        cnf = files["cluster.cnf"]
        for line in ("binlog_format = ROW", "default_storage_engine = InnoDB",
                     "innodb_autoinc_lock_mode = 2", "wsrep_on = ON", "skip_name_resolve = ON",
                     f"wsrep_node_name = {node}",
                     "wsrep_cluster_address = gcomm://127.0.0.11:4567,127.0.0.12:4567,"
                     "127.0.0.13:4567,127.0.0.14:4567,127.0.0.15:4567"):
            assert line in cnf.splitlines(), (node, line)
        assert "0.0.0.0" not in cnf
        assert "new-cluster" not in cnf.replace("--wsrep-new-cluster is never written", "")


def test_query_cache_only_where_the_server_has_one() -> None:
    s = settings()
    node = s.cluster.nodes[0]
    assert "query_cache_size = 0" in render.render_cluster_cnf(s, node, CTX)
    mysql8 = RenderContext(CTX.provider, (8, 0), "mysql", server_flavor="mysql")
    assert "query_cache" not in render.render_cluster_cnf(s, node, mysql8)


def test_paths_are_under_state_dir() -> None:
    s = settings()
    my_cnf = render.render_all(s, CTX)["db2"]["my.cnf"]
    assert "datadir = /srv/galerakv/state/db2/data" in my_cnf
    assert "!include /srv/galerakv/state/db2/cluster.cnf" in my_cnf


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64", (10, 11)),
        ("/usr/sbin/mysqld  Ver 8.0.36 for Linux", (8, 0)),
        ("nonsense", None),
    ],
)
def test_parse_server_version(text: str, expected: tuple[int, int] | None) -> None:
    assert render.parse_server_version(text) == expected


def test_find_provider(tmp_path: Path) -> None:
    lib = tmp_path / "libgalera_smm.so"
    assert render.find_provider((str(lib),)) is None
    lib.write_bytes(b"")
    assert render.find_provider((str(tmp_path / "nope.so"), str(lib))) == str(lib)


def test_write_rendered(tmp_path: Path) -> None:
    written = render.write_rendered(render.render_all(settings(), CTX), tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "db1/cluster.cnf", "db1/my.cnf", "db2/cluster.cnf", "db2/my.cnf",
        "db3/cluster.cnf", "db3/my.cnf"]
