"""`galerakv backup` / `restore` on SQLite: an online copy under writes, restored whole, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.configs import write_config
from tests.support.faults import WriteLoop
from tests.support.net import free_port
from tests.support.server import ServerProcess


def galerakv(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", *args], capture_output=True,
                            text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _config(path: Path, db: Path, backups: Path, port: int = 8080) -> Path:
    data: dict[str, Any] = {"server": {"backend": "sqlite", "sqlite_path": str(db), "port": port},
                            "backup": {"dir": str(backups), "keep": 3}}
    return write_config(path, data)


def _etags(url: str, keys: list[str], ns: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=10) as c:
        return {k: c.get(f"/v1/ns/{ns}/kv/{k}").headers.get("etag", "").strip('"') for k in keys}


def test_an_online_backup_under_writes_restores_every_acknowledged_write(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    port = free_port()
    source = _config(tmp_path / "source.toml", tmp_path / "source" / "kv.sqlite3", backups, port)
    server = ServerProcess(source, port)
    server.start()
    try:
        with WriteLoop(server.url, "bk", limit=60) as loop:
            loop.wait_for_acks(300)
            before = loop.tally().acknowledged
            taken = galerakv("backup", "--config", str(source), "--json")
            loop.wait_for_acks(len(before) + 100)
        tally = loop.tally()
        assert taken.returncode == 0, taken.stderr
        manifest = json.loads(taken.stdout)
        assert manifest["status"] == "complete" and manifest["kind"] == "sqlite"
        assert manifest["keys"] >= len(before) and manifest["revision"] >= len(before)
        assert Path(manifest["path"]).parent == backups
        assert not tally.failed, tally.failed[:3]
        print(f"\n{len(before)} writes acknowledged before the backup, {len(tally.acknowledged)} in all; "
              f"the backup holds {manifest['keys']} keys at revision {manifest['revision']}, "
              f"{manifest['bytes']} bytes, {manifest['seconds']} s")

        # the server's own file is open: no restore into it, even with --force
        for extra in ((), ("--force",)):
            refused = galerakv("restore", "--config", str(source), "--from", str(backups), *extra)
            assert refused.returncode == 1 and "is open in PID" in refused.stderr
        assert httpx.get(f"{server.url}/v1/ns/bk/kv/c0-00000").status_code == 200

        port2 = free_port()
        target = _config(tmp_path / "target.toml", tmp_path / "target" / "kv.sqlite3", backups, port2)
        restored = galerakv("restore", "--config", str(target), "--from", str(backups), "--json")
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout)["keys"] == manifest["keys"]
        assert (tmp_path / "target" / "kv.sqlite3").stat().st_mode & 0o777 == 0o600

        again = galerakv("restore", "--config", str(target), "--from", manifest["path"])
        assert again.returncode == 1
        assert f"holds {manifest['keys']} keys in 1 namespaces at revision {manifest['revision']}" in again.stderr
        assert "pass --force" in again.stderr
        assert galerakv("restore", "--config", str(target), "--from", manifest["path"], "--force").returncode == 0

        copy = ServerProcess(target, port2)
        copy.start()
        try:
            assert _etags(copy.url, sorted(before), "bk") == before
        finally:
            copy.stop()
    finally:
        server.stop()


def _damage(manifest: Path, how: str) -> None:
    data = manifest / "kv.sqlite3"
    if how == "tampered":
        raw = bytearray(data.read_bytes())
        raw[5000] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif how == "truncated":
        data.write_bytes(data.read_bytes()[:4096])
    elif how == "no data file":
        data.unlink()
    elif how == "manifest unreadable":
        (manifest / "manifest.json").write_text("{")
    elif how == "failed backup":
        m = json.loads((manifest / "manifest.json").read_text())
        (manifest / "manifest.json").write_text(json.dumps({**m, "status": "failed", "error": "disk full"}))


@pytest.mark.parametrize(("how", "message"), [
    ("tampered", "does not match its manifest"),
    ("truncated", "was truncated or changed"),
    ("no data file", "is missing; the backup is incomplete"),
    ("manifest unreadable", "cannot be read"),
    ("failed backup", "is not a complete backup (failed: disk full)"),
])
def test_a_damaged_backup_is_refused_and_the_target_is_untouched(tmp_path: Path, how: str, message: str) -> None:
    source = tmp_path / "source" / "kv.sqlite3"
    config = _config(tmp_path / "a.toml", source, tmp_path / "backups")
    source.parent.mkdir()
    _seed(source)
    taken = galerakv("backup", "--config", str(config), "--json")
    assert taken.returncode == 0, taken.stderr
    path = Path(json.loads(taken.stdout)["path"])
    _damage(path, how)
    target_db = tmp_path / "target" / "kv.sqlite3"
    target = _config(tmp_path / "b.toml", target_db, tmp_path / "backups")
    result = galerakv("restore", "--config", str(target), "--from", str(path), "--force")
    assert result.returncode == 1
    assert message in result.stderr
    assert not target_db.exists()


def _seed(path: Path) -> None:
    """A small galerakv SQLite file, written through the store itself."""
    import asyncio

    from galerakv.backend.sqlite import SQLiteStore

    async def main() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            for i in range(200):
                await store.put("seed", f"k{i:03d}", b"v" * 100, "text/plain")
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(("args", "code", "message"), [
    (("backup", "--node", "db1"), 2, "--node applies to the Galera backend only"),
    (("restore", "--from", "nowhere"), 1, "does not exist or is not a directory"),
    (("restore",), 2, "Missing option '--from'"),
    (("backup", "--keep", "-1"), 2, "--keep"),
])
def test_bad_arguments_get_a_clear_error(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    config = _config(tmp_path / "a.toml", tmp_path / "kv.sqlite3", tmp_path / "backups")
    _seed(tmp_path / "kv.sqlite3")
    result = galerakv(*args, "--config", str(config))
    assert result.returncode == code
    assert message in result.stderr


def test_backing_up_a_database_that_does_not_exist_says_so(tmp_path: Path) -> None:
    config = _config(tmp_path / "a.toml", tmp_path / "none" / "kv.sqlite3", tmp_path / "backups")
    result = galerakv("backup", "--config", str(config))
    assert result.returncode == 1
    assert "there is no SQLite database at" in result.stderr
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
