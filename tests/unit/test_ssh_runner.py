"""The ssh command lines ``[ssh]`` in galerakv.toml makes, and the one-line messages for ssh's own
failures (recorded stderr of OpenSSH 9.2 and sudo 1.9)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from galerakv import config
from galerakv.cluster.transport.ssh import SshRunner, SshTransport, ssh_context
from galerakv.errors import ConfigError


def settings(tmp_path: Path, **ssh: object) -> config.Settings:
    return config.parse({"cluster": {"transport": "ssh", "nodes": [{"name": "db1", "address": "10.0.0.5"}]},
                         "ssh": ssh}, source=tmp_path / "galerakv.toml")


def test_the_command_line_carries_every_setting(tmp_path: Path) -> None:
    runner = SshRunner.of(settings(tmp_path, user="deploy", sudo=True, port=2222, identity_file="keys/id",
                                   known_hosts_file="/etc/galerakv/known_hosts", jump_host="ops@bastion:22",
                                   connect_timeout=7))
    argv = runner.argv("10.0.0.5", "echo hi")
    assert argv[:1] == ["ssh"] and argv[-2] == "deploy@10.0.0.5"
    assert argv[-1] == "sudo -n sh -c 'echo hi'"
    joined = " ".join(argv)
    for part in ("-p 2222", f"-i {tmp_path}/keys/id", "IdentitiesOnly=yes", "BatchMode=yes", "ConnectTimeout=7",
                 "UserKnownHostsFile=/etc/galerakv/known_hosts", "StrictHostKeyChecking=yes", "-J ops@bastion:22",
                 "ControlMaster=auto", "ControlPersist=60"):
        assert part in joined, part
    assert "StrictHostKeyChecking=no" not in joined and "accept-new" not in joined
    interactive = runner.interactive_argv("10.0.0.5", ["mariadb", "--defaults-file=/x/admin.cnf"])
    assert interactive[1] == "-t" and interactive[-1] == "sudo -n mariadb --defaults-file=/x/admin.cnf"
    plain = SshRunner.of(settings(tmp_path, control_persist=0))
    assert plain.argv("h", "true")[-1] == "sh -c true" and "ControlMaster=auto" not in plain.argv("h", "true")
    assert "UserKnownHostsFile" not in " ".join(plain.argv("h", "true"))  # ~/.ssh/config and known_hosts rule


def test_sql_statements_reach_the_client_as_one_argument(tmp_path: Path) -> None:
    transport = SshTransport(settings(tmp_path, control_persist=0), ssh_context())
    argv = transport.client_argv(transport.settings.cluster.node("db1"), batch=True, extra=("-e", "SHOW DATABASES"))
    remote = argv[-1]  # what the host's shell reads: sh -c '<the client command>'
    assert remote.startswith("sh -c ") and "-e '\"'\"'SHOW DATABASES'\"'\"'" in remote, remote


@pytest.mark.parametrize(("code", "stderr", "says"), [
    (255, "ssh: connect to host 10.0.0.5 port 22: Connection refused", "cannot be reached over ssh"),
    (255, "ssh: connect to host 10.0.0.5 port 22: Connection timed out", "cannot be reached over ssh"),
    (255, "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n...\n"
          "Host key verification failed.", "is not the one in"),
    (255, "No ED25519 host key is known for 10.0.0.5 and you have requested strict checking.\n"
          "Host key verification failed.", "is not in"),
    (255, "root@10.0.0.5: Permission denied (publickey).", "the login was refused"),
    (1, "sudo: a password is required", "password-less sudo"),
    (1, "sudo: sh: command not found", "password-less sudo"),
])
def test_ssh_failures_are_one_line_with_the_fix(tmp_path: Path, code: int, stderr: str, says: str) -> None:
    runner = SshRunner.of(settings(tmp_path))
    message = runner.failure("10.0.0.5", subprocess.CompletedProcess([], code, "", stderr))
    assert message is not None and "\n" not in message and says in message and "root@10.0.0.5" in message


def test_a_command_that_ran_is_not_an_ssh_failure(tmp_path: Path) -> None:
    runner = SshRunner.of(settings(tmp_path))
    assert runner.failure("h", subprocess.CompletedProcess([], 1, "", "cat: x: No such file")) is None
    assert runner.failure("h", subprocess.CompletedProcess([], 0, "ok", "")) is None


def test_a_user_other_than_root_needs_sudo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ssh\.user = 'deploy': is not root, and ssh\.sudo is false"):
        settings(tmp_path, user="deploy")
    with pytest.raises(ConfigError, match=r"ssh\.jump_host"):
        settings(tmp_path, jump_host="bad host!")
