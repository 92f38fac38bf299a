"""Nodes on ssh hosts that run systemd: the unit galerakv renders (checked by `systemd-analyze verify`), and
the scripts the ssh transport sends for it, recorded by a fake host; without systemd, today's scripts."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from galerakv import config, secrets
from galerakv.cluster.render import systemd
from galerakv.cluster.render.node import RenderContext, render_all, render_my_cnf
from galerakv.cluster.transport.ssh import HAS_SYSTEMD, MARIADBD, SshTransport, _journal_line, ssh_context
from galerakv.galera.log import RECOVER_MARKER, START_MARKER, last_status_change
from galerakv.galera.position import Position

UNIT = "galerakv-node-db1.service"
UUID = "3ed39e2b-1111-2222-3333-444455556666"


def settings(tmp_path: Path, mode: str = "auto", state_dir: str = "/srv/galerakv") -> config.Settings:
    return config.parse({"cluster": {"name": "c1", "transport": "ssh", "state_dir": state_dir,
                                     "nodes": [{"name": "db1", "address": "10.0.0.5"}]},
                         "ssh": {"systemd": mode}}, source=tmp_path / "galerakv.toml")


# --------------------------------------------------------------------------- the unit


# the unit is what is checked, not whether MariaDB is installed (verify refuses a missing ExecStart binary)
SERVER = MARIADBD if os.access(MARIADBD, os.X_OK) else "/bin/sh"


def verify(unit: Path) -> str | None:
    """What `systemd-analyze verify` says is wrong with the unit file (None: nothing)."""
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    said = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or unit.name in said:  # a warning about the unit names it (and exits 0)
        return said or f"exit {result.returncode}"
    return None


@pytest.mark.parametrize("state_dir", ["/srv/galerakv", "/srv/galera kv 100%", "/var/tmp/galerakv"])
def test_the_node_unit_passes_systemd_analyze_verify(tmp_path: Path, state_dir: str) -> None:
    s = settings(tmp_path, state_dir=state_dir)
    unit = tmp_path / UNIT
    unit.write_text(systemd.node_unit(s, s.cluster.node("db1"), ssh_context(), SERVER))
    assert verify(unit) is None


def test_a_broken_unit_fails_the_check(tmp_path: Path) -> None:
    s = settings(tmp_path)
    text = systemd.node_unit(s, s.cluster.node("db1"), ssh_context(), SERVER)
    unit = tmp_path / UNIT
    unit.write_text(text.replace("Restart=on-abort", "Restrat=on-abort"))  # a warning, exit 0
    assert "Restrat" in (verify(unit) or "")
    unit.write_text(text.replace(f"ExecStart={SERVER}", "ExecStart=/usr/sbin/no-such-mariadbd"))  # exit 1
    assert "no-such-mariadbd" in (verify(unit) or "")


def test_a_reboot_starts_a_joiner_and_the_log_goes_to_the_journal(tmp_path: Path) -> None:
    s = settings(tmp_path)
    node = s.cluster.node("db1")
    text = systemd.node_unit(s, node, ssh_context(), MARIADBD)
    lines = text.splitlines()
    assert systemd.node_unit_name(node) == UNIT
    assert "--wsrep-new-cluster" not in "\n".join(line for line in lines if not line.startswith("#"))
    assert "EnvironmentFile=-/run/galerakv/db1.start" in lines  # a tmpfs: gone after a reboot
    assert "ExecStart=/usr/sbin/mariadbd --defaults-file=/srv/galerakv/db1/my.cnf $GALERAKV_START_ARGS" in lines
    assert "ExecStartPost=+/bin/rm -f /run/galerakv/db1.start" in lines  # root removes it once started
    assert "ExecStopPost=+/bin/rm -f /run/galerakv/db1.start" in lines  # or stopped (a failed start)
    assert {"Type=notify", "User=mysql", "Group=mysql", "WantedBy=multi-user.target", "Restart=on-abort",
            "StandardError=journal", "SendSIGKILL=no", "ReadWritePaths=/srv/galerakv/db1"} <= set(lines)
    # the start mark the progress lines and the doctor read is the unit's first line of every run
    assert f'ExecStartPre=/bin/echo "{START_MARKER} db1" $GALERAKV_START_ARGS' in lines
    journal = f"{START_MARKER} db1\nWSREP: Server status change connected -> joiner\n"
    assert last_status_change("WSREP: Server status change joined -> synced\n" + journal) == "joiner"
    assert systemd.start_args_text(["--wsrep-new-cluster"]) == 'GALERAKV_START_ARGS="--wsrep-new-cluster"\n'


def test_the_journal_my_cnf_has_no_log_file(tmp_path: Path) -> None:
    s = settings(tmp_path)
    node = s.cluster.node("db1")
    assert "log-error = /srv/galerakv/db1/mysqld.log" in render_my_cnf(s, node, RenderContext()).splitlines()
    journal = render_my_cnf(s, node, RenderContext(journal=True))
    assert "log-error" not in journal and "datadir = /srv/galerakv/db1/data" in journal


# --------------------------------------------------------------------------- the transport


class FakeHost:
    """The node's host as the transport's scripts see it: systemd or not, mariadbd running or not.
    Records every script and its standard input."""

    def __init__(self, systemd: bool, running: bool = False) -> None:
        self.systemd = systemd
        self.running = running
        self.scripts: list[tuple[str, str | None]] = []

    def run(self, host: str, script: str, stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
        self.scripts.append((script, stdin))
        code, out = 0, ""
        if script == HAS_SYSTEMD:
            code = 0 if self.systemd else 1
        elif "runuser -u" in script:  # the preflight
            out = "galerakv: systemd runs here\n" if self.systemd else ""
        elif script.startswith(("case ", "pid=$(cat")):  # is the node running?
            code = 0 if self.running else 1
        elif script.startswith("if (") and "sleep 0.1; done; fi;" in script:  # stop: one call, waits there
            self.running = False
        elif script.startswith("journalctl"):
            out = "from the journal\n"
        elif script.startswith("tail -n"):
            out = "from mysqld.log\n"
        return subprocess.CompletedProcess([], code, out, "")

    def interactive_argv(self, host: str, command: list[str]) -> list[str]:
        return command

    def argv(self, host: str, script: str) -> list[str]:
        return ["sh", "-c", script]

    def sent(self) -> list[str]:
        """The scripts, but the question whether systemd runs there."""
        return [script for script, _ in self.scripts if script != HAS_SYSTEMD]


def test_a_bootstrap_start_puts_its_arguments_in_run_and_starts_the_unit(tmp_path: Path) -> None:
    host = FakeHost(systemd=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    t.start(t.settings.cluster.node("db1"), bootstrap=True, position=Position(UUID, 42))
    (script, stdin), = [(s, i) for s, i in host.scripts if s != HAS_SYSTEMD]
    assert stdin == f'GALERAKV_START_ARGS="--wsrep-new-cluster --wsrep-start-position={UUID}:42"\n'
    assert "mv -f \"$t\" /run/galerakv/db1.start" in script and "chmod 0644" in script
    assert f"systemctl enable --quiet --no-reload {UNIT}; systemctl start --no-block {UNIT}" in script
    assert "--wsrep-new-cluster" not in script and "setsid" not in script  # the flag is on stdin only


def test_a_joiner_start_writes_no_arguments_and_removes_a_leftover(tmp_path: Path) -> None:
    host = FakeHost(systemd=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    t.start(t.settings.cluster.node("db1"), bootstrap=False)
    (script, stdin), = [(s, i) for s, i in host.scripts if s != HAS_SYSTEMD]
    assert stdin is None and "rm -f /run/galerakv/db1.start;" in script and "mktemp" not in script
    assert f"systemctl start --no-block {UNIT}" in script and "--wsrep" not in script


def test_the_configuration_push_installs_the_unit_in_the_same_call(tmp_path: Path) -> None:
    s = settings(tmp_path, state_dir=str(tmp_path / "state"))
    host = FakeHost(systemd=True)
    t = SshTransport(s, ssh_context(), runner=host)
    node = s.cluster.node("db1")
    t.write_config(node, render_all(s, t.ctx)["db1"], secrets.generate(s))
    (script, stdin), = [(s, i) for s, i in host.scripts if s != HAS_SYSTEMD]
    assert script.endswith("; systemctl daemon-reload")
    assert stdin is not None
    files = {base64.b64decode(line.split()[0]).decode(): (line.split()[1:3], base64.b64decode(line.split()[3]).decode())
             for line in stdin.splitlines()}
    unit_file = f"/etc/systemd/system/{UNIT}"
    assert files[unit_file] == (["0644", "root:root"], systemd.node_unit(s, node, t.ctx, MARIADBD))
    my_cnf = files[str(tmp_path / "state" / "db1" / "my.cnf")][1]
    assert "log-error" not in my_cnf and "datadir" in my_cnf  # mariadbd logs to the journal


def test_stop_and_the_log_go_through_systemd(tmp_path: Path) -> None:
    host = FakeHost(systemd=True, running=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    node = t.settings.cluster.node("db1")
    t.stop(node, timeout=5)
    (stop,) = host.sent()  # one call: stop, wait on the host until it is gone, forget
    running = f'case "$(systemctl is-active {UNIT} 2>/dev/null)" in active|activating|'
    assert stop.startswith(f"if ({running}") and "while (" in stop
    assert f"systemctl disable --quiet --no-reload {UNIT}" in stop and f"systemctl stop --no-block {UNIT}" in stop
    assert stop.rstrip().endswith("true")  # forgotten: disabled, so a reboot does not bring it back
    assert t.log_tail(node, 30) == "from the journal"
    assert host.sent()[-1].startswith(f"journalctl -u {UNIT} -n 30 --no-pager")
    assert host.scripts.count((HAS_SYSTEMD, None)) == 1  # asked once per host


def test_a_start_poll_reads_the_journal_in_the_same_call(tmp_path: Path) -> None:
    host = FakeHost(systemd=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    t.running_status(t.settings.cluster.node("db1"))
    (script,) = host.sent()
    assert script.startswith(f'if ! (case "$(systemctl is-active {UNIT}')
    assert f"journalctl -u {UNIT} -n 200 --no-pager -q -o cat" in script and "mysqld.log" not in script


def test_a_recovery_logs_to_the_units_journal(tmp_path: Path) -> None:
    """What `--wsrep-recover` prints goes to the journal as root's lines about the unit, which
    `journalctl -u` shows with the unit's own (there the doctor reads the recovered position)."""
    host = FakeHost(systemd=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    t.wsrep_recover(t.settings.cluster.node("db1"), timeout=30)
    (script,) = host.sent()
    say = _journal_line(UNIT)
    assert script.startswith(say) and f"say '{RECOVER_MARKER} db1'" in script
    assert "mysqld.log" not in script and "--wsrep-recover" in script
    # each line one journal entry: logger --journald reads its fields on stdin
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "logger").write_text(f'#!/bin/sh\necho "args: $*" >> {tmp_path}/sent; cat >> {tmp_path}/sent\n')
    (bin_dir / "logger").chmod(0o755)
    subprocess.run(["sh", "-c", f"{say}; say 'WSREP: Recovered position: {UUID}:42'"], check=True, timeout=30,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert (tmp_path / "sent").read_text() == (f"args: --journald\nMESSAGE=WSREP: Recovered position: {UUID}:42\n"
                                               f"OBJECT_SYSTEMD_UNIT={UNIT}\nSYSLOG_IDENTIFIER=galerakv\n")


def test_the_preflight_answers_whether_systemd_runs_and_yes_refuses_a_host_without(tmp_path: Path) -> None:
    host = FakeHost(systemd=True)
    t = SshTransport(settings(tmp_path), ssh_context(), runner=host)
    node = t.settings.cluster.node("db1")
    assert t.preflight((node,)).errors == ()
    t.start(node, bootstrap=False)
    assert (HAS_SYSTEMD, None) not in host.scripts and "systemctl start" in host.sent()[-1]  # no second question
    none = SshTransport(settings(tmp_path, "yes"), ssh_context(), runner=FakeHost(systemd=False))
    (error,) = none.preflight((node,)).errors
    assert error.startswith("db1: 10.0.0.5 does not run systemd") and "ssh.systemd = \"auto\"" in error
    assert "\n" not in error


@pytest.mark.parametrize("mode", ["no", "auto"])
def test_without_systemd_the_node_is_the_process_galerakv_starts(tmp_path: Path, mode: str) -> None:
    """``no``, or ``auto`` on a host without systemd: the scripts do not change (but for the question)."""
    s = settings(tmp_path, mode, state_dir=str(tmp_path / "state"))
    host = FakeHost(systemd=False, running=True)
    t = SshTransport(s, ssh_context(), runner=host)
    node = s.cluster.node("db1")
    t.write_config(node, render_all(s, t.ctx)["db1"], secrets.generate(s))
    t.stop(node, timeout=5)
    t.start(node, bootstrap=True)
    assert t.log_tail(node) == "from mysqld.log"
    sent = host.sent()
    assert not any("systemctl" in script or "journalctl" in script for script in sent)
    stop = next(script for script in sent if "kill -TERM" in script)
    assert f"kill -TERM $(cat {tmp_path}/state/db1/galerakv.pid) || exit 1" in stop
    assert stop.endswith(f"rm -f {tmp_path}/state/db1/galerakv.pid")
    assert f"setsid {MARIADBD} --defaults-file={tmp_path}/state/db1/my.cnf --wsrep-new-cluster" in sent[-2]
    assert sent[-1].startswith("tail -n 30 ")
    (_, stdin) = host.scripts[1 if mode == "auto" else 0]
    assert stdin is not None and "/etc/systemd" not in str([base64.b64decode(line.split()[0]) for line in
                                                             stdin.splitlines()])
    assert host.scripts.count((HAS_SYSTEMD, None)) == (1 if mode == "auto" else 0)


# --------------------------------------------------------------------------- the balancer's own host

FAKE_SYSTEMCTL = r"""#!/bin/sh
# systemctl as far as the balancer's scripts use it: units are files under $FAKE_SD
echo "$*" >> "$FAKE_SD/calls"
cmd=$1; shift
case "$cmd" in
  is-active) [ "$1" = -q ] && shift; [ -f "$FAKE_SD/active-$1" ]; exit $?;;
  start) [ "$1" = --no-block ] && shift; touch "$FAKE_SD/active-$1"
         [ "$1" = galerakv-haproxy.service ] && python3 -c \
           "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$FAKE_SOCK"; exit 0;;
  show) case "$2" in MainPID) echo 4321;; InvocationID) echo 0123abcd;; ActiveState) echo active;;
        NRestarts) echo 0;; esac;;
  disable) for u; do case "$u" in -*) ;; *) rm -f "$FAKE_SD/active-$u";; esac; done;;
esac
exit 0
"""
FAKE_JOURNALCTL = "#!/bin/sh\necho \"$*\" >> \"$FAKE_SD/journal-calls\"\necho 'clustercheck: listening on 10.0.0.9'\n"


def balancer_settings(tmp_path: Path, mode: str) -> config.Settings:
    galerakv = Path(os.sys.executable).parent / "galerakv"  # type: ignore[attr-defined]
    return config.parse({"cluster": {"name": "c1", "transport": "ssh", "state_dir": str(tmp_path / "state"),
                                     "tls": False,
                                     "nodes": [{"name": f"db{i}", "address": f"10.0.0.{i}"} for i in (1, 2)]},
                         "balancer": {"kind": "haproxy", "address": "10.0.0.9"},
                         "ssh": {"systemd": mode, "galerakv": str(galerakv)}}, source=tmp_path / "galerakv.toml")


def test_the_balancer_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    from galerakv.cluster.balancer.remote import unit_files

    files = unit_files(balancer_settings(tmp_path, "yes"))
    assert sorted(files) == ["galerakv-check-db1.service", "galerakv-check-db2.service", "galerakv-haproxy.service"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert verify(tmp_path / name) is None, name
    assert "ExecStart=/usr/sbin/haproxy -Ws -f " in files["galerakv-haproxy.service"]
    check = files["galerakv-check-db2.service"]
    assert " clustercheck --config " in check and " --node db2 " in check and "ProtectSystem=strict" in check


@pytest.fixture
def fake_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """systemctl and journalctl that record their calls, first on PATH; units go to a folder of the test."""
    from galerakv.cluster.balancer import remote

    bin_dir, state = tmp_path / "bin", tmp_path / "sd"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("journalctl", FAKE_JOURNALCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SD", str(state))
    monkeypatch.setattr(remote, "UNIT_DIR", str(tmp_path / "units"))
    (tmp_path / "units").mkdir()
    return state


def test_the_balancer_runs_as_units_where_systemd_runs(tmp_path: Path, fake_systemd: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh.systemd = "yes": the start (run here by a shell, with a fake systemctl) installs the units,
    enables and starts them, waits for each (the check's journal of this start, HAProxy's socket);
    status reads the units' PIDs; stop disables them."""
    from galerakv.cluster.balancer.remote import BalancerHost, unit_files
    from galerakv.cluster.transport.ssh import ShellRunner
    from galerakv.paths import BalancerPaths

    s = balancer_settings(tmp_path, "yes")
    secrets.ensure(s)
    monkeypatch.setenv("FAKE_SOCK", str(BalancerPaths.of(s).haproxy_socket))
    said: list[str] = []
    host = BalancerHost(s, ShellRunner())
    host.start(said.append)
    calls = (fake_systemd / "calls").read_text().splitlines()
    for unit in ("galerakv-check-db1.service", "galerakv-check-db2.service", "galerakv-haproxy.service"):
        assert f"enable --quiet {unit}" in calls and f"start --no-block {unit}" in calls
        assert (tmp_path / "units" / unit).read_text() == unit_files(s)[unit]
    assert calls.index("daemon-reload") < calls.index("enable --quiet galerakv-check-db1.service")
    # both checks are started before either is waited for; HAProxy after them
    assert calls.index("start --no-block galerakv-check-db2.service") < calls.index(
        "start --no-block galerakv-haproxy.service")
    assert "_SYSTEMD_INVOCATION_ID=0123abcd -o cat -q --no-pager" in (fake_systemd / "journal-calls").read_text()
    assert said[-1] == "haproxy on 10.0.0.9: writes :3306, reads :3307 (PID 4321)"
    assert "clustercheck for db1 on 10.0.0.9 (PID 4321)" in said
    assert not (BalancerPaths.of(s).haproxy_pid).exists()  # no process of its own

    assert set(host.state().pids.values()) == {4321}
    host.start(said.append)  # idempotent: every unit is active, nothing starts again
    assert (fake_systemd / "calls").read_text().count("start --no-block") == 3

    stopped = host.stop()
    assert stopped == ["haproxy", "clustercheck for db1", "clustercheck for db2"]
    assert ("disable --quiet --now galerakv-haproxy.service galerakv-check-db1.service "
            "galerakv-check-db2.service") in (fake_systemd / "calls").read_text()
    assert set(host.state().pids.values()) == {None}


def test_without_systemd_the_balancer_start_never_calls_systemctl(tmp_path: Path, fake_systemd: Path) -> None:
    """ssh.systemd = "no": HAProxy and the checks are processes galerakv starts (the script says so:
    it is not run here, where nothing would answer the checks' ports)."""
    from galerakv.cluster.balancer.remote import BalancerHost

    s = balancer_settings(tmp_path, "no")
    secrets.ensure(s)

    class Recording:
        def __init__(self) -> None:
            self.scripts: list[str] = []

        def run(self, host: str, script: str, stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
            self.scripts.append(script)
            return subprocess.CompletedProcess([], 0, "started 77 haproxy\n", "")

        def interactive_argv(self, host: str, command: list[str]) -> list[str]:
            return command

        def argv(self, host: str, script: str) -> list[str]:
            return ["sh", "-c", script]

    runner = Recording()
    BalancerHost(s, runner).start(lambda line: None)
    start = runner.scripts[-1]
    assert start.startswith("set -u; if false; then ") and "setsid" in start
    assert "systemctl" not in start.split("; else ", 1)[1]


# --------------------------------------------------------------------------- Debian's own services


@pytest.mark.parametrize("systemd_runs", [True, False])
def test_installing_on_a_host_disables_the_services_debian_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   systemd_runs: bool) -> None:
    """The install script (run here by a shell, apt-get, dpkg-query and systemctl stand-ins first on
    PATH): what it installed is reported, and on a host that runs systemd the services Debian
    enabled with mariadb-server and haproxy are disabled, so a reboot does not start them."""
    from galerakv.cluster import install

    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name, body in (("dpkg-query", "exit 1"), ("apt-get", 'echo "apt-get $*" >> "$CALLS"'),
                       ("systemctl", 'echo "systemctl $*" >> "$CALLS"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    runs = tmp_path / "run-systemd-system"
    if systemd_runs:
        runs.mkdir()
    monkeypatch.setattr(install, "POLICY_RC_D", tmp_path / "policy-rc.d")
    monkeypatch.setattr(install, "SYSTEMD_RUNS", runs)
    script = install.install_script(["mariadb-server", "socat", "haproxy"])
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)})
    assert result.returncode == 0, result.stderr
    said = install.script_outcome(result.stdout)
    assert said[0] == "installed: mariadb-server socat haproxy"
    recorded = calls.read_text().splitlines()
    assert "apt-get install -y -q --no-install-recommends mariadb-server socat haproxy" in recorded
    assert not (tmp_path / "policy-rc.d").exists()  # placed for the install only
    if systemd_runs:
        assert "systemctl disable --quiet mariadb.service haproxy.service" in recorded
        assert said[1] == "disabled mariadb.service haproxy.service: galerakv runs its own"
    else:
        assert not any(line.startswith("systemctl") for line in recorded) and len(said) == 1
