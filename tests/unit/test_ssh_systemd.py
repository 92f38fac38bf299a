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
