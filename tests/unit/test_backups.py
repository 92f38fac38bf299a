"""Backups on disk (manifests, checksums, retention), the xbstream reader, and the doctor's rules."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from galerakv import backups
from galerakv.cluster.doctor.checks import check_backups
from galerakv.cluster.doctor.facts import BackupFacts, Facts
from galerakv.cluster.operations.backup import XbstreamScanner, accounts_reset_sql
from galerakv.errors import BackupError
from galerakv.galera.position import Position, grastate_text, parse_grastate
from galerakv.secrets import Account, Secrets

UUID = "4d7f019f-eef1-11f1-9283-823a43dee3e0"


def _chunk(path: str, payload: bytes | None) -> bytes:
    """One xbstream chunk as mariadb-backup writes it (payload None: end of the file)."""
    name = path.encode()
    head = b"XBSTCK01" + b"\0" + (b"E" if payload is None else b"P") + struct.pack("<I", len(name)) + name
    if payload is None:
        return head
    return head + struct.pack("<QQI", len(payload), 0, zlib.crc32(payload)) + payload


def _stream(info: bytes = f"{UUID}:42 0-1-42\n".encode()) -> bytes:
    big = os.urandom(300_000)
    return (_chunk("ibdata1", big[:200_000]) + _chunk("ibdata1", big[200_000:]) + _chunk("ibdata1", None)
            + _chunk("xtrabackup_galera_info", info) + _chunk("xtrabackup_galera_info", None)
            + _chunk("empty", b"") + _chunk("empty", None))


@pytest.mark.parametrize("piece", [1, 7, 14, 4096, 1 << 20])
def test_the_scanner_finds_the_galera_position_whatever_the_read_sizes(piece: int) -> None:
    data = _stream()
    scanner = XbstreamScanner("xtrabackup_galera_info")
    for i in range(0, len(data), piece):
        scanner.feed(data[i:i + piece])
    assert scanner.position == Position(UUID, 42)
    assert scanner.files == 3
    assert scanner.complete


def test_the_scanner_notices_a_stream_cut_short_and_a_foreign_one() -> None:
    data = _stream()
    cut = XbstreamScanner("xtrabackup_galera_info")
    cut.feed(data[:250_000])
    assert not cut.complete and cut.position is None
    with pytest.raises(BackupError, match="not an xbstream"):
        XbstreamScanner("x").feed(b"PK\x03\x04" + b"\0" * 20)


def test_no_position_in_a_stream_without_galera_info() -> None:
    scanner = XbstreamScanner("xtrabackup_galera_info")
    scanner.feed(_stream(b"not a position\n"))
    assert scanner.position is None


def _backup(base: Path, content: bytes = b"data") -> backups.Manifest:
    m = backups.begin(base, "sqlite", source="x")
    m.data_path.write_bytes(content)
    return backups.finish(m, time.monotonic(), revision=3, keys=2, namespaces=1)


def test_a_backup_is_written_running_then_complete_and_reads_back(tmp_path: Path) -> None:
    m = backups.begin(tmp_path / "b", "galera", cluster="c")
    assert backups.read(m.path).status == "running" and not backups.read(m.path).died
    assert (m.path.stat().st_mode & 0o777) == 0o700
    m.data_path.write_bytes(b"x" * 1000)
    done = backups.finish(m, time.monotonic(), state_uuid=UUID, seqno=7)
    again = backups.read(m.path)
    assert again == done and again.complete and again.bytes == 1000 and again.seqno == 7
    assert (again.path / "manifest.json").stat().st_mode & 0o777 == 0o600
    backups.verify(again)


def test_a_tampered_or_truncated_data_file_is_refused(tmp_path: Path) -> None:
    m = _backup(tmp_path, b"0123456789")
    m.data_path.write_bytes(b"0123456780")
    with pytest.raises(BackupError, match="does not match its manifest"):
        backups.verify(m)
    m.data_path.write_bytes(b"01234")
    with pytest.raises(BackupError, match="truncated or changed"):
        backups.verify(m)
    m.data_path.unlink()
    with pytest.raises(BackupError, match="is missing"):
        backups.verify(m)


@pytest.mark.parametrize(("content", "message"), [
    (None, "has no manifest.json"),
    ("{not json", "cannot be read"),
    (json.dumps({"format": 9, "kind": "sqlite"}), "format 9, expected 1"),
    (json.dumps({"format": 1, "kind": "sqlite"}), "lacks required fields"),
])
def test_a_damaged_manifest_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(BackupError, match=message):
        backups.read(tmp_path)


def test_resolve_takes_the_newest_complete_backup_and_refuses_failed_ones(tmp_path: Path) -> None:
    older = _backup(tmp_path)
    newer = _backup(tmp_path)
    bad = backups.failed(backups.begin(tmp_path, "sqlite"), time.monotonic(), "disk full")
    assert backups.resolve(tmp_path).path == newer.path != older.path
    with pytest.raises(BackupError, match="not a complete backup \\(failed: disk full\\)"):
        backups.resolve(bad.path)
    dead = replace(backups.begin(tmp_path, "sqlite"), pid=2**22 + 12345)
    backups.write(dead)
    with pytest.raises(BackupError, match="died before it finished"):
        backups.resolve(dead.path)
    with pytest.raises(BackupError, match="does not exist"):
        backups.resolve(tmp_path / "nope")


def test_prune_keeps_the_newest_complete_backups(tmp_path: Path) -> None:
    made = [_backup(tmp_path) for _ in range(4)]
    failed = backups.failed(backups.begin(tmp_path, "sqlite"), time.monotonic(), "boom")
    assert backups.prune(tmp_path, 0) == []
    removed = backups.prune(tmp_path, 2)
    assert removed == [made[0].path, made[1].path]
    assert [m.path for m in backups.scan(tmp_path)] == [made[2].path, made[3].path, failed.path]


def test_progress_says_bytes_rate_and_time_left() -> None:
    lines: list[str] = []
    p = backups.Progress("copied", total=10 * 2**20, out=lines.append, every=0)
    p.add(2**20)
    assert lines and lines[-1].startswith("copied: 1.0 MiB of ~10.0 MiB, ")
    assert "/s" in lines[-1] and "s left" in lines[-1]


def _facts(b: BackupFacts) -> Facts:
    return Facts("c", "local", "rsync", (), backups=b)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(("facts", "codes"), [
    (BackupFacts("/b", 26, NOW), set()),  # no backup ever: silent
    (BackupFacts("/b", 26, NOW, 1, "/b/1", NOW - 3600, "/b/1", "complete"), set()),
    (BackupFacts("/b", 26, NOW, 1, "/b/1", NOW - 27 * 3600, "/b/1", "complete"), {"backup-old"}),
    (BackupFacts("/b", 26, NOW, 2, "/b/1", NOW - 3600, "/b/2", "failed", "disk full"), {"backup-failed"}),
    (BackupFacts("/b", 26, NOW, 1, "", 0, "/b/1", "died"), {"backup-failed", "backup-old"}),
    (BackupFacts("/b", 26, NOW, 2, "/b/1", NOW - 3600, "/b/2", "running"), set()),
])
def test_the_doctor_judges_the_backups(facts: BackupFacts, codes: set[str]) -> None:
    found = check_backups(_facts(facts))
    assert {f.code for f in found} == codes
    for f in found:
        assert f.fix and f.evidence


def test_a_restored_node_gets_this_clusters_root_password_and_loses_the_sources_accounts() -> None:
    s = Secrets(Account("root", "n'ew"), Account("app", "a"), Account("mon", "m"), Account("sst", "s"))
    sql = accounts_reset_sql(s)
    assert "PASSWORD('n\\'ew')" in sql
    assert "DELETE FROM mysql.global_priv WHERE User IN ('app', 'mon', 'sst', 'galerakv_admin')" in sql
    assert "'a'" not in sql  # passwords of accounts `up` creates are not written here


def test_grastate_of_a_restored_node_is_safe_to_bootstrap_at_its_position() -> None:
    g = parse_grastate(grastate_text(Position(UUID, 42), safe_to_bootstrap=True))
    assert (g.uuid, g.seqno, g.safe_to_bootstrap) == (UUID, 42, True)
