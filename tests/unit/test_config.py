"""The metadata configuration file: discovery, parsing, every error at once, and the CLI around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from galerakv import config
from galerakv.cli.main import main
from galerakv.errors import ConfigError

NODES = [{"name": "db1", "address": "127.0.0.11"}, {"name": "db2", "address": "127.0.0.12"},
         {"name": "db3", "address": "127.0.0.13"}]


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


def issues_of(data: dict[str, Any], tmp_path: Path) -> list[Any]:
    with pytest.raises(ConfigError) as info:
        config.parse(data, source=tmp_path / "galerakv.toml")
    return info.value.issues


# ------------------------------------------------------------------------------- valid files


def test_no_file_gives_sqlite_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    settings = config.load()
    assert settings.source is None
    assert settings.server.backend == "sqlite"
    assert settings.server.port == 8080
    assert settings.auth.enabled is False
    assert settings.limits.max_value_bytes == 1024 * 1024


def test_full_design_example_parses(tmp_path: Path) -> None:
    data = {
        "cluster": {"name": "my_db_cluster", "transport": "local", "state_dir": ".galerakv",
                    "sst_method": "rsync", "nodes": NODES},
        "balancer": {"kind": "haproxy", "address": "127.0.0.10", "rw_port": 3306, "ro_port": 3307},
        "database": {"name": "galerakv", "user": "galerakv"},
        "server": {"host": "127.0.0.1", "port": 8080, "backend": "mariadb",
                   "sqlite_path": "galerakv-data/kv.sqlite3", "route": "balancer"},
    }
    s = config.load_file(write(tmp_path / "galerakv.toml", data))
    assert [n.name for n in s.cluster.nodes] == ["db1", "db2", "db3"]
    assert s.cluster.nodes[0].address == "127.0.0.11"
    assert s.balancer.kind == "haproxy"
    assert s.server.backend == "mariadb"
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass
        s.server.port = 1  # type: ignore[misc]


def test_relative_paths_resolve_against_the_file_directory(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir / "g.toml", {"cluster": {"state_dir": "state"},
                                       "server": {"sqlite_path": "data/kv.db"}})
    s = config.load(str(path))
    assert s.server.sqlite_path == conf_dir.resolve() / "data" / "kv.db"
    assert s.cluster.state_dir == conf_dir.resolve() / "state"
    absolute = write(conf_dir / "abs.toml", {"server": {"sqlite_path": str(tmp_path / "x.db")}})
    assert config.load(str(absolute)).server.sqlite_path == tmp_path / "x.db"


# ------------------------------------------------------------------------------- discovery


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cwd_file = write(tmp_path / "galerakv.toml", {"server": {"port": 1001}})
    env_file = write(tmp_path / "env.toml", {"server": {"port": 1002}})
    opt_file = write(tmp_path / "opt.toml", {"server": {"port": 1003}})
    monkeypatch.setenv(config.ENV_VAR, str(env_file))
    assert config.load(str(opt_file)).server.port == 1003  # --config wins
    assert config.load().server.port == 1002  # then $GALERAKV_CONFIG
    monkeypatch.delenv(config.ENV_VAR)
    s = config.load()  # then ./galerakv.toml
    assert s.server.port == 1001
    assert s.source == cwd_file.resolve()
    cwd_file.unlink()
    assert config.load().source is None  # then defaults


@pytest.mark.parametrize("how", ["option", "env"])
def test_explicit_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "galerakv.toml", {})  # must not be used instead
    missing = tmp_path / "nope.toml"
    if how == "env":
        monkeypatch.setenv(config.ENV_VAR, str(missing))
        arg = None
    else:
        monkeypatch.delenv(config.ENV_VAR, raising=False)
        arg = str(missing)
    with pytest.raises(ConfigError) as info:
        config.load(arg)
    text = str(info.value)
    assert "nope.toml" in text
    assert "not found" in text
    assert "hint" in text


def test_directory_as_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        config.load(str(tmp_path))


# ------------------------------------------------------------------------------- bad values

# (data, key path, bad value shown, words of the message or hint)
BAD: list[tuple[dict[str, Any], str, str | None, str]] = [
    # wrong types
    ({"server": {"port": "8080"}}, "server.port", "'8080'", "integer"),
    ({"server": {"port": True}}, "server.port", "True", "boolean"),
    ({"server": {"port": 8080.5}}, "server.port", "8080.5", "integer"),
    ({"server": {"host": 127}}, "server.host", "127", "string"),
    ({"server": {"access_log": "yes"}}, "server.access_log", "'yes'", "true or false"),
    ({"server": {"workers": 0}}, "server.workers", "0", "between"),
    ({"server": {"workers": 65}}, "server.workers", "65", "between"),
    ({"server": {"ttl_purge_interval": 0}}, "server.ttl_purge_interval", "0", "between"),
    ({"server": {"ttl_purge_interval": "1s"}}, "server.ttl_purge_interval", "'1s'", "number"),
    ({"server": {"sqlite_path": ""}}, "server.sqlite_path", "''", "empty"),
    ({"server": {"sqlite_path": 5}}, "server.sqlite_path", "5", "string"),
    ({"server": "x"}, "server", "'x'", "table"),
    ({"cluster": []}, "cluster", "[]", "table"),
    ({"cluster": {"nodes": {"name": "db1"}}}, "cluster.nodes", None, "array of tables"),
    ({"cluster": {"nodes": ["db1"]}}, "cluster.nodes[0]", "'db1'", "table"),
    ({"cluster": {"name": "1bad"}}, "cluster.name", "'1bad'", "cluster name"),
    ({"cluster": {"name": "x" * 40}}, "cluster.name", "xxxx", "32"),
    ({"cluster": {"state_dir": "  "}}, "cluster.state_dir", "'  '", "empty"),
    ({"database": {"name": "my-db"}}, "database.name", "'my-db'", "database name"),
    ({"database": {"user": "root"}}, "database.user", "'root'", "least-privilege"),
    ({"database": {"user": 3}}, "database.user", "3", "string"),
    ({"limits": {"max_key_bytes": 0}}, "limits.max_key_bytes", "0", "between"),
    ({"limits": {"max_key_bytes": 5000}}, "limits.max_key_bytes", "5000", "2900"),
    ({"limits": {"max_key_bytes": 3000}}, "limits.max_key_bytes", "3000", "VARBINARY(2900)"),
    ({"limits": {"max_value_bytes": -1}}, "limits.max_value_bytes", "-1", "between"),
    ({"limits": {"max_batch_ops": "10"}}, "limits.max_batch_ops", "'10'", "integer"),
    ({"limits": {"max_request_bytes": 10}}, "limits.max_request_bytes", "10", "between"),
    ({"limits": {"max_list_limit": 0}}, "limits.max_list_limit", "0", "between"),
    # unknown keys, with a did-you-mean hint
    ({"sever": {}}, "sever", None, "did you mean 'server'"),
    ({"server": {"prot": 80}}, "server.prot", "80", "did you mean 'port'"),
    ({"server": {"backnd": "sqlite"}}, "server.backnd", "'sqlite'", "did you mean 'backend'"),
    ({"cluster": {"nodse": []}}, "cluster.nodse", None, "did you mean 'nodes'"),
    ({"balancer": {"rw-port": 1}}, "balancer.rw-port", "1", "did you mean 'rw_port'"),
    ({"limits": {"max_value_byte": 1}}, "limits.max_value_byte", "1", "did you mean 'max_value_bytes'"),
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.11", "adress": "x"}]}},
     "cluster.nodes[0].adress", "'x'", "did you mean 'address'"),
    ({"auth": {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": "read"}, "scope": 1}]}},
     "auth.tokens[0].scope", "1", "did you mean 'scopes'"),
    ({"zzzzqq": 1}, "zzzzqq", "1", "known keys"),
    # bad enums
    ({"server": {"backend": "postgres"}}, "server.backend", "'postgres'", "'sqlite', 'mariadb'"),
    ({"server": {"backend": "sqlit"}}, "server.backend", "'sqlit'", "did you mean 'sqlite'"),
    ({"server": {"route": "node"}}, "server.route", "'node'", "did you mean 'nodes'"),
    ({"server": {"log_level": "verbose"}}, "server.log_level", "'verbose'", "one of"),
    ({"server": {"sqlite_synchronous": "off"}}, "server.sqlite_synchronous", "'off'", "one of"),
    ({"cluster": {"transport": "shh"}}, "cluster.transport", "'shh'", "did you mean 'ssh'"),
    ({"cluster": {"sst_method": "xtrabackup"}}, "cluster.sst_method", "'xtrabackup'", "mariabackup"),
    ({"balancer": {"kind": "nginx"}}, "balancer.kind", "'nginx'", "haproxy"),
    # nodes
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.11"}, {"name": "db1", "address": "127.0.0.12"}]}},
     "cluster.nodes[1].name", "'db1'", "already used by cluster.nodes[0]"),
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.11"}, {"name": "db2", "address": "127.0.0.11"}]}},
     "cluster.nodes[1].address", "'127.0.0.11'", "already used by cluster.nodes[0]"),
    ({"cluster": {"transport": "local", "nodes": [{"name": "db1", "address": "10.0.0.5"}]}},
     "cluster.nodes[0].address", "'10.0.0.5'", "loopback"),
    ({"cluster": {"nodes": [{"name": "db1"}, {"name": "db1", "address": "127.0.0.12"}]}},  # [0] is incomplete
     "cluster.nodes[1].name", "'db1'", "already used by cluster.nodes[0]"),
    ({"cluster": {"nodes": [{"name": "db1"}]}}, "cluster.nodes[0].address", None, "required"),
    ({"cluster": {"nodes": [{"address": "127.0.0.11"}]}}, "cluster.nodes[0].name", None, "required"),
    ({"cluster": {"nodes": [{"name": "db 1", "address": "127.0.0.11"}]}}, "cluster.nodes[0].name", "'db 1'",
     "node name"),
    ({"cluster": {"nodes": [{"name": "db1", "address": "not an address!"}]}}, "cluster.nodes[0].address",
     "'not an address!'", "IP address"),
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.11", "port": 0}]}}, "cluster.nodes[0].port",
     "0", "between 1 and 65535"),
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.11", "port": 70000}]}}, "cluster.nodes[0].port",
     "70000", "between 1 and 65535"),
    # ports
    ({"server": {"port": 0}}, "server.port", "0", "between 1 and 65535"),
    ({"server": {"port": 65536}}, "server.port", "65536", "between 1 and 65535"),
    ({"server": {"port": -80}}, "server.port", "-80", "between 1 and 65535"),
    ({"balancer": {"rw_port": 99999}}, "balancer.rw_port", "99999", "between 1 and 65535"),
    ({"balancer": {"ro_port": "3307"}}, "balancer.ro_port", "'3307'", "integer"),
    ({"balancer": {"kind": "haproxy", "rw_port": 3306, "ro_port": 3306}}, "balancer.ro_port", "3306",
     "must differ"),
    # one port written, meeting the other's default (render would put both listeners on it)
    ({"balancer": {"kind": "haproxy", "ro_port": 3306}}, "balancer.ro_port", "3306",
     "must differ from balancer.rw_port (3306, its default)"),
    ({"balancer": {"kind": "maxscale", "rw_port": 3307}}, "balancer.rw_port", "3307",
     "must differ from balancer.ro_port (3307, its default)"),
    ({"balancer": {"address": "bad address"}}, "balancer.address", "'bad address'", "IP address"),
    ({"balancer": {"check_interval": True}}, "balancer.check_interval", "True", "number, not a boolean"),
    # balancer colliding with a node
    ({"cluster": {"nodes": [{"name": "db1", "address": "127.0.0.10", "port": 3306}]},
      "balancer": {"kind": "haproxy", "address": "127.0.0.10"}},
     "balancer.rw_port", "3306", "collides with cluster.nodes[0]"),
    # backend / route cross checks
    ({"server": {"backend": "mariadb", "route": "nodes"}}, "server.backend", "'mariadb'", "cluster.nodes"),
    ({"server": {"backend": "mariadb", "route": "balancer"}, "cluster": {"nodes": NODES},
      "balancer": {"kind": "none"}}, "server.route", "'balancer'", "route = \"nodes\""),
    # auth
    ({"auth": {"enabled": True}}, "auth.tokens", None, "no token"),
    ({"auth": {"enabled": "yes"}}, "auth.enabled", "'yes'", "true or false"),
    ({"auth": {"tokens": {"name": "a"}}}, "auth.tokens", None, "array of tables"),
    ({"auth": {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"*": "write"}}]}},
     "auth.tokens[0].scopes.*", "'write'", "\"read\" or \"readwrite\""),
    ({"auth": {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {"bad ns!": "read"}}]}},
     "auth.tokens[0].scopes.bad ns!", "'read'", "valid namespace"),
    ({"auth": {"tokens": [{"name": "a", "token": "x" * 20, "scopes": {}}]}},
     "auth.tokens[0].scopes", "{}", "non-empty"),
    ({"auth": {"tokens": [{"name": "a", "token": "short", "scopes": {"*": "read"}}]}},
     "auth.tokens[0].token", "'short'", "too short"),
    ({"auth": {"tokens": [{"name": "a", "token_sha256": "abc", "scopes": {"*": "read"}}]}},
     "auth.tokens[0].token_sha256", "'abc'", "64 hex"),
    ({"auth": {"tokens": [{"name": "a", "scopes": {"*": "read"}}]}},
     "auth.tokens[0].token", None, "token_sha256"),
    ({"auth": {"tokens": ["secret"]}}, "auth.tokens[0]", "'secret'", "table"),
]


@pytest.mark.parametrize(("data", "key", "shown", "words"), BAD,
                         ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_value_is_reported_with_key_value_and_hint(tmp_path: Path, data: dict[str, Any], key: str,
                                                       shown: str | None, words: str) -> None:
    path = write(tmp_path / "galerakv.toml", data)
    with pytest.raises(ConfigError) as info:
        config.load_file(path)
    issues = [i for i in info.value.issues if i.key == key]
    assert issues, f"no issue for {key}; got {[i.key for i in info.value.issues]}"
    text = str(info.value)
    assert str(path) in text
    assert key in text
    if shown is not None:
        assert shown in text
    rendered = "\n".join(f"{i.message} {i.hint}" for i in issues)
    assert words in rendered, rendered


@pytest.mark.parametrize(("data", "key"), [(b[0], b[1]) for b in BAD],
                         ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_every_issue_has_a_hint(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    """DESIGN 1: every error names the file, the key path, the bad value *and a hint*."""
    issue = next(i for i in issues_of(data, tmp_path) if i.key == key)
    assert issue.hint, f"no hint for {issue}"
    assert "hint:" in str(issue)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    data = {
        "server": {"port": 0, "backend": "postgres", "prot": 1},
        "balancer": {"kind": "haproxy", "rw_port": 3306, "ro_port": 3306},
        "limits": {"max_key_bytes": 0},
        "cluster": {"nodes": [{"name": "db1", "address": "10.0.0.1"}, {"name": "db1", "address": "127.0.0.12"}]},
        "auth": {"enabled": True},
    }
    issues = issues_of(data, tmp_path)
    keys = {i.key for i in issues}
    assert {"server.port", "server.backend", "server.prot", "balancer.ro_port", "limits.max_key_bytes",
            "cluster.nodes[0].address", "cluster.nodes[1].name", "auth.tokens"} <= keys
    with pytest.raises(ConfigError) as info:
        config.parse(data, source=tmp_path / "x.toml")
    assert str(info.value).startswith(f"{len(issues)} problems in the configuration")


# ------------------------------------------------------------------------------- the declaration


def _every_key_at_its_default() -> dict[str, Any]:
    """A document that sets every declared key of every table to its default, built from the declaration."""
    data: dict[str, Any] = {}
    for path, cls, is_array in config._tables():
        table: dict[str, Any] = {}
        for name, key in config._declared(cls).items():
            if key.table is None and not key.required:
                value = key.default()
                table[name] = str(value) if isinstance(value, Path) else value
        if is_array:
            continue  # the arrays stay empty; their keys are read in the test below
        parent = data
        for part in path.split(".")[:-1]:
            parent = parent[part]
        parent[path.split(".")[-1]] = table
    return data


def test_every_declared_key_is_read_and_its_default_is_the_dataclass_default(tmp_path: Path) -> None:
    source = tmp_path / "g.toml"
    assert config.parse(_every_key_at_its_default(), source=source) == config.parse({}, source=source)
    # relative to the file's directory, like every key typed Path
    assert config.parse({}, source=source).cluster.state_dir == tmp_path / ".galerakv"


def test_every_field_of_the_settings_is_a_declared_key() -> None:
    """Nothing is read from the file that is not declared, nor declared and left unread (Settings.source aside)."""
    import dataclasses

    for path, cls, _ in config._tables():
        names = [f.name for f in dataclasses.fields(cls)]
        assert list(config._declared(cls)) == names, path
    assert list(config._declared(config.Settings)) == [f.name for f in dataclasses.fields(config.Settings)][1:]


def test_numbers_declared_float_take_integers_and_give_floats(tmp_path: Path) -> None:
    s = config.parse({"balancer": {"check_interval": 2}, "server": {"ttl_purge_interval": 5}},
                     source=tmp_path / "g.toml")
    assert s.balancer.check_interval == 2.0 and isinstance(s.balancer.check_interval, float)
    assert isinstance(s.server.ttl_purge_interval, float)


def test_choices_come_from_the_declared_type(tmp_path: Path) -> None:
    issue = next(i for i in issues_of({"server": {"log_level": "loud"}}, tmp_path) if i.key == "server.log_level")
    assert issue.message == "must be one of 'critical', 'error', 'warning', 'info', 'debug'"


def test_positional_construction_still_works() -> None:
    node = config.NodeSettings("db4", "127.0.0.104", 3307)
    assert (node.name, node.address, node.port) == ("db4", "127.0.0.104", 3307)
    assert config.NodeSettings("db5", "127.0.0.105").port == 3306


def test_ssh_transport_allows_real_addresses(tmp_path: Path) -> None:
    s = config.parse({"cluster": {"transport": "ssh", "nodes": [{"name": "db1", "address": "10.0.0.5"},
                                                                {"name": "db2", "address": "db2.example.com"}]}},
                     source=tmp_path / "g.toml")
    assert [n.address for n in s.cluster.nodes] == ["10.0.0.5", "db2.example.com"]


def test_balancer_ports_are_checked_only_with_a_balancer(tmp_path: Path) -> None:
    """Like the balancer's collision checks: with kind = "none" nothing listens on these ports."""
    s = config.parse({"balancer": {"ro_port": 3306}}, source=tmp_path / "g.toml")
    assert s.balancer.kind == "none" and s.balancer.rw_port == s.balancer.ro_port == 3306


def test_same_address_different_ports_is_fine(tmp_path: Path) -> None:
    s = config.parse({"cluster": {"nodes": [{"name": "a", "address": "127.0.0.1", "port": 3306},
                                            {"name": "b", "address": "127.0.0.1", "port": 3316}]}},
                     source=tmp_path / "g.toml")
    assert len(s.cluster.nodes) == 2


def test_tokens_are_hashed_and_scoped(tmp_path: Path) -> None:
    secret = "s" * 24
    s = config.parse({"auth": {"enabled": True, "tokens": [
        {"name": "app", "token": secret, "scopes": {"app": "readwrite", "*": "read"}}]}},
        source=tmp_path / "g.toml")
    token = s.auth.find(secret)
    assert token is not None and token.name == "app"
    assert secret not in repr(s.auth)
    assert token.scope_for("app") == "readwrite"
    assert token.scope_for("other") == "read"
    assert s.auth.find("wrong" * 5) is None


@pytest.mark.parametrize(("content", "words"), [
    (b"[server\nport = 1\n", "invalid TOML"),
    (b"[server]\nport = \n", "invalid TOML"),
    (b"[server]\nport = 1\nport = 2\n", "invalid TOML"),
    (b"[server]\nhost = \"\xff\xfe\"\n", "not UTF-8"),
    (b"\xff\xfe[\x00s\x00]\x00", "not UTF-8"),
])
def test_unparseable_file(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "galerakv.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        config.load_file(path)
    text = str(info.value)
    assert words in text
    assert str(path) in text
    assert "hint:" in text


# ------------------------------------------------------------------------------- CLI


def test_cli_config_check_valid(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", {"cluster": {"nodes": NODES}, "server": {"port": 9999}})
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert "9999" in result.output
    assert "db1@127.0.0.11" in result.output


def test_cli_config_check_json(tmp_path: Path) -> None:
    import json

    path = write(tmp_path / "g.toml", {"cluster": {"nodes": NODES}})
    result = CliRunner().invoke(main, ["config", "check", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["valid"] is True
    assert data["nodes"] == ["db1", "db2", "db3"]


def test_cli_config_check_json_invalid(tmp_path: Path) -> None:
    import json

    path = write(tmp_path / "g.toml", {"server": {"port": 0, "prot": 1}})
    result = CliRunner().invoke(main, ["config", "check", "--json", "--config", str(path)])
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["source"] == str(path.resolve())
    problems = {p["key"]: p for p in data["problems"]}
    assert set(problems) == {"server.port", "server.prot"}
    assert problems["server.port"] == {"file": str(path.resolve()), "key": "server.port", "value": 0,
                                       "message": "must be between 1 and 65535",
                                       "hint": problems["server.port"]["hint"]}
    assert problems["server.port"]["hint"] and "did you mean 'port'" in problems["server.prot"]["hint"]
    assert not result.stderr


@pytest.mark.parametrize("content", [None, b"[server\n"], ids=["missing", "unparseable"])
def test_cli_config_check_json_unreadable(tmp_path: Path, content: bytes | None) -> None:
    import json

    path = tmp_path / "g.toml"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(main, ["config", "check", "--json", "--config", str(path)])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["source"].endswith("g.toml")
    (problem,) = data["problems"]
    assert problem["value"] is None and problem["message"] and problem["hint"]


def test_cli_config_check_even_nodes_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", {"cluster": {"nodes": NODES[:2]}})
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0
    assert "warning" in result.output


def test_cli_config_check_invalid_prints_every_issue(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", {"server": {"port": 0, "backend": "postgres", "prot": 1},
                                       "balancer": {"kind": "haproxy", "rw_port": 1, "ro_port": 1}})
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    out = result.output
    for key in ("server.port", "server.backend", "server.prot", "balancer.ro_port"):
        assert key in out, out
    assert "4 problems" in out
    assert "did you mean 'port'" in out
    assert "Traceback" not in out
    assert not isinstance(result.exception, ConfigError)


@pytest.mark.parametrize("content", [b"[server\n", b"\xff\xfe\x00"])
def test_cli_config_check_unparseable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "g.toml"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_cli_config_check_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", "check", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "not found" in result.output
    assert "Traceback" not in result.output


def test_cli_config_check_env_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    result = CliRunner().invoke(main, ["config", "check"])
    assert result.exit_code == 0
    assert "defaults" in result.output
    bad = write(tmp_path / "bad.toml", {"server": {"port": "x"}})
    result = CliRunner().invoke(main, ["config", "check"], env={config.ENV_VAR: str(bad)})
    assert result.exit_code == 2
    assert "server.port" in result.output


@pytest.mark.parametrize("args", [
    ["serve", "--port", "0"],
    ["serve", "--port", "70000"],
    ["serve", "--port", "http"],
    ["serve", "--workers", "0"],
    ["serve", "--bogus"],
])
def test_cli_serve_bad_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Error" in result.output or "error" in result.output
    assert not (tmp_path / "galerakv-data").exists()  # nothing started


def test_cli_serve_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", {"server": {"port": 0}})
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "server.port" in result.output
    assert "Traceback" not in result.output


def test_cli_serve_unwritable_sqlite_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = write(tmp_path / "g.toml", {"server": {"sqlite_path": str(blocker / "kv.sqlite3"), "port": 1}})
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "kv.sqlite3" in (result.output + str(result.exception))

