"""Backups on disk: one directory per backup, each described by its manifest.

::

    <backup dir>/                     `--to`, else `[backup] dir` in galerakv.toml
      20261203T081500Z-galera/        one backup: its UTC start time and kind
        manifest.json                 written first ("running"), rewritten last
                                      ("complete" with the checksum, or "failed" with the error)
        data.xbstream.zst             Galera: mariadb-backup's stream, zstd-compressed
        kv.sqlite3                    SQLite: a consistent copy of the database file

A backup counts only once its manifest says ``complete``; a ``running``
manifest whose process is gone is a backup that died (the doctor reports
both that and ``failed`` as ``backup-failed``). The manifest's ``sha256`` is
the checksum of the data file as stored, checked before any restore.

Used by ``galerakv backup``/``restore`` (``cli/backup.py``), the SQLite and
Galera implementations (``backend/snapshot.py``, ``cluster/operations/backup.py``)
and the doctor; imports nothing of galerakv but the error tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from galerakv.errors import BackupError

Kind = Literal["sqlite", "galera"]
State = Literal["running", "complete", "failed"]

FORMAT = 1
MANIFEST = "manifest.json"
DATA_FILES: dict[Kind, str] = {"sqlite": "kv.sqlite3", "galera": "data.xbstream.zst"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    """What one backup holds and how it went."""

    kind: Kind
    status: State
    created: str  # ISO 8601, UTC
    path: Path = field(default=Path(), compare=False)  # the backup's directory (not stored)
    format: int = FORMAT
    finished: str = ""
    seconds: float = 0.0
    file: str = ""  # the data file, relative to the backup's directory
    bytes: int = 0  # the data file's size
    raw_bytes: int = 0  # before compression
    sha256: str = ""
    pid: int = 0  # the process taking it, while running
    error: str = ""
    galerakv_version: str = ""
    source: str = ""  # the SQLite file, or the cluster's name
    # SQLite
    revision: int | None = None
    keys: int | None = None
    namespaces: int | None = None
    # Galera
    cluster: str = ""
    database: str = ""
    node: str = ""
    state_uuid: str = ""
    seqno: int | None = None

    @property
    def data_path(self) -> Path:
        return self.path / self.file

    @property
    def created_at(self) -> float:
        return datetime.fromisoformat(self.created).timestamp()

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def died(self) -> bool:
        """Still marked running, but the process that took it is gone."""
        return self.status == "running" and not _alive(self.pid)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- writing


def begin(base: Path, kind: Kind, **fields: Any) -> Manifest:
    """Create the backup's directory (0700) under ``base`` with a ``running`` manifest."""
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {base}: {exc.strerror}; "
                          "choose another --to, or create it with the right owner") from exc
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        path = base / (f"{stamp}-{kind}" if n == 0 else f"{stamp}-{kind}-{n}")
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BackupError(f"cannot write in {base}: {exc.strerror}") from exc
        break
    else:  # pragma: no cover - a hundred backups in one second
        raise BackupError(f"{base}: too many backups started in the same second")
    from galerakv import __version__

    manifest = Manifest(kind=kind, status="running", created=now_iso(), path=path,
                        file=DATA_FILES[kind], pid=os.getpid(), galerakv_version=__version__,
                        **fields)
    write(manifest)
    return manifest


def write(manifest: Manifest) -> None:
    """Replace the manifest atomically (a crash leaves the old one, never half a file)."""
    data = manifest.to_dict()
    del data["path"]
    tmp = manifest.path / f".{MANIFEST}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, manifest.path / MANIFEST)


def finish(manifest: Manifest, began: float, **fields: Any) -> Manifest:
    """Mark ``manifest`` complete, with the stored file's size and checksum."""
    size, digest = checksum(manifest.data_path)
    done = replace(manifest, status="complete", finished=now_iso(), pid=0, bytes=size,
                   sha256=digest, seconds=round(time.monotonic() - began, 3), **fields)
    write(done)
    return done


def failed(manifest: Manifest, began: float, error: str) -> Manifest:
    """Mark ``manifest`` failed and remove its partial data file."""
    with contextlib.suppress(OSError):
        manifest.data_path.unlink(missing_ok=True)
    done = replace(manifest, status="failed", finished=now_iso(), pid=0, error=error,
                   seconds=round(time.monotonic() - began, 3))
    write(done)
    return done


# --------------------------------------------------------------------------- reading


def read(path: Path) -> Manifest:
    """The manifest of the backup in directory ``path``; BackupError naming what is wrong."""
    file = path / MANIFEST
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{path} is not a galerakv backup: it has no {MANIFEST}") from exc
    except (OSError, ValueError) as exc:
        raise BackupError(f"{file} cannot be read ({exc}); the backup is damaged") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("kind") not in DATA_FILES:
        raise BackupError(f"{file} is not a manifest this galerakv understands "
                          f"(format {data.get('format') if isinstance(data, dict) else '?'}, expected {FORMAT})")
    known = {f for f in Manifest.__dataclass_fields__ if f != "path"}
    try:
        return Manifest(path=path, **{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise BackupError(f"{file} lacks required fields ({exc}); the backup is damaged") from exc


def scan(base: Path) -> list[Manifest]:
    """Every backup under ``base`` (unreadable ones left out), oldest first."""
    found: list[Manifest] = []
    if not base.is_dir():
        return found
    for child in base.iterdir():
        if child.is_dir() and (child / MANIFEST).is_file():
            with contextlib.suppress(BackupError):
                found.append(read(child))
    return sorted(found, key=lambda m: (m.created, m.path.name))


def resolve(path: Path) -> Manifest:
    """``--from``: a backup's directory, or a backup directory (its newest complete backup)."""
    if not path.is_dir():
        raise BackupError(f"{path} does not exist or is not a directory; pass a backup's directory "
                          "(the one holding manifest.json) or the directory `galerakv backup --to` wrote into")
    if (path / MANIFEST).is_file():
        manifest = read(path)
    else:
        complete = [m for m in scan(path) if m.complete]
        if not complete:
            raise BackupError(f"{path} holds no complete backup")
        manifest = complete[-1]
    if not manifest.complete:
        what = "died before it finished" if manifest.died else manifest.status
        raise BackupError(f"{manifest.path} is not a complete backup ({what}"
                          + (f": {manifest.error}" if manifest.error else "") + "); use another one")
    return manifest


def checksum(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def verify(manifest: Manifest) -> None:
    """Raise BackupError unless the data file is there, whole and unchanged."""
    try:
        size, digest = checksum(manifest.data_path)
    except FileNotFoundError as exc:
        raise BackupError(f"{manifest.data_path} is missing; the backup is incomplete") from exc
    if size != manifest.bytes or digest != manifest.sha256:
        raise BackupError(f"{manifest.data_path} does not match its manifest (size {size}, expected "
                          f"{manifest.bytes}; sha256 {digest[:12]}..., expected {manifest.sha256[:12]}...): "
                          "the file was truncated or changed since the backup; use another backup")


def prune(base: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` complete backups (and failed ones older than the
    oldest kept); return what was removed. ``keep`` 0 keeps everything."""
    if keep <= 0:
        return []
    backups = scan(base)
    complete = [m for m in backups if m.complete]
    if len(complete) <= keep:
        return []
    oldest_kept = complete[-keep].created
    removed: list[Path] = []
    for m in backups:
        if m.created < oldest_kept and (m.complete or m.status == "failed" or m.died):
            shutil.rmtree(m.path, ignore_errors=True)
            removed.append(m.path)
    return removed


# --------------------------------------------------------------------------- progress


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


@dataclass
class Progress:
    """Throttled progress lines for a long copy: bytes, rate, time left when the total is known.

    On a terminal the line is redrawn in place; elsewhere a line every ``every`` seconds.
    """

    what: str
    total: int | None = None
    out: Callable[[str], None] | None = None
    every: float = 5.0
    done: int = 0
    began: float = field(default_factory=time.monotonic)
    _shown: float = 0.0

    def __post_init__(self) -> None:
        self._tty = self.out is None and sys.stderr.isatty()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._shown >= (0.5 if self._tty else self.every):
            self._shown = now
            self._emit(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.began, 1e-6)
        rate = self.done / elapsed
        text = f"{self.what}: {human(self.done)}"
        if self.total:
            text += f" of ~{human(self.total)}"
        text += f", {human(rate)}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ~{(self.total - self.done) / rate:.0f} s left"
        return text

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def _emit(self, text: str) -> None:
        if self.out is not None:
            self.out(text)
        elif self._tty:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
        else:
            print(text, file=sys.stderr, flush=True)


def iter_file(path: Path, progress: Progress | None = None) -> Iterator[bytes]:
    """A file's bytes in chunks, counted by ``progress``."""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if progress is not None:
                progress.add(len(chunk))
            yield chunk
