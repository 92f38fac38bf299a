"""The balancer's pure parts and its checks, without a database.

The health responder runs for real on a loopback port with a small fake
status source; HAProxy's stats parsing reads a captured ``show stat``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from galerakv import config
from galerakv.cli.main import main
from galerakv.cluster import balancer, starter
from galerakv.cluster.balancer.clustercheck import Checker, judge, serve
from galerakv.cluster.balancer.haproxy import server_problems
from galerakv.cluster.balancer.remote import BalancerHost
from galerakv.cluster.render import node as render_node
from galerakv.cluster.transport.fake import FakeTransport
from galerakv.cluster.transport.ssh import ShellRunner
from galerakv.errors import ClusterError, ConfigError
from galerakv.galera.status import ClusterVerdict
from tests.support.machine import fake_executable, galera_provider

SYNCED = {"wsrep_local_state": "4", "wsrep_local_state_comment": "Synced",
          "wsrep_cluster_status": "Primary", "wsrep_ready": "ON"}
DONOR = {**SYNCED, "wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"}


@pytest.mark.parametrize(("status", "donor_ok", "ok", "reason"), [
    (SYNCED, False, True, "Synced"),
    (DONOR, False, False, "not Synced (Donor/Desynced)"),
    (DONOR, True, True, "Donor/Desynced (counted as up: donor allowed)"),
    ({**SYNCED, "wsrep_local_state": "1", "wsrep_local_state_comment": "Joining"}, True, False,
     "not Synced (Joining)"),
    ({**SYNCED, "wsrep_local_state": "3", "wsrep_local_state_comment": "Joined"}, False, False,
     "not Synced (Joined)"),
    ({**SYNCED, "wsrep_cluster_status": "non-Primary"}, False, False,
     "not in the Primary component (non-Primary)"),
    ({**SYNCED, "wsrep_ready": "OFF"}, False, False, "wsrep_ready is OFF"),
    ({}, False, False, "not in the Primary component (?)"),
    ({**SYNCED, "wsrep_local_state": ""}, False, False, "wsrep_local_state unknown"),
])
def test_judge(status: dict[str, str], donor_ok: bool, ok: bool, reason: str) -> None:
    v = judge(status, donor_ok)
    assert (v.ok, v.reason, v.code) == (ok, reason, 200 if ok else 503)


class FakeNode:
    """A status source whose answer the test changes; ``hang`` makes it never answer."""

    def __init__(self) -> None:
        self.status: Mapping[str, str] = SYNCED
        self.hang = False
        self.fail: Exception | None = None
        self.calls = 0

    async def __call__(self) -> Mapping[str, str]:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise self.fail
        return self.status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def responder(tmp_path: Path) -> AsyncIterator[tuple[FakeNode, str, Path, list[int]]]:
    node = FakeNode()
    maintenance = tmp_path / "maintenance"
    failures: list[int] = []
    checker = Checker(node, donor_ok=False, maintenance=maintenance, timeout=0.3, reuse=0.0,
                      on_failure=lambda: failures.append(1))
    port = _free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(checker, "127.0.0.1", port, ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield node, f"http://127.0.0.1:{port}/", maintenance, failures
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_responder_answers_200_then_503(responder: Any) -> None:
    node, url, maintenance, failures = responder
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(url)
        assert (r.status_code, r.text) == (200, "Synced\n")
        node.status = DONOR
        r = await http.get(url)
        assert (r.status_code, r.text) == (503, "not Synced (Donor/Desynced)\n")
        node.status = SYNCED
        maintenance.write_text("")
        calls = node.calls
        r = await http.get(url)
        assert r.status_code == 503 and r.text.startswith("maintenance")
        assert node.calls == calls  # the switch wins without asking the node
        maintenance.unlink()
        assert (await http.get(url)).status_code == 200
        assert (await http.options(url)).status_code == 200  # HAProxy's default check method
        assert not failures


async def test_responder_hung_or_failing_node_is_503_in_time(responder: Any) -> None:
    node, url, _maintenance, failures = responder
    async with httpx.AsyncClient(timeout=5) as http:
        node.hang = True
        loop = asyncio.get_running_loop()
        began = loop.time()
        r = await http.get(url)
        assert r.status_code == 503 and "no answer within 0.3 s" in r.text
        assert loop.time() - began < 1.5
        node.hang = False
        node.fail = ConnectionRefusedError("Can't connect to MySQL server")
        r = await http.get(url)
        assert r.status_code == 503 and "cannot query the node: Can't connect" in r.text
        assert len(failures) == 2  # the connection is dropped after each failure
        node.fail = None
        assert (await http.get(url)).status_code == 200


async def test_responder_ignores_garbage(responder: Any) -> None:
    _node, url, _m, _f = responder
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"x" * 10000)  # no end of headers within the limit
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(url)).status_code == 200


HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
          "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
          "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,")
SHOW_STAT = HEADER + """
galerakv_rw,FRONTEND,,,0,1,4096,3,,,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,
galerakv_rw,db1,0,0,1,1,,3,,,,0,,0,0,0,0,UP,1,1,0,0,0,40,0,,1,2,1,,3,,2,0,,1,L7OK,200,1,
galerakv_rw,db2,0,0,0,0,,0,,,,0,,0,0,0,0,DOWN,1,0,1,2,1,3,3,,1,2,2,,0,,2,0,,0,L7STS,503,0,
galerakv_rw,BACKEND,0,0,1,1,410,3,,,0,0,,0,0,0,0,UP,1,1,1,,0,40,0,,1,2,0,,3,,1,0,,1,,,,
galerakv_ro,db1,0,0,0,0,,2,,,,0,,0,0,0,0,UP 1/2,1,1,0,0,0,40,0,,1,3,1,,2,,2,0,,1,L4CON,,0,
stats,FRONTEND,,,0,1,4096,3,,,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,
"""


def test_parse_show_stat() -> None:
    servers = balancer.parse_show_stat(SHOW_STAT)
    assert [(s.listener, s.server, s.backup, s.status, s.check, s.check_detail, s.sessions, s.up)
            for s in servers] == [
        ("rw", "db1", False, "UP", "L7OK", "200", 1, True),
        ("rw", "db2", True, "DOWN", "L7STS", "503", 0, False),
        ("ro", "db1", False, "UP 1/2", "L4CON", "", 0, True),
    ]
    assert balancer.parse_show_stat("") == []
    assert balancer.parse_show_stat("Unknown command\n") == []


def test_a_drained_server_down_is_no_problem() -> None:
    servers = balancer.parse_show_stat(SHOW_STAT)
    assert server_problems(servers) == ["haproxy rw: db2 is DOWN"]
    assert server_problems(servers, {"db2"}) == []  # `maintenance --node db2 on` asked for it
    rw_down = [dataclasses.replace(s, status="DOWN") for s in servers if s.listener == "rw"]
    assert server_problems(rw_down, {"db1", "db2"}) == [
        "haproxy rw: no server is up; writes through the balancer fail (db1, db2 in maintenance)"]


def _lb(*problems: str) -> balancer.BalancerStatus:
    return balancer.BalancerStatus("haproxy", "127.0.0.10", 3306, 3307, True, 42, problems=problems)


@pytest.mark.parametrize(("nodes", "lb", "verdict", "reasons"), [
    (ClusterVerdict("healthy"), None, "healthy", ()),
    (ClusterVerdict("healthy"), _lb(), "healthy", ()),
    # the nodes are fine, the balancer's clients are not: the line and the exit status say so
    (ClusterVerdict("healthy"), _lb("db3: its health check (galerakv clustercheck) is not running"),
     "degraded", ("balancer: 1 problem (listed under balancer)",)),
    (ClusterVerdict("down", ("no node answers",)), _lb("haproxy is not running", "haproxy rw: no server is up"),
     "down", ("no node answers", "balancer: 2 problems (listed under balancer)")),
])
def test_status_verdict_counts_the_balancer(nodes: ClusterVerdict, lb: balancer.BalancerStatus | None,
                                            verdict: str, reasons: tuple[str, ...]) -> None:
    assert balancer.with_balancer(nodes, lb) == ClusterVerdict(verdict, reasons)


def _settings(tmp_path: Path, kind: str = "haproxy", **b: Any) -> config.Settings:
    data = {"cluster": {"state_dir": str(tmp_path / "state"),
                        "nodes": [{"name": f"db{i}", "address": f"127.0.0.{200 + i}"} for i in (1, 2, 3)]},
            "balancer": {"kind": kind, "address": "127.0.0.200", **b}}
    return config.parse(data, source=tmp_path / "galerakv.toml")


def test_preflight_finds_ports_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # haproxy itself is found on PATH (a stand-in where it is not installed): only the ports are wrong
    fake_executable(tmp_path / "bin", "haproxy")
    monkeypatch.setenv("PATH", f"{os.environ.get('PATH', '')}{os.pathsep}{tmp_path / 'bin'}")
    s = _settings(tmp_path, rw_port=_free_port())
    with socket.socket() as taken, socket.socket() as check:
        taken.bind(("127.0.0.200", s.balancer.rw_port))
        taken.listen()
        check.bind(("127.0.0.202", s.balancer.check_port))
        check.listen()
        pre = balancer.preflight(s)
    assert f"balancer: 127.0.0.200:{s.balancer.rw_port} is already in use by another program" in pre.errors
    assert any(e.startswith(f"db2: health check port 127.0.0.202:{s.balancer.check_port} is already in use")
               for e in pre.errors)
    assert len(pre.errors) == 2
    assert balancer.preflight(_settings(tmp_path, "none")).errors == ()


def test_preflight_maxscale_without_binary_says_what_to_install(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no maxscale (nor anything else) on PATH
    pre = balancer.preflight(_settings(tmp_path, "maxscale"))
    assert len(pre.errors) == 1
    assert "no maxscale binary on PATH" in pre.errors[0]
    assert "mariadb_repo_setup" in pre.errors[0] and "apt-get install maxscale" in pre.errors[0]


def test_up_with_maxscale_missing_fails_before_anything_starts(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.201", state_dir="state", balancer_kind="maxscale"))
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    # a Galera library (a stand-in where galera-4 is not installed), so the doctor's
    # provider-missing does not stop `up` before the balancer's check
    provider = galera_provider(tmp_path / "galera")
    monkeypatch.setattr(render_node, "find_provider", lambda *_args: provider)
    result = CliRunner().invoke(main, ["cluster", "up", "--no-install", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert "cannot start the cluster" in result.output and "no maxscale binary on PATH" in result.output
    assert not (tmp_path / "state" / "db1" / "galerakv.pid").exists()
    # render still works, and shows no password
    result = CliRunner().invoke(main, ["cluster", "render", "--provider", "/x.so", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "router=readwritesplit" in result.output and "password=<generated by" in result.output


@pytest.mark.parametrize(("balancer_table", "message"), [
    ({"address": "127.0.0.201", "rw_port": 3306}, "collides with cluster.nodes[0] (db1) at 127.0.0.201:3306"),
    ({"address": "127.0.0.202", "ro_port": 4567}, "collides with cluster.nodes[1] (db2) at 127.0.0.202:4567"),
    ({"check_port": 3306}, "balancer.check_port"),
    ({"check_interval": 0}, "must be between 0.1 and 60"),
])
def test_balancer_collisions_are_config_errors(balancer_table: dict[str, Any], message: str) -> None:
    data = {"cluster": {"nodes": [{"name": f"db{i}", "address": f"127.0.0.{200 + i}"} for i in (1, 2, 3)]},
            "balancer": {"kind": "haproxy", **balancer_table}}
    with pytest.raises(ConfigError) as info:
        config.parse(data)
    assert message in str(info.value)


def test_starter_puts_the_balancer_next_to_the_nodes() -> None:
    assert starter.balancer_address(["127.0.0.11", "127.0.0.12"]) == "127.0.0.10"
    assert starter.balancer_address(["127.0.0.1", "127.0.0.2"]) == "127.0.0.3"
    s = config.parse(tomllib.loads(starter.starter_toml(3, "127.0.0.81")))
    assert (s.balancer.kind, s.balancer.address) == ("haproxy", "127.0.0.80")
    with pytest.raises(ClusterError, match="also a node's address"):
        starter.starter_toml(3, "127.0.0.81", balancer="127.0.0.82")


def test_maintenance_switch(tmp_path: Path) -> None:
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.201", state_dir="state"))
    flag = tmp_path / "state" / "db2" / "maintenance"
    result = CliRunner().invoke(main, ["cluster", "maintenance", "--node", "db2", "on", "--config", str(path)])
    assert result.exit_code == 0 and flag.exists()
    result = CliRunner().invoke(main, ["cluster", "maintenance", "--node", "db2", "off", "--config", str(path)])
    assert result.exit_code == 0 and not flag.exists()
    result = CliRunner().invoke(main, ["cluster", "maintenance", "--node", "db9", "on", "--config", str(path)])
    assert result.exit_code == 1 and "no node named 'db9'" in result.output


def test_status_of_a_node_in_maintenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Healthy nodes, one drained on purpose: healthy, exit 0, and the row says so and how to end it.

    The nodes are the in-memory ones on ssh hosts, and the balancer's host a small fake that
    keeps its maintenance files here (tests/cluster/test_balancer.py drains a node behind a real
    HAProxy).
    """
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.201", state_dir="state")
                    .replace('transport = "local"', 'transport = "ssh"'))
    monkeypatch.setattr("galerakv.cli.cluster.make_transport", FakeTransport)
    monkeypatch.setattr(balancer, "BalancerHost", FakeBalancerHost)
    runner = CliRunner()
    assert runner.invoke(main, ["cluster", "maintenance", "--node", "db2", "on", "--config", str(path)]).exit_code == 0
    result = runner.invoke(main, ["cluster", "status", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    (row,) = [line for line in lines if line.startswith("db2 ")]
    assert "Synced (maintenance)" in row
    assert "cluster galerakv_cluster: healthy" in lines
    (note,) = [line for line in lines if line.startswith("db2: in maintenance since ")]
    assert "`galerakv cluster maintenance --node db2 off`" in note
    data = json.loads(runner.invoke(main, ["cluster", "status", "--json", "--config", str(path)]).output)
    assert data["verdict"] == "healthy" and data["hint"] is None
    assert [(m["node"], m["end"]) for m in data["maintenance"]] == [
        ("db2", "galerakv cluster maintenance --node db2 off")]
    runner.invoke(main, ["cluster", "maintenance", "--node", "db2", "off", "--config", str(path)])
    result = runner.invoke(main, ["cluster", "status", "--config", str(path)])
    assert result.exit_code == 0 and "maintenance" not in result.output


def test_status_line_and_exit_agree_when_only_the_balancer_is_wrong(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Healthy (in-memory) nodes, local transport, HAProxy and its checks never started."""
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.201", state_dir="state"))
    monkeypatch.setattr("galerakv.cli.cluster.make_transport", FakeTransport)
    result = CliRunner().invoke(main, ["cluster", "status", "--config", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "cluster galerakv_cluster: degraded" in lines
    assert "  - balancer: 4 problems (listed under balancer)" in lines
    assert "  - haproxy is not running (`galerakv cluster up` starts it)" in lines
    data = json.loads(CliRunner().invoke(main, ["cluster", "status", "--json", "--config", str(path)]).output)
    assert data["verdict"] == "degraded" and data["hint"] and len(data["balancer"]["problems"]) == 4


def test_install_and_preflight_by_kind(tmp_path: Path) -> None:
    assert balancer.required_packages(_settings(tmp_path, "haproxy")) == ["haproxy"]
    assert balancer.required_packages(_settings(tmp_path, "maxscale")) == []
    assert balancer.required_packages(_settings(tmp_path, "none")) == []
    data = {"cluster": {"transport": "ssh", "nodes": [{"name": "db1", "address": "10.0.0.1"}]},
            "balancer": {"kind": "maxscale", "address": "10.0.0.9"}}
    pre = balancer.preflight(config.parse(data, source=tmp_path / "galerakv.toml"))
    assert pre.errors == () and "only beside local nodes" in pre.warnings[0]
    data["balancer"]["kind"] = "haproxy"
    settings = config.parse(data, source=tmp_path / "galerakv.toml")
    assert balancer.on_own_host(settings) and balancer.required_packages(settings) == []


def test_the_balancer_host_needs_galerakv_for_its_checks(tmp_path: Path) -> None:
    """The preflight runs on the balancer's host (here: this machine, through the shell runner)."""
    data = {"cluster": {"transport": "ssh", "nodes": [{"name": "db1", "address": "10.0.0.1"}]},
            "balancer": {"kind": "haproxy", "address": "10.0.0.9"}, "ssh": {"galerakv": "no-such-galerakv"}}
    settings = config.parse(data, source=tmp_path / "galerakv.toml")
    (error,) = BalancerHost(settings, ShellRunner()).preflight()
    assert error.startswith("balancer host 10.0.0.9: `no-such-galerakv` is not there")
    assert "set ssh.galerakv" in error
    data["ssh"]["galerakv"] = "/bin/sh"
    assert BalancerHost(config.parse(data, source=tmp_path / "galerakv.toml"), ShellRunner()).preflight() == []


def test_checks_beside_haproxy_on_its_own_host(tmp_path: Path) -> None:
    """ssh hosts: one check port per node on the balancer's address, asked through `addr`; the
    health checks' own galerakv.toml reads back to the same nodes, endpoints and state_dir."""
    from galerakv.cluster.balancer.remote import clustercheck_program, remote_config
    from galerakv.cluster.render.balancer import check_endpoint, render_haproxy_cfg

    data = {"cluster": {"transport": "ssh", "state_dir": "st", "nodes": [
                {"name": f"db{i}", "address": f"10.0.0.{i}"} for i in (1, 2, 3)]},
            "balancer": {"kind": "haproxy", "address": "10.0.0.9", "check_port": 9300}}
    settings = config.parse(data, source=tmp_path / "galerakv.toml")
    cfg = render_haproxy_cfg(settings)
    assert "server db1 10.0.0.1:3306 check port 9300 addr 10.0.0.9 " in cfg
    assert "server db3 10.0.0.3:3306 check port 9302 addr 10.0.0.9 " in cfg
    copy = config.parse(tomllib.loads(remote_config(settings)), source=Path("/elsewhere/galerakv.toml"))
    assert copy.state_dir == tmp_path / "st"
    assert copy.cluster.nodes == settings.cluster.nodes
    assert [check_endpoint(copy, n) for n in copy.cluster.nodes] == [
        check_endpoint(settings, n) for n in settings.cluster.nodes]
    assert [(e.address, e.port, e.leaf) for e in map(lambda n: check_endpoint(settings, n),
                                                      settings.cluster.nodes)][1] == ("10.0.0.9", 9301, "balancer")
    argv = clustercheck_program(settings, settings.cluster.nodes[1]).argv
    assert argv[:2] == ("galerakv", "clustercheck") and "--credentials" in argv and "haproxy" in argv
    local = config.parse({**data, "cluster": {**data["cluster"], "transport": "local",
                                              "nodes": [{"name": "db1", "address": "127.0.0.31"}]}},
                         source=tmp_path / "galerakv.toml")
    assert check_endpoint(local, local.cluster.nodes[0]).address == "127.0.0.31"
    assert " addr " not in render_haproxy_cfg(local)


class FakeBalancerHost:
    """The balancer's host, in memory: every process runs, every server not drained is UP; the
    maintenance files are kept on this machine, where the fake nodes look for them."""

    def __init__(self, settings: config.Settings, runner: object = None) -> None:
        self.settings = settings

    def state(self) -> Any:
        from galerakv.cluster.balancer.haproxy import ServerState, haproxy_program
        from galerakv.cluster.balancer.remote import RemoteState, programs

        drained = self.maintenance()
        servers = tuple(ServerState(listener, n.name, False, "MAINT" if n.name in drained else "UP", "L7OK",
                                    "200", 0) for listener in ("rw", "ro") for n in self.settings.cluster.nodes)
        assert programs(self.settings)[0].label == haproxy_program(self.settings).label
        return RemoteState({p.label: 4242 for p in programs(self.settings)}, servers, None)

    def maintenance(self) -> dict[str, Any]:
        return balancer.maintenance(dataclasses.replace(
            self.settings, cluster=dataclasses.replace(self.settings.cluster, transport="local")))

    def set_maintenance(self, node: config.NodeSettings, note: str | None) -> None:
        local = dataclasses.replace(self.settings.cluster, transport="local")
        balancer.set_maintenance(dataclasses.replace(self.settings, cluster=local), node, note)


def test_haproxy_chroot_is_made_empty_and_root_owned(tmp_path: Path) -> None:
    from galerakv.cluster.balancer.haproxy import prepare_chroot

    chroot = tmp_path / "haproxy-chroot"
    prepare_chroot(chroot)
    assert chroot.is_dir() and not chroot.is_symlink() and (chroot.stat().st_mode & 0o022) == 0
    prepare_chroot(chroot)  # again: fine


@pytest.mark.parametrize("planted", ["symlink", "file", "not-empty", "group-writable"])
def test_haproxy_chroot_refuses_what_it_did_not_make(tmp_path: Path, planted: str) -> None:
    """A symlink planted where the chroot goes would confine HAProxy to (or let root create) a
    directory someone else chose; anything but an empty root-owned directory is refused."""
    from galerakv.cluster.balancer.haproxy import prepare_chroot
    from galerakv.errors import ClusterError

    chroot = tmp_path / "haproxy-chroot"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == "symlink":
        chroot.symlink_to(elsewhere)
    elif planted == "file":
        chroot.write_text("x")
    else:
        chroot.mkdir()
        if planted == "not-empty":
            (chroot / "etc").mkdir()
        else:
            chroot.chmod(0o775)
    with pytest.raises(ClusterError, match="haproxy-chroot"):
        prepare_chroot(chroot)
    assert list(elsewhere.iterdir()) == []
