"""add-node / remove-node: the metadata file edited as text, comments kept, bad input refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from galerakv import config
from galerakv.cli.main import main
from galerakv.cluster import starter
from galerakv.cluster.operations import membership
from galerakv.config import NodeSettings
from galerakv.errors import ClusterError


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.101", balancer_kind="none"))
    return path


def names(text: str) -> list[str]:
    return [n["name"] for n in tomllib.loads(text)["cluster"]["nodes"]]


def test_add_then_remove_gives_the_same_file_back(toml: Path) -> None:
    original = toml.read_text()
    grown = membership.with_node_added(original, NodeSettings("db4", "127.0.0.104"))
    grown = membership.with_node_added(grown, NodeSettings("db5", "127.0.0.105", 3307))
    assert names(grown) == ["db1", "db2", "db3", "db4", "db5"]
    assert "# the root node: bootstrapped first" in grown and "port = 3307" in grown
    # the new tables sit with the others, before [balancer]
    assert grown.index('name = "db5"') < grown.index("[balancer]")
    shrunk = membership.with_node_removed(membership.with_node_removed(grown, "db5"), "db4")
    assert shrunk == original


def test_removing_a_middle_node_keeps_the_rest(toml: Path) -> None:
    text = membership.with_node_removed(toml.read_text(), "db2")
    assert names(text) == ["db1", "db3"]
    assert tomllib.loads(text)["balancer"]["kind"] == "none"
    with pytest.raises(ClusterError, match=r"no \[\[cluster.nodes\]\] table"):
        membership.with_node_removed(text, "db2")


@pytest.mark.parametrize(("name", "address", "message"), [
    ("db2", "127.0.0.109", "the name 'db2' is already taken"),
    ("db9", "127.0.0.102", "127.0.0.102:3306 is already taken by node db2"),
    ("db9", "10.0.0.5", "local nodes must use a loopback address"),
])
def test_taken_or_bad_names_and_addresses(toml: Path, name: str, address: str, message: str) -> None:
    settings = config.load_file(toml)
    problems = membership.new_node_problems(settings, name, address, 3306)
    assert any(message in p for p in problems), problems
    assert membership.new_node_problems(settings, "db4", "127.0.0.104", 3306) == []


@pytest.mark.parametrize(("args", "message"), [
    (("add-node", "db1", "127.0.0.104"), "the name 'db1' is already taken"),
    (("add-node", "db4", "127.0.0.103"), "127.0.0.103:3306 is already taken by node db3"),
    (("remove-node", "db2"), "pass --force"),
    (("remove-node", "db8"), "no node named 'db8'"),
    (("restart",), "only --rolling"),
    (("recover", "--force", "db8"), "--force db8: no node of that name"),
])
def test_cli_bad_input_changes_nothing(toml: Path, args: tuple[str, ...], message: str) -> None:
    before = toml.read_text()
    result = CliRunner().invoke(main, ["cluster", *args, "--config", str(toml)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert toml.read_text() == before
    assert not (toml.parent / ".galerakv").exists()
