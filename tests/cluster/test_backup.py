"""A Galera backup taken under load and restored into a new cluster, on real nodes.

The source is the API suite's cluster (``galera_api_cluster``, 127.0.0.51-53,
route = "nodes"); the restore goes into a new cluster on 127.0.0.121-123. The
refusals run against that new cluster once it is up: every one must leave it
serving what it served.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import backups as backups_module
from tests.support.configs import merge, write_config
from tests.support.faults import WriteLoop
from tests.support.local_cluster import LocalCluster, make_local_cluster
from tests.support.net import free_port
from tests.support.server import ServerProcess, wait_ready, writer_of

pytestmark = pytest.mark.cluster

RESTORE_FIRST = "127.0.0.121"
NS = "backup"


def galerakv(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", *args], capture_output=True,
                            text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    print(f"$ galerakv {' '.join(args)}\n{result.stdout}{result.stderr}")
    assert "Traceback" not in result.stderr
    return result


def _server(config: Path) -> ServerProcess:
    data = tomllib.loads(config.read_text())
    port = free_port()
    path = write_config(config.with_name(f"server-{port}.toml"), merge(data, {"server": {"port": port}}))
    server = ServerProcess(path, port)
    server.start()
    wait_ready(server)
    return server


def _etags(url: str, keys: list[str]) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=10) as c:
        return {k: c.get(f"/v1/ns/{NS}/kv/{k}").headers.get("etag", "").strip('"') for k in keys}


@pytest.fixture(scope="module")
def restored_cluster() -> Iterator[LocalCluster]:
    with make_local_cluster(3, RESTORE_FIRST, "galerakv_restored") as cluster:
        yield cluster


def test_a_backup_under_load_restores_into_a_new_cluster(galera_api_cluster: dict[str, Any], tmp_path: Path,
                                                          restored_cluster: LocalCluster) -> None:
    data = dict(galera_api_cluster)
    data.pop("__cluster__")
    backups = tmp_path / "backups"
    source = write_config(tmp_path / "source.toml", merge(data, {
        "server": {"backend": "mariadb", "route": "nodes"}, "backup": {"dir": str(backups)}}))
    server = _server(source)
    try:
        writer = writer_of(server)
        with WriteLoop(server.url, NS, limit=120) as loop:
            loop.wait_for_acks(200)
            before = loop.tally().acknowledged
            taken = galerakv("backup", "--config", str(source), "--json")
            loop.wait_for_acks(len(before) + 100)
        tally = loop.tally()
    finally:
        server.stop()
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads(taken.stdout)
    assert manifest["status"] == "complete" and manifest["kind"] == "galera"
    assert manifest["node"] != writer, "the backup must not drain the writer"
    assert manifest["seqno"] > 0 and manifest["state_uuid"]
    assert "drained (wsrep_desync = ON" in taken.stderr and "back in rotation (Synced)" in taken.stderr
    assert not tally.failed, f"{len(tally.failed)} requests failed during the backup: {tally.failed[:3]}"
    print(f"{len(before)} writes acknowledged before the backup, {len(tally.acknowledged)} in all, none "
          f"failed; backup of {manifest['node']} at seqno {manifest['seqno']}: {manifest['raw_bytes']} bytes "
          f"read, {manifest['bytes']} stored, {manifest['seconds']} s")

    # the doctor reads the backup directory: quiet while the newest backup is complete, then not
    found = json.loads(galerakv("cluster", "doctor", "--config", str(source), "--json").stdout)
    assert not {f["code"] for f in found["findings"]} & {"backup-old", "backup-failed"}
    broken = backups_module.failed(backups_module.begin(backups, "galera"), 0.0, "No space left on device")
    found = json.loads(galerakv("cluster", "doctor", "--config", str(source), "--json").stdout)
    assert [f["summary"] for f in found["findings"] if f["code"] == "backup-failed"] == [
        "the newest backup did not complete: No space left on device"]
    shutil.rmtree(broken.path)

    # the target runs a cluster of its own: refused without --force, naming what would be lost
    target = restored_cluster
    target.ok("up")
    target_config = write_config(target.config, merge(target.data(), {
        "server": {"backend": "mariadb", "route": "nodes"}}))
    other = galerakv("restore", "--config", str(target_config), "--from", str(backups))
    assert other.returncode == 1
    assert "is running" in other.stderr and "the backup comes from another cluster" in other.stderr
    assert target.status()[0] == 0, "a refused restore must leave the target running"

    restored = galerakv("restore", "--config", str(target_config), "--from", str(backups), "--force", "--json")
    assert restored.returncode == 0, restored.stderr
    result = json.loads(restored.stdout)
    assert result["verdict"] == "healthy"
    assert result["position"] == f"{manifest['state_uuid']}:{manifest['seqno']}"
    assert "--force: stopping galerakv_restored" in restored.stderr
    assert "bootstrapping a new Primary component" in restored.stderr
    target.ok("verify")

    copy = _server(target_config)
    try:
        assert _etags(copy.url, sorted(before)) == before, "acknowledged writes lost or changed by the restore"
        count = target.sql("db1", f"SELECT COUNT(*) FROM galerakv.kv WHERE ns = '{NS}'").split()[-1]

        # refusals: each leaves the restored cluster serving what it served
        running = galerakv("restore", "--config", str(target_config), "--from", manifest["path"])
        assert running.returncode == 1
        assert f"{count} keys in galerakv.kv" in running.stderr and "another cluster" not in running.stderr

        foreign = tmp_path / "foreign"
        shutil.copytree(manifest["path"], foreign)
        m = json.loads((foreign / "manifest.json").read_text())
        (foreign / "manifest.json").write_text(json.dumps({**m, "state_uuid": str(uuid.uuid4())}))
        lying = galerakv("restore", "--config", str(target_config), "--from", str(foreign), "--force")
        assert lying.returncode == 1 and "but its manifest says" in lying.stderr

        damaged = tmp_path / "damaged"
        shutil.copytree(manifest["path"], damaged)
        raw = bytearray((damaged / "data.xbstream.zst").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (damaged / "data.xbstream.zst").write_bytes(bytes(raw))
        bad = galerakv("restore", "--config", str(target_config), "--from", str(damaged), "--force")
        assert bad.returncode == 1 and "does not match its manifest" in bad.stderr

        assert target.sql("db1", f"SELECT COUNT(*) FROM galerakv.kv WHERE ns = '{NS}'").split()[-1] == count
        assert _etags(copy.url, sorted(before)[:20]) == {k: before[k] for k in sorted(before)[:20]}
    finally:
        copy.stop()

    # done with it: destroy stops every node and deletes its state directory
    out = target.ok("destroy", "--yes")
    assert f"deleted {target.state_dir}" in out and not target.state_dir.exists()
    assert target.status()[0] != 0
