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


class Canned:
    """A runner that answers every script with one recorded output (the host's shell, recorded)."""

    def __init__(self, code: int, stdout: str, stderr: str = "") -> None:
        self.result = subprocess.CompletedProcess([], code, stdout, stderr)
        self.scripts: list[tuple[str, str | None]] = []

    def run(self, host: str, script: str, stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
        self.scripts.append((script, stdin))
        return self.result

    def interactive_argv(self, host: str, command: list[str]) -> list[str]:
        return command

    def argv(self, host: str, script: str) -> list[str]:
        return ["sh", "-c", script]


def test_a_start_poll_is_one_call_with_the_log_when_the_node_does_not_answer(tmp_path: Path) -> None:
    s = settings(tmp_path, control_persist=0, systemd="no")  # with systemd: tests/unit/test_ssh_systemd.py
    node = s.cluster.node("db1")
    stopped = SshTransport(s, ssh_context(), runner=Canned(0, "galerakv: not running\n"))
    assert stopped.running_status(node) is None
    starting = Canned(0, "2026-12-04 0 [Note] WSREP: Shifting OPEN -> PRIMARY\ngalerakv: end of log\n"
                         "ERROR 2002 (HY000): Can't connect to local server\ngalerakv: client exit 1\n")
    t = SshTransport(s, ssh_context(), runner=starting)
    st = t.running_status(node)
    assert st is not None and not st.reachable and "ERROR 2002" in st.error
    assert "Shifting OPEN -> PRIMARY" in t.log_tail(node, 200)
    assert len(starting.scripts) == 1, "the log tail came with the status"
    assert starting.scripts[0][1] is not None and "wsrep" in starting.scripts[0][1]  # the SQL is on stdin
    synced = Canned(0, "wsrep_local_state\t4\nwsrep_local_state_comment\tSynced\nwsrep_cluster_status\tPrimary\n"
                       "wsrep_ready\tON\nwsrep_cluster_size\t3\ngalerakv: client exit 0\n")
    st = SshTransport(s, ssh_context(), runner=synced).running_status(node)
    assert st is not None and st.reachable and st.synced and st.primary and st.cluster_size == 3


def test_the_configuration_push_is_one_call_with_every_file_on_stdin(tmp_path: Path) -> None:
    import base64

    from galerakv import secrets
    from galerakv.cluster.render.node import render_all

    s = config.parse({"cluster": {"transport": "ssh", "state_dir": str(tmp_path / "state"),
                                  "nodes": [{"name": "db1", "address": "10.0.0.5"}]}, "ssh": {"systemd": "no"}},
                     source=tmp_path / "galerakv.toml")
    runner = Canned(0, "")
    t = SshTransport(s, ssh_context(), runner=runner)
    found = secrets.generate(s)
    t.write_config(s.cluster.node("db1"), render_all(s, t.ctx)["db1"], found)
    assert len(runner.scripts) == 1
    script, stdin = runner.scripts[0]
    assert stdin is not None and found.admin.password not in script  # secrets never on a command line
    paths = {base64.b64decode(line.split()[0]).decode().rsplit("/", 1)[1]: line.split()[1:3]
             for line in stdin.splitlines()}
    assert paths["tls-server.key"] == ["0600", "mysql:mysql"] and paths["admin.cnf"] == ["0600", "root:root"]
    assert {"my.cnf", "cluster.cnf", "tls-ca.crt", "tls-server.crt"} <= paths.keys()


def test_the_hosts_file_report_becomes_the_doctors_file_facts() -> None:
    from galerakv.cluster.doctor.facts import parse_file_report

    report = ("datadir 1\nblocked /srv\nowner /srv/g/db1/data/ibdata1 (owner root:root, mode 0644)\n"
              "leftover /srv/g/db1/data/sst_in_progress\ngra /srv/g/db1/data/GRA_1_2.log\n")
    facts = parse_file_report("/srv/g/db1", "/srv/g/db1/data", "mysql", report)
    assert facts.datadir_exists and facts.blocked_dir == "/srv"
    assert facts.wrong_owner == ("/srv/g/db1/data/ibdata1 (owner root:root, mode 0644)",)
    assert facts.sst_leftovers == ("/srv/g/db1/data/sst_in_progress",)
    assert facts.gra_logs == ("/srv/g/db1/data/GRA_1_2.log",)
    empty = parse_file_report("/srv/g/db1", "/srv/g/db1/data", "mysql", "datadir 0\n")
    assert not empty.datadir_exists and empty.wrong_owner == () and empty.blocked_dir is None


def test_the_hosts_listening_sockets_become_the_port_facts_of_a_stopped_node() -> None:
    """/proc/net/tcp words are little-endian: 127.0.0.63:4444 is 3F00007F:115C. A socket on the
    node's address or on every address takes the port; one on another address does not."""
    from galerakv.cluster.doctor.facts import parse_listening

    ports = ((3306, "client"), (4567, "gcomm"), (4568, "IST"), (4444, "SST"))
    report = ("datadir 1\nlisten 3F00007F:115C\nlisten 0100007F:0CEA\nlisten 00000000:11D7\n"
              "listen 00000000000000000000000000000000:11D8\nlisten 3E00007F:0CEA\n")
    facts = {f.port: f.state for f in parse_listening("127.0.0.63", ports, report)}
    assert facts == {3306: "free", 4567: "in-use", 4568: "in-use", 4444: "in-use"}
    (sst,) = [f for f in parse_listening("127.0.0.63", ports, report) if f.port == 4444]
    assert sst.detail == "127.0.0.63:4444 is already in use by another program"
    assert all(f.state == "free" for f in parse_listening("127.0.0.63", ports, "datadir 1\n"))


def test_the_doctors_node_state_is_one_call_run_by_a_shell(tmp_path: Path) -> None:
    """Running or not, grastate.dat and the log's tail come back from one script (run here by a
    local shell, as on a host without systemd)."""
    from galerakv.cluster.transport.ssh import ShellRunner
    from galerakv.paths import NodePaths

    s = config.parse({"cluster": {"transport": "ssh", "state_dir": str(tmp_path / "state"),
                                  "nodes": [{"name": "db1", "address": "10.0.0.5"}]}, "ssh": {"systemd": "no"}},
                     source=tmp_path / "galerakv.toml")
    node = s.cluster.node("db1")
    calls: list[str] = []

    class Counted(ShellRunner):
        def run(self, host: str, script: str, stdin: str | None,
                timeout: float) -> subprocess.CompletedProcess[str]:
            calls.append(script)
            return super().run(host, script, stdin, timeout)

    t = SshTransport(s, ssh_context(), runner=Counted())
    empty = t.node_state(node, 5)
    assert (empty.running, empty.grastate, empty.log) == (False, None, "")
    p = NodePaths.of(s, node)
    p.datadir.mkdir(parents=True)
    p.grastate.write_text("# GALERA saved state\nversion: 2.1\nuuid: 6f9b3c1e-1111-11ef-8000-0242ac120002\n"
                          "seqno: 42\nsafe_to_bootstrap: 1\n")
    p.log.write_text("".join(f"line {i}\n" for i in range(10)))
    state = t.node_state(node, 3)
    assert state.running is False
    assert state.grastate is not None and state.grastate.seqno == 42 and state.grastate.safe_to_bootstrap
    assert state.log == "line 7\nline 8\nline 9"
    assert len(calls) == 2, "one call per read"


def test_the_package_check_also_learns_whether_the_host_runs_systemd(tmp_path: Path) -> None:
    s = settings(tmp_path, control_persist=0, systemd="auto")
    runner = Canned(0, "mariadb-server install ok installed\ngalerakv: systemd runs here\n")
    t = SshTransport(s, ssh_context(), runner=runner)
    assert "mariadb-server" not in t.missing_packages()
    assert t._systemd(s.cluster.node("db1")) is True
    assert len(runner.scripts) == 1, "systemd was not asked about again"
