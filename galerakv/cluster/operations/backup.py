"""Physical backups of a Galera cluster with mariadb-backup, and restores into a new cluster.

Backup (``galerakv backup``):

1. pick a node that is not the writer (the last Synced node of galerakv.toml:
   every galerakv server writes to the first healthy one), or ``--node``;
2. drain it as a rolling restart does (:func:`rolling.drain`: ``wsrep_desync``
   so the rest of the cluster never waits for it, and the balancer's
   maintenance switch), and wait a probe round for clients to move away;
3. run ``mariadb-backup --backup --galera-info --stream=xbstream`` on its host
   as the mysql user, and pull the stream through this process: it is
   compressed (zstd), checksummed and counted on the way into the backup's
   data file, and the Galera position the backup ends at
   (``xtrabackup_galera_info``) is read from the stream as it passes;
4. bring the node back (desync off, maintenance off) and wait until it is
   Synced again, whatever happened.

Restore (``galerakv restore``) into the cluster of a galerakv.toml, stopped and
empty (``--force`` stops it and empties it, after saying what is lost):
the stream is unpacked into the first node's datadir (``mbstream``),
prepared (``mariadb-backup --prepare``), its accounts are handed to the new
cluster (root's password from this cluster's secrets; galerakv's own
accounts are dropped so ``up`` creates them with this cluster's passwords),
grastate.dat is written at the backup's position, marked safe to bootstrap,
and ``galerakv cluster up`` bootstraps it there; the other nodes join by
state transfer.

Every step on a node is a POSIX shell script run through
:meth:`Transport.script_argv`, so the same code works on loopback nodes and
over ssh; credentials travel on standard input, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from galerakv import backups
from galerakv.backups import Manifest, Progress
from galerakv.cluster.operations import lifecycle, rolling
from galerakv.cluster.render.node import render_all
from galerakv.cluster.transport.base import QueryFailed, Report, Transport
from galerakv.cluster.transport.local import init_sql_text
from galerakv.config import NodeSettings, Settings
from galerakv.errors import BackupError, ClusterError, NodeError
from galerakv.galera.position import Position, grastate_text
from galerakv.paths import NodePaths
from galerakv.secrets import ADMIN_TCP_USER, Secrets, ensure

GALERA_INFO = "xtrabackup_galera_info"
COMPRESSION_LEVEL = 3  # zstd: ~10x faster than gzip at a similar ratio on InnoDB pages
READ_SIZE = 1 << 20
SYNC_TIMEOUT = 300.0


# --------------------------------------------------------------------------- the stream


class XbstreamScanner:
    """Reads an xbstream as it passes and keeps the payload of one small file.

    The format (mariadb-backup's ``xbstream``): chunks of ``XBSTCK01``, flags
    (1 byte), type (1 byte: ``P`` payload, ``E`` end of a file), path length
    (uint32 LE), path; payload chunks then carry length and offset (uint64 LE
    each), a CRC32 (uint32 LE) and the payload.
    """

    MAGIC = b"XBSTCK01"

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.found = bytearray()
        self.files = 0
        self._buf = bytearray()
        self._skip = 0  # payload bytes still to pass over
        self._keep = False  # the payload being passed belongs to the wanted file

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                if self._keep:
                    self.found += view[:n]
                self._skip -= n
                view = view[n:]
                continue
            self._buf += view
            self._parse_headers()
            # a header was read whole: what follows it in the buffer is payload
            view = memoryview(bytes(self._buf))
            self._buf.clear()
            if not self._remaining():
                self._buf += view  # only a partial header: wait for more
                return

    def _remaining(self) -> int:
        return self._skip

    def _parse_headers(self) -> None:
        buf = self._buf
        while not self._skip:
            if len(buf) < 14:
                return
            if bytes(buf[:8]) != self.MAGIC:
                raise BackupError("mariadb-backup's output is not an xbstream (bad chunk header)")
            kind = buf[9:10]
            (path_len,) = struct.unpack_from("<I", buf, 10)
            if kind == b"E":
                if len(buf) < 14 + path_len:
                    return
                self.files += 1
                del buf[:14 + path_len]
                continue
            head = 14 + path_len + 20
            if len(buf) < head:
                return
            path = bytes(buf[14:14 + path_len]).decode("utf-8", "replace")
            (length,) = struct.unpack_from("<Q", buf, 14 + path_len)
            del buf[:head]
            self._keep = path == self.wanted
            self._skip = length
            if not length:
                continue
            return

    @property
    def complete(self) -> bool:
        """The stream so far ends on a chunk boundary, after at least one whole file."""
        return self.files > 0 and not self._skip and not self._buf

    @property
    def position(self) -> Position | None:
        """The Galera position written by ``--galera-info`` (``UUID:SEQNO [GTID...]``)."""
        text = bytes(self.found).decode("ascii", "replace").split()
        if not text:
            return None
        try:
            return Position.parse(text[0])
        except ValueError:
            return None


# --------------------------------------------------------------------------- scripts


def _as_node_user(user: str) -> str:
    """Shell prelude: ``$run`` runs a command as the nodes' user (root drops to it)."""
    u = shlex.quote(user)
    return f'if [ "$(id -u)" = 0 ]; then run="runuser -u {u} --"; else run=""; fi; '


def backup_script(p: NodePaths, user: str) -> str:
    """Stream a backup of the node to standard output; its option file comes on standard input."""
    root, cnf, log = (shlex.quote(str(x)) for x in (p.root, p.root / ".backup.cnf", p.root / "backup.log"))
    u = shlex.quote(user)
    return (f"umask 077; cnf={cnf}; cat > \"$cnf\" || exit 1; "
            + _as_node_user(user)
            + f'[ -n "$run" ] && chown {u}:{u} "$cnf"; '
            f'$run mariadb-backup --defaults-file="$cnf" --backup --galera-info --stream=xbstream '
            f"--target-dir={root} 2>{log}; rc=$?; rm -f \"$cnf\"; exit $rc")


def backup_option_file(p: NodePaths, secrets: Secrets) -> str:
    pw = secrets.admin.password.replace("\\", "\\\\").replace('"', '\\"')
    return (f"!include {p.my_cnf}\n[mariadb-backup]\nuser = {secrets.admin.user}\n"
            f'password = "{pw}"\nsocket = {p.socket}\n')


def extract_script(p: NodePaths, user: str) -> str:
    """Unpack an xbstream from standard input into the node's (empty) datadir."""
    d, u = shlex.quote(str(p.datadir)), shlex.quote(user)
    return (f"set -e; d={d}; mkdir -p \"$d\"; chmod 0750 \"$d\"; "
            "if [ -n \"$(ls -A \"$d\")\" ]; then echo \"$d is not empty\" >&2; exit 3; fi; "
            + _as_node_user(user)
            + f'[ -n "$run" ] && chown {u}:{u} "$d"; '
            "$run mbstream -x -C \"$d\"")


def prepare_script(p: NodePaths, user: str, position: Position) -> str:
    """Prepare the unpacked backup, run the account SQL (standard input) with grants off,
    and write grastate.dat at the backup's position, safe to bootstrap."""
    d, log, cnf = (shlex.quote(str(x)) for x in (p.datadir, p.root / "restore.log", p.my_cnf))
    grastate = shlex.quote(grastate_text(position, safe_to_bootstrap=True))
    return ("set -e; " + _as_node_user(user)
            + f"d={d}; log={log}; "
            "$run mariadb-backup --prepare --use-memory=64M --target-dir=\"$d\" >>\"$log\" 2>&1 "
            "|| { echo 'mariadb-backup --prepare failed; see' \"$log\" >&2; exit 4; }; "
            f"$run mariadbd --defaults-file={cnf} --bootstrap --wsrep-on=OFF >>\"$log\" 2>&1 "
            "|| { echo 'mariadbd --bootstrap (accounts) failed; see' \"$log\" >&2; exit 5; }; "
            # written as the nodes' user, never by root: the datadir is theirs, and a link placed
            # there must not turn into a root write elsewhere (issue 12; files.py does this locally)
            "$run sh -c 'umask 0117; printf %s \"$1\" > \"$2/grastate.dat\"' galerakv "
            f"{grastate} \"$d\"; exit 0")


def wipe_script(p: NodePaths) -> str:
    d = shlex.quote(str(p.datadir))
    return f"d={d}; [ -d \"$d\" ] || exit 0; find \"$d\" -mindepth 1 -delete"


def accounts_reset_sql(secrets: Secrets) -> str:
    """Run with grants off on the restored datadir: root@localhost gets this cluster's
    password; galerakv's own accounts from the source go (``up`` recreates them)."""
    names = (secrets.app.user, secrets.monitor.user, secrets.sst.user, ADMIN_TCP_USER)
    users = ", ".join(f"'{name}'" for name in names)
    return (init_sql_text(secrets)
            + f"DELETE FROM mysql.global_priv WHERE User IN ({users});\n"
            + f"DELETE FROM mysql.db WHERE User IN ({users});\n"
            + f"DELETE FROM mysql.tables_priv WHERE User IN ({users});\n")


def _run(transport: Transport, node: NodeSettings, script: str, what: str, stdin: str = "",
         timeout: float = 600.0) -> str:
    try:
        result = subprocess.run(transport.script_argv(node, script), input=stdin, capture_output=True,
                                text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(node.name, f"{what}: no end within {timeout:.0f} s") from exc
    except OSError as exc:
        raise NodeError(node.name, f"{what}: cannot run: {exc.strerror}") from exc
    if result.returncode != 0:
        err = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise NodeError(node.name, f"{what} failed (exit {result.returncode}): {err}")
    return result.stdout


# --------------------------------------------------------------------------- backup


def choose_node(settings: Settings, transport: Transport, wanted: str | None) -> tuple[NodeSettings, bool]:
    """The node to back up and whether it can be drained (another node keeps serving)."""
    nodes = settings.cluster.nodes
    if not nodes:
        raise ClusterError("the metadata file lists no [[cluster.nodes]]")
    statuses = {n.name: transport.status(n) for n in nodes}
    serving = [n for n in nodes if statuses[n.name].serving().ok]
    if wanted is not None:
        try:
            node = settings.cluster.node(wanted)
        except KeyError as exc:
            raise ClusterError(f"--node {wanted}: {exc.args[0]}") from exc
        if node not in serving:
            raise ClusterError(f"{node.name} cannot be backed up: {statuses[node.name].serving().reason}; "
                               "choose a Synced node (`galerakv cluster status`)")
        return node, len(serving) > 1
    if not serving:
        raise ClusterError("no node is Synced in a Primary component: nothing consistent to back up; "
                           "see `galerakv cluster status` and `galerakv cluster doctor`")
    return serving[-1], len(serving) > 1


def _datadir_bytes(transport: Transport, node: NodeSettings) -> int | None:
    d = shlex.quote(str(NodePaths.of(transport.settings, node).datadir))
    with contextlib.suppress(NodeError, ValueError, IndexError):
        # what mariadb-backup copies: not the gcache ring buffer, not the whole redo log
        script = f"du -sb --exclude=galera.cache --exclude='ib_logfile*' {d} 2>/dev/null | cut -f1"
        return int(_run(transport, node, script, "du", timeout=60).split()[0])
    return None


@dataclass
class _Stream:
    raw: int = 0
    stored: int = 0


def _pump(source: IO[bytes], dest: Path, scanner: XbstreamScanner, progress: Progress | None) -> _Stream:
    counts = _Stream()
    compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, threads=-1)
    with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        writer = compressor.stream_writer(out, closefd=False)
        while chunk := source.read(READ_SIZE):
            scanner.feed(chunk)
            writer.write(chunk)
            counts.raw += len(chunk)
            if progress is not None:
                progress.add(len(chunk))
        writer.flush(zstandard.FLUSH_FRAME)
        out.flush()
        counts.stored = out.tell()
    return counts


def backup(settings: Settings, transport: Transport, secrets: Secrets, base: Path, report: Report, *,
           node_name: str | None = None, progress: Progress | None = None) -> Manifest:
    """Take a backup of the running cluster into a new directory under ``base``."""
    node, drainable = choose_node(settings, transport, node_name)
    p = NodePaths.of(settings, node)
    manifest = backups.begin(base, "galera", source=settings.cluster.name, cluster=settings.cluster.name,
                             database=settings.database.name, node=node.name)
    began = time.monotonic()
    report(f"backing up {node.name} into {manifest.path}")
    drained = False
    try:
        if drainable:
            rolling.drain(settings, transport, node, report, by="galerakv backup")
            drained = True
            time.sleep(rolling.settle_seconds(settings))
        else:
            report(f"warning: {node.name} is the only serving node; it stays in rotation "
                   "(desyncing it would pause nothing, but draining it would stop the service)")
        if progress is not None:
            progress.total = _datadir_bytes(transport, node)
        scanner = XbstreamScanner(GALERA_INFO)
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(transport.script_argv(node, backup_script(p, transport.ctx.run_as)),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(backup_option_file(p, secrets).encode())
                proc.stdin.close()
                counts = _pump(proc.stdout, manifest.data_path, scanner, progress)
            finally:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=60)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace").strip()
        if progress is not None:
            progress.close()
        if proc.returncode != 0:
            raise NodeError(node.name, f"mariadb-backup failed (exit {proc.returncode})"
                            + (f": {stderr}" if stderr else ""), _backup_log(transport, node))
        position = scanner.position
        if position is None or not position.known:
            raise NodeError(node.name, f"the backup stream carries no Galera position ({GALERA_INFO}); "
                            "is the node a Galera node?")
    except BaseException as exc:
        backups.failed(manifest, began, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    finally:
        if drained:
            _bring_back(settings, transport, node, report)
    report(f"{node.name}: backup at Galera position {position} ({backups.human(counts.raw)} read, "
           f"{backups.human(counts.stored)} stored)")
    return backups.finish(manifest, began, raw_bytes=counts.raw, state_uuid=position.uuid,
                          seqno=position.seqno)


def _backup_log(transport: Transport, node: NodeSettings) -> str:
    log = shlex.quote(str(NodePaths.of(transport.settings, node).root / "backup.log"))
    with contextlib.suppress(NodeError):
        return _run(transport, node, f"tail -n 15 {log}", "reading backup.log", timeout=30)
    return ""


def _bring_back(settings: Settings, transport: Transport, node: NodeSettings, report: Report) -> None:
    rolling.undrain(settings, transport, node)
    try:
        lifecycle.wait_synced(transport, node, lambda _: None, SYNC_TIMEOUT)
    except NodeError as exc:
        report(f"warning: {node.name} is not Synced again after the backup: {exc}")
        return
    report(f"{node.name}: back in rotation (Synced)")


# --------------------------------------------------------------------------- restore


def _what_runs(settings: Settings, transport: Transport, running: list[NodeSettings]) -> str:
    """Words for what a restore would replace in a running cluster."""
    statuses = [transport.status(n) for n in running]
    uuids = {s.cluster_state_uuid for s in statuses if s.reachable and s.cluster_state_uuid}
    keys = ""
    with contextlib.suppress(QueryFailed):
        out = transport.query(running[0], f"SELECT COUNT(*) FROM `{settings.database.name}`.kv;", timeout=30)
        keys = f", {out.strip()} keys in {settings.database.name}.kv"
    return (f"{', '.join(n.name for n in running)} run (state UUID {', '.join(sorted(uuids)) or '?'}"
            f"{keys})")


def check_stream(manifest: Manifest, position: Position) -> None:
    """Read the whole backup once before anything is stopped or deleted: it decompresses, it is
    a complete xbstream, and it ends at the position its manifest records."""
    scanner = XbstreamScanner(GALERA_INFO)
    stream = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in backups.iter_file(manifest.data_path):
            scanner.feed(stream.decompress(chunk))
    except zstandard.ZstdError as exc:
        raise BackupError(f"{manifest.data_path} cannot be decompressed ({exc}); the backup is damaged") from exc
    if not stream.eof or not scanner.complete:
        raise BackupError(f"{manifest.data_path} ends in the middle of the backup stream; the backup is "
                          "incomplete; use another one")
    if scanner.position != position:
        raise BackupError(f"{manifest.data_path} ends at Galera position {scanner.position}, but its manifest "
                          f"says {position}; the backup is damaged")


def check_target(settings: Settings, transport: Transport, manifest: Manifest, force: bool,
                 report: Report) -> None:
    """Refuse to restore over a running or non-empty cluster unless ``force`` (then stop it)."""
    if manifest.database != settings.database.name:
        raise BackupError(f"{manifest.path} holds database {manifest.database!r} but this galerakv.toml "
                          f"uses {settings.database.name!r}; set [database] name = {manifest.database!r}")
    nodes = settings.cluster.nodes
    running = [n for n in nodes if transport.is_running(n)]
    if running:
        what = _what_runs(settings, transport, running)
        same = any(transport.status(n).cluster_state_uuid == manifest.state_uuid for n in running)
        origin = ("" if same else f"; the backup comes from another cluster ({manifest.cluster}, state UUID "
                  f"{manifest.state_uuid})")
        if not force:
            raise BackupError(f"the target cluster {settings.cluster.name} is running: {what}{origin}. "
                              "A restore replaces all of its data; stop it (`galerakv cluster down`) and "
                              "pass --force, or restore into a new cluster (another galerakv.toml)")
        report(f"--force: stopping {settings.cluster.name} ({what}); its data will be replaced")
        lifecycle.down(settings, transport, report)
    held = [n for n in nodes if transport.is_initialized(n)]
    if held and not force:
        states = []
        for n in held:
            g = transport.grastate(n)
            states.append(f"{n.name} at {g.position}" if g is not None else n.name)
        raise BackupError(f"{', '.join(states)} already hold data (under {settings.state_dir}), which "
                          "the restore would delete; pass --force to replace it, or restore into a new "
                          "cluster (another galerakv.toml with its own state_dir)")


def restore(settings: Settings, transport: Transport, manifest: Manifest, report: Report, *,
            force: bool = False, progress: Progress | None = None) -> lifecycle.UpResult:
    """Restore ``manifest`` into the cluster of ``settings`` and start it; see the module docstring."""
    backups.verify(manifest)
    if manifest.state_uuid == "" or manifest.seqno is None:
        raise BackupError(f"{manifest.path}/manifest.json records no Galera position; the backup is damaged")
    position = Position(manifest.state_uuid, manifest.seqno)
    check_stream(manifest, position)
    check_target(settings, transport, manifest, force, report)
    nodes = settings.cluster.nodes
    secrets, created = ensure(settings)
    if created:
        report("generated this cluster's credentials")
    rendered = render_all(settings, transport.ctx)
    for node in nodes:
        transport.write_config(node, rendered[node.name], secrets)
        _run(transport, node, wipe_script(NodePaths.of(settings, node)), "emptying the datadir")
    first = nodes[0]
    p = NodePaths.of(settings, first)
    report(f"{first.name}: unpacking {manifest.data_path.name} ({backups.human(manifest.bytes)})")
    _unpack(transport, first, p, manifest, progress)
    report(f"{first.name}: preparing the backup (mariadb-backup --prepare) at position {position}")
    _run(transport, first, prepare_script(p, transport.ctx.run_as, position), "preparing the backup",
         stdin=accounts_reset_sql(secrets), timeout=3600)
    report(f"{first.name}: bootstrapping from the backup's position; the others join by state transfer")
    return lifecycle.up(settings, transport, report, install=False)


def _unpack(transport: Transport, node: NodeSettings, p: NodePaths, manifest: Manifest,
            progress: Progress | None) -> None:
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(transport.script_argv(node, extract_script(p, transport.ctx.run_as)),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        damaged = ""
        try:
            stream = zstandard.ZstdDecompressor().decompressobj()
            for chunk in backups.iter_file(manifest.data_path, progress):
                proc.stdin.write(stream.decompress(chunk))
            if not stream.eof:
                damaged = "it ends before its compressed stream does"
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except zstandard.ZstdError as exc:
            damaged = str(exc)
        finally:
            if damaged:
                proc.kill()
            proc.wait()
            if progress is not None:
                progress.close()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace").strip()
    if damaged:
        raise BackupError(f"{manifest.data_path} cannot be decompressed ({damaged}); the backup is damaged")
    if proc.returncode != 0:
        raise NodeError(node.name, f"unpacking the backup failed (exit {proc.returncode}): {stderr}")
