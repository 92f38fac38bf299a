"""Files root writes where a less privileged user may have planted something.

The toolkit runs as root and writes into directories the ``mysql`` user owns
(a node's folder, its datadir). Anything there may be a symlink or a hard
link that ``mysql`` put in place, so a plain ``open(path, "w")``, ``chown``
or ``touch`` would become a root write or chown of a file elsewhere. Every
such write goes through this module:

- :func:`write_file` writes a new file beside the target (``O_EXCL`` and
  ``O_NOFOLLOW``, under a random name), sets its mode and owner on the open
  descriptor, and renames it over the target: a rename replaces a symlink
  instead of following it. The target's directory is opened with
  ``O_NOFOLLOW``, so a symlink in its place is refused too.
- :func:`open_append` opens a log for appending with ``O_NOFOLLOW``, refuses
  anything but a regular file with one link, and changes its owner on the
  descriptor (never by path).

The directory above the target's directory must be one the less privileged
user cannot change (``state_dir``, owned by root), which is how galerakv lays
its files out (``paths.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

from galerakv.errors import ClusterError


def _parent_fd(path: Path) -> int:
    try:
        return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if path.parent.is_symlink():
            raise ClusterError(f"{path.parent} is a symlink; galerakv writes only into the directory it made "
                               f"there: remove the link and run the command again") from exc
        raise ClusterError(f"cannot open the directory {path.parent}: {exc.strerror}") from exc


def write_file(path: Path, data: str | bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data``, mode ``mode`` (and ``owner`` (uid, gid) when given), atomically
    and without following a symlink at the path or at its directory."""
    body = data.encode() if isinstance(data, str) else data
    dir_fd = _parent_fd(path)
    tmp = f".{path.name}.{secrets.token_hex(6)}.galerakv"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def open_append(path: Path, mode: int = 0o640, owner: tuple[int, int] | None = None) -> BinaryIO:
    """``path`` opened for appending (created ``mode`` when missing), owned by ``owner`` when given;
    a symlink, a hard link or anything but a regular file in its place is refused."""
    dir_fd = _parent_fd(path)
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dir_fd)
    except OSError as exc:
        raise ClusterError(f"cannot open {path} for appending: {exc.strerror}"
                           + ("; it is a symlink: remove it" if path.is_symlink() else "")) from exc
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise ClusterError(f"{path} is not a plain file of its own (a hard link or a device); "
                           "remove it and run the command again")
    if owner is not None and (st.st_uid, st.st_gid) != owner:
        os.fchown(fd, *owner)
    return os.fdopen(fd, "ab")
