"""Backup and restore of the SQLite backend's file, while the server keeps serving.

The copy is SQLite's online backup API in one step: it reads the database
inside one read transaction, so the copy is the database as of one commit
(WAL mode lets the server go on writing meanwhile), then checks the copy
(``PRAGMA quick_check``) and reads its revision and key count for the manifest.

A restore never writes into a file a process has open (the server would go
on with its own view of the pages): it names the process and stops. It
copies the backup next to the target, checks it, and renames it into place,
so the target is either the old file or the whole backup.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from galerakv import backups
from galerakv.backups import Manifest, Progress
from galerakv.errors import BackupError


@dataclass(frozen=True)
class Contents:
    """What a SQLite file holds, as a backup or a restore reports it."""

    revision: int
    keys: int
    namespaces: int

    def describe(self) -> str:
        return f"{self.keys} keys in {self.namespaces} namespaces at revision {self.revision}"


def contents(path: Path) -> Contents:
    """Revision, key count and namespace count of a galerakv SQLite file (read-only)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be opened: {exc}") from exc
    try:
        (revision,) = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone() or (0,)
        keys, namespaces = conn.execute("SELECT COUNT(*), COUNT(DISTINCT ns) FROM kv").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a galerakv SQLite database ({exc})") from exc
    finally:
        conn.close()
    return Contents(int(revision), int(keys), int(namespaces))


def _check(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
    if rows != [("ok",)]:
        raise BackupError(f"{path} fails SQLite's quick_check: " + "; ".join(r[0] for r in rows[:3]))


def _watch_size(path: Path, progress: Progress, stop: threading.Event) -> None:
    """Feed ``progress`` with the growth of ``path`` until ``stop`` (the copy is one call)."""
    seen = 0
    while not stop.wait(0.2):
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            if size > seen:
                progress.add(size - seen)
                seen = size


def backup(source: Path, base: Path, progress: Progress | None = None) -> Manifest:
    """Copy the SQLite file ``source`` into a new backup under ``base``; its manifest."""
    if not source.is_file():
        raise BackupError(f"there is no SQLite database at {source} (server.sqlite_path); "
                          "nothing to back up; check --config")
    manifest = backups.begin(base, "sqlite", source=str(source))
    began = time.monotonic()
    stop = threading.Event()
    watcher = None
    if progress is not None:
        progress.total = source.stat().st_size
        watcher = threading.Thread(target=_watch_size, args=(manifest.data_path, progress, stop), daemon=True)
        watcher.start()
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dest = sqlite3.connect(manifest.data_path)
        try:
            src.backup(dest)  # one step: one read transaction, one consistent state
            dest.execute("PRAGMA journal_mode = DELETE")  # a self-contained file, no -wal beside it
        finally:
            dest.close()
            src.close()
        os.chmod(manifest.data_path, 0o600)
        _check(manifest.data_path)
        held = contents(manifest.data_path)
    except (sqlite3.Error, OSError, BackupError) as exc:
        backups.failed(manifest, began, str(exc))
        raise BackupError(f"the backup of {source} failed: {exc}") from exc
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
            progress.close()  # type: ignore[union-attr]
    size = manifest.data_path.stat().st_size
    return backups.finish(manifest, began, raw_bytes=size, revision=held.revision,
                          keys=held.keys, namespaces=held.namespaces)


def holders(path: Path) -> list[tuple[int, str]]:
    """Processes with ``path`` (or its -wal/-shm) open: (PID, command line), from /proc."""
    names = {str(path.resolve()), f"{path.resolve()}-wal", f"{path.resolve()}-shm"}
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in names:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found.append((int(entry.name), cmd.strip()[:120]))
                    break
    return found


def restore(manifest: Manifest, target: Path, *, force: bool = False,
            progress: Progress | None = None) -> Contents:
    """Put the SQLite backup ``manifest`` at ``target``; refuse to replace data without ``force``."""
    backups.verify(manifest)
    busy = holders(target) if target.exists() else []
    if busy:
        pid, cmd = busy[0]
        raise BackupError(f"{target} is open in PID {pid} ({cmd}); stop that server first "
                          "(a restore under a running server would corrupt what it serves)")
    if target.exists() and not force:
        held = contents(target)
        if held.keys or held.revision:
            raise BackupError(f"{target} holds {held.describe()}, which the restore would replace; "
                              "pass --force to replace it, or point server.sqlite_path at a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    try:
        with open(tmp, "wb") as out:
            os.chmod(tmp, 0o600)
            for chunk in backups.iter_file(manifest.data_path, progress):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        _check(tmp)
        restored = contents(tmp)
        for suffix in ("-wal", "-shm"):  # the old file's log must not be replayed onto the backup
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        if progress is not None:
            progress.close()
    return restored
