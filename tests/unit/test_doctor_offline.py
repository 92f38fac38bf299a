"""``galerakv cluster doctor --offline`` on real rendered files, docs generated from the catalogue.

No node runs here: the configuration is written exactly as ``up`` writes it
(LocalTransport.write_config), then one fault at a time is edited into a
node's files and the command must name that code on that node.
"""

from __future__ import annotations

import dataclasses
import json
import pwd
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from galerakv import config, secrets
from galerakv.cli.main import main
from galerakv.cluster import starter
from galerakv.cluster.doctor import diagnose
from galerakv.cluster.doctor.catalogue import CATALOGUE, render_markdown
from galerakv.cluster.doctor.collect import file_facts
from galerakv.cluster.doctor.facts import Facts, NodeFacts
from galerakv.cluster.render.node import RenderContext, detect_context, render_all
from galerakv.cluster.transport.local import LocalTransport
from galerakv.paths import NodePaths
from tests.support.machine import galera_provider
from tests.support.state_dirs import state_root

DOCS = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"


# --------------------------------------------------------------------------- docs


def test_troubleshooting_md_is_generated_from_the_catalogue() -> None:
    assert DOCS.read_text() == render_markdown(), (
        "docs/troubleshooting.md is stale: python -m galerakv.cluster.doctor.catalogue > "
        "docs/troubleshooting.md")


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_is_documented(code: str) -> None:
    text = DOCS.read_text()
    section = text.split(f"\n## {code}\n", 1)
    assert len(section) == 2, f"{code} has no section in docs/troubleshooting.md"
    body = section[1].split("\n## ", 1)[0]
    for part in ("**Symptom:**", "**Cause (how the doctor tells):**", "**Fix:**"):
        assert part in body, f"{code}: {part} missing"


def test_codes_are_stable_identifiers() -> None:
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", code) for code in CATALOGUE)


# --------------------------------------------------------------------------- offline on files


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cluster", *args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> RenderContext:
    """This machine's render context; a stand-in Galera library where galera-4 is not installed."""
    provider = galera_provider(tmp_path_factory.mktemp("galera"))
    return dataclasses.replace(detect_context(require_provider=False), provider=provider)


def write_cluster(root: Path, count: int, ctx: RenderContext, first: str = "127.0.0.94",
                  balancer_kind: str = "none") -> Path:
    path = root / "galerakv.toml"
    path.write_text(starter.starter_toml(count, first, cluster_name="offline_test", state_dir="state",
                                         balancer_kind=balancer_kind))
    settings = config.load(path)
    transport = LocalTransport(settings, ctx)
    generated = secrets.generate(settings)
    for node, files in render_all(settings, ctx).items():
        transport.write_config(settings.cluster.node(node), files, generated)
    return path


@pytest.fixture
def root() -> Iterator[Path]:
    """A directory the mysql user can enter (pytest's own tmp_path is 0700: the doctor says so)."""
    path = state_root("doctor-offline-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rendered(root: Path, ctx: RenderContext) -> Path:
    return write_cluster(root, 3, ctx)


def test_freshly_rendered_cluster_is_clean(rendered: Path) -> None:
    code, out = invoke("doctor", "--offline", "--config", str(rendered))
    assert code == 0, out
    assert "no problem found" in out


EDITS = [
    # (line in db2's cluster.cnf, replacement, code, severity)
    (r"wsrep_cluster_name = offline_test", "wsrep_cluster_name = other_cluster",
     "cluster-name-mismatch", "critical"),
    (r"wsrep_cluster_address = .*", "wsrep_cluster_address = gcomm://127.0.0.94:4567,127.0.0.95:4567",
     "cluster-address-incomplete", "warning"),
    (r"wsrep_cluster_address = .*", "wsrep_cluster_address = gcomm://", "cluster-address-incomplete",
     "critical"),
    (r"wsrep_on = ON", "wsrep_on = OFF", "wsrep-off", "critical"),
    (r"wsrep_on = ON", "# wsrep_on removed", "wsrep-off", "critical"),
    (r"wsrep_provider = .*", "wsrep_provider = /nonexistent/libgalera_smm.so", "provider-missing",
     "critical"),
    (r"wsrep_node_address = .*", "wsrep_node_address = 10.1.2.3", "node-address-wrong", "critical"),
    (r"binlog_format = ROW", "binlog_format = STATEMENT", "mandatory-settings", "critical"),
    (r"innodb_autoinc_lock_mode = 2", "innodb_autoinc_lock_mode = 1", "mandatory-settings", "critical"),
    (r"bind-address = .*", "bind-address = 0.0.0.0", "bind-all", "warning"),
    (r"skip_name_resolve = ON", "skip_name_resolve = OFF", "name-resolve", "warning"),
    (r"\[mysqld\]", "[mysqld]\nwsrep-new-cluster", "bootstrap-in-config", "critical"),
    (r"wsrep_provider_options = \"", 'wsrep_provider_options = "pc.bootstrap=YES;', "bootstrap-in-config",
     "critical"),
]


@pytest.mark.parametrize(("pattern", "replacement", "code", "severity"), EDITS,
                         ids=[f"{e[2]}-{i}" for i, e in enumerate(EDITS)])
def test_a_config_fault_is_found_on_its_node(rendered: Path, pattern: str, replacement: str, code: str,
                                             severity: str) -> None:
    cnf = rendered.parent / "state" / "db2" / "cluster.cnf"
    text, n = re.subn(pattern, replacement, cnf.read_text(), count=1, flags=re.M)
    assert n == 1
    cnf.write_text(text)
    exit_code, out = invoke("doctor", "--offline", "--json", "--config", str(rendered))
    data = json.loads(out)
    found = [f for f in data["findings"] if f["code"] == code]
    assert [f["node"] for f in found] == ["db2"], data["findings"]
    assert found[0]["severity"] == severity
    assert any("db2/" in e and ".cnf" in e for e in found[0]["evidence"])
    assert exit_code == (1 if any(f["severity"] == "critical" for f in data["findings"]) else 0)


def test_sst_auth_file_missing_with_mariabackup(root: Path, ctx: RenderContext) -> None:
    path = write_cluster(root, 3, ctx)
    path.write_text(path.read_text().replace('sst_method = "rsync"', 'sst_method = "mariabackup"'))
    settings = config.load(path)
    transport = LocalTransport(settings, ctx)
    generated = secrets.generate(settings)
    for node, files in render_all(settings, ctx).items():
        transport.write_config(settings.cluster.node(node), files, generated)
    (root / "state" / "db3" / "sst_auth.cnf").unlink()
    code, out = invoke("doctor", "--offline", "--json", "--config", str(path))
    found = [f for f in json.loads(out)["findings"] if f["code"] == "sst-auth"]
    assert code == 1 and "db3" in [f["node"] for f in found], out


@pytest.mark.parametrize(("count", "expected"), [(4, {"even-node-count"}),
                                                  (2, {"even-node-count", "too-few-nodes"}),
                                                  (1, {"too-few-nodes"})])
def test_node_count(root: Path, ctx: RenderContext, count: int, expected: set[str]) -> None:
    path = write_cluster(root, count, ctx)
    code, out = invoke("doctor", "--offline", "--json", "--config", str(path))
    data = json.loads(out)
    assert code == 0
    assert {(f["code"], f["node"]) for f in data["findings"]} == {(c, None) for c in expected}


def test_up_refuses_on_a_critical_offline_finding(rendered: Path) -> None:
    datadir = rendered.parent / "state" / "db1" / "data"
    datadir.mkdir()
    (datadir / "grastate.dat").write_text("version: 2.1\nuuid: 672b085e-e985-11f1-8a73-46d596c18f25\n"
                                          "seqno: -1\nsafe_to_bootstrap: 0\n")
    (datadir / "sst_in_progress").write_text("")
    code, out = invoke("up", "--no-install", "--config", str(rendered))
    assert code == 1
    assert "refusing to start" in out and "sst-leftovers db1" in out
    assert "rm -rf" in out and not (rendered.parent / "state" / "db1" / "galerakv.pid").exists()


def test_a_node_folder_of_another_user_is_chowned_whole_before_data_exists(root: Path) -> None:
    """`render --out` leaves state_dir/<node> owned by whoever ran it, with no data/ yet: the fix
    must name the folder (chown -R of the missing data/ fails)."""
    node_dir = root / "db1"
    node_dir.mkdir()
    (node_dir / "cluster.cnf").write_text("[mysqld]\n")
    other = next(p for p in pwd.getpwall() if p.pw_uid != node_dir.stat().st_uid)
    files = file_facts(NodePaths(node_dir), other.pw_name)
    assert not files.datadir_exists and files.wrong_owner
    facts = Facts("offline_test", "local", "rsync",
                  (NodeFacts("db1", "127.0.0.94", 3306, running=False, files=files),), offline=True)
    (f,) = [f for f in diagnose(facts).findings if f.code == "datadir-permissions"]
    assert f.fix == f"chown -R {other.pw_name}:{other.pw_name} {node_dir}"


def test_a_node_left_in_maintenance_is_a_warning(root: Path, ctx: RenderContext) -> None:
    path = write_cluster(root, 3, ctx, balancer_kind="haproxy")
    code, out = invoke("maintenance", "--node", "db2", "on", "--config", str(path))
    assert code == 0, out
    code, out = invoke("doctor", "--offline", "--json", "--config", str(path))
    data = json.loads(out)
    assert code == 0, out  # drained on purpose: not critical
    (f,) = data["findings"]
    assert (f["code"], f["node"], f["severity"]) == ("node-in-maintenance", "db2", "warning")
    assert f["evidence"] == [f"{root / 'state' / 'db2' / 'maintenance'}: drained by `galerakv cluster maintenance`"]
    assert f["fix"].endswith("`galerakv cluster maintenance --node db2 off`")
    invoke("maintenance", "--node", "db2", "off", "--config", str(path))
    code, out = invoke("doctor", "--offline", "--json", "--config", str(path))
    assert json.loads(out)["findings"] == []
