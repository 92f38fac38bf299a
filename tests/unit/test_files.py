"""Root's writes into folders a less privileged user owns never follow what that user planted.

Each test plants a symlink (or a hard link) where galerakv writes, pointing at
a file "outside" that stands for /etc/shadow, and shows the outside file keeps
its content, mode and owner. Run as root, the planted links are made by the
``mysql`` user in a folder it owns, as on a real node.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from galerakv import config, secrets
from galerakv.cluster import starter
from galerakv.cluster.render.node import RenderContext, detect_context, render_all
from galerakv.cluster.transport.local import LocalTransport
from galerakv.errors import ClusterError, NodeError
from galerakv.files import open_append, write_file
from tests.unit.test_doctor_offline import galera_provider

ROOT = os.geteuid() == 0


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A root-owned file the planted links point at; checked unchanged after each test."""
    victim = tmp_path / "outside" / "shadow"
    victim.parent.mkdir()
    victim.write_text("root:secret\n")
    victim.chmod(0o640)
    before = victim.stat()
    yield victim
    after = victim.stat()
    assert victim.read_text() == "root:secret\n"
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)


def test_write_file_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path, outside: Path) -> None:
    target = tmp_path / "my.cnf"
    target.symlink_to(outside)
    write_file(target, "[mysqld]\n", 0o644)
    assert not target.is_symlink() and target.read_text() == "[mysqld]\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if "galerakv" in p.name] == []  # no temporary left


def test_write_file_refuses_a_directory_that_is_a_symlink(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "data").symlink_to(outside.parent)
    with pytest.raises(ClusterError, match="symlink"):
        write_file(tmp_path / "data" / "shadow", "x", 0o600)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["shadow"]


@pytest.mark.skipif(not ROOT, reason="sets another user as owner: root only (the suite runs as root)")
def test_write_file_sets_the_owner_on_the_new_file_only(tmp_path: Path, outside: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "grastate.dat"
    target.symlink_to(outside)
    write_file(target, "seqno: 5\n", 0o660, (nobody.pw_uid, nobody.pw_gid))
    assert target.lstat().st_uid == nobody.pw_uid and target.read_text() == "seqno: 5\n"


@pytest.mark.parametrize("planted", ["symlink", "hardlink"])
def test_open_append_refuses_a_planted_link(tmp_path: Path, outside: Path, planted: str) -> None:
    log = tmp_path / "mysqld.log"
    if planted == "symlink":
        log.symlink_to(outside)
    else:
        os.link(outside, log)
    with pytest.raises(ClusterError, match=r"mysqld\.log"):
        open_append(log, 0o640, (0, 0))


def test_open_append_creates_and_appends(tmp_path: Path) -> None:
    log = tmp_path / "mysqld.log"
    with open_append(log, 0o640) as f:
        f.write(b"one\n")
    with open_append(log, 0o640) as f:
        f.write(b"two\n")
    assert log.read_text() == "one\ntwo\n" and stat.S_IMODE(log.stat().st_mode) == 0o640


# --------------------------------------------------------------------------- the local transport


@pytest.fixture
def node_files(tmp_path: Path) -> tuple[LocalTransport, config.Settings]:
    ctx: RenderContext = dataclasses.replace(detect_context(require_provider=False),
                                             provider=galera_provider(tmp_path / "galera"))
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(1, "127.0.0.97", cluster_name="planted", state_dir="state",
                                         balancer_kind="none"))
    settings = config.load(path)
    transport = LocalTransport(settings, ctx)
    node = settings.cluster.nodes[0]
    transport.write_config(node, render_all(settings, ctx)[node.name], secrets.generate(settings))
    return transport, settings


def _as_mysql(transport: LocalTransport, link: Path, to: Path) -> None:
    """Plant ``link`` -> ``to`` as the user mariadbd runs as (who owns the node's folder)."""
    link.unlink(missing_ok=True)
    link.symlink_to(to)
    if ROOT:
        os.chown(link, transport.uid, transport.gid, follow_symlinks=False)


def test_the_local_transport_never_writes_through_planted_symlinks(
        node_files: tuple[LocalTransport, config.Settings], outside: Path) -> None:
    transport, settings = node_files
    node = settings.cluster.nodes[0]
    p = transport.paths(node)
    # the node's configuration files, rewritten by render/up
    for name in ("my.cnf", "cluster.cnf"):
        _as_mysql(transport, p.root / name, outside)
    transport.write_config(node, render_all(settings, transport.ctx)[node.name], secrets.generate(settings))
    assert not (p.root / "my.cnf").is_symlink() and "[mysqld]" in (p.root / "my.cnf").read_text()
    # the node's log, appended to (and chowned) before each start and recovery
    _as_mysql(transport, p.log, outside)
    with pytest.raises(ClusterError, match="symlink"):
        transport._log(node)
    # grastate.dat, rewritten by recovery (safe_to_bootstrap)
    p.datadir.mkdir(exist_ok=True)
    _as_mysql(transport, p.grastate, outside)
    with pytest.raises(NodeError, match="not a plain file"):
        transport._write_grastate_text(node, "# GALERA saved state\n")
    # and a datadir replaced by a symlink to another folder holding a grastate.dat
    elsewhere = outside.parent.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "grastate.dat").write_text("original\n")
    p.grastate.unlink()
    p.datadir.rmdir()
    _as_mysql(transport, p.datadir, elsewhere)
    with pytest.raises(ClusterError, match="symlink"):
        transport._write_grastate_text(node, "# GALERA saved state\n")
    assert (elsewhere / "grastate.dat").read_text() == "original\n"
    assert sorted(q.name for q in elsewhere.iterdir()) == ["grastate.dat"]


# --------------------------------------------------------------------------- the ssh transport's scripts


def test_the_ssh_transport_scripts_never_write_through_planted_symlinks(tmp_path: Path, outside: Path) -> None:
    """The scripts SshTransport sends, run with `sh -c` here (ShellRunner), on planted links."""
    from galerakv.cluster.transport.ssh import ShellRunner, SshTransport, _plain_log

    settings = config.parse({"cluster": {
        "name": "planted", "transport": "ssh", "state_dir": str(tmp_path / "state"),
        "nodes": [{"name": "db1", "address": "127.0.0.98"}]}}, source=tmp_path / "galerakv.toml")
    transport = SshTransport(settings, RenderContext(run_as="mysql"), runner=ShellRunner())
    node = settings.cluster.nodes[0]
    p = transport.paths(node)
    p.datadir.mkdir(parents=True)
    (p.root / "my.cnf").symlink_to(outside)
    transport._put(node, str(p.root / "my.cnf"), "[mysqld]\n", "0644", f"{os.geteuid()}:{os.getegid()}")
    assert not (p.root / "my.cnf").is_symlink() and (p.root / "my.cnf").read_text() == "[mysqld]\n"
    assert [q.name for q in settings.cluster.state_dir.iterdir() if q.name.startswith(".galerakv")] == []

    p.grastate.symlink_to(outside)
    with pytest.raises(NodeError, match="not a plain file"):
        transport._write_grastate_text(node, "# GALERA saved state\n")
    p.grastate.unlink()
    p.grastate.write_text("seqno: 1\n")
    p.grastate.chmod(0o660)
    transport._write_grastate_text(node, "seqno: 7\n")
    assert p.grastate.read_text() == "seqno: 7\n" and stat.S_IMODE(p.grastate.stat().st_mode) == 0o660

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (p.root / "cnf.d").symlink_to(elsewhere)
    with pytest.raises(NodeError):
        transport._put(node, str(p.root / "cnf.d" / "x.cnf"), "x", "0644", "0:0")
    assert list(elsewhere.iterdir()) == []

    log = p.log
    for planted in ("symlink", "hardlink", None):
        log.unlink(missing_ok=True)
        if planted == "symlink":
            log.symlink_to(outside)
        elif planted == "hardlink":
            os.link(outside, log)
        rc = subprocess.run(["sh", "-c", _plain_log(shlex.quote(str(log)))], capture_output=True).returncode
        assert (rc == 0) == (planted is None), planted
