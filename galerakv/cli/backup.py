"""``galerakv backup`` and ``galerakv restore``: physical backups of either backend.

The backend is the one ``[server] backend`` names: a consistent copy of the
SQLite file, or a mariadb-backup stream of a drained Galera node (see
``galerakv/backups.py`` for the layout, docs/backup.md for the guarantees).
"""

from __future__ import annotations

from pathlib import Path

import click

from galerakv import backups
from galerakv.backups import Kind, Manifest, Progress
from galerakv.cli.common import config_option, emit_json, fail, handle_errors, json_option
from galerakv.config import Settings
from galerakv.paths import StatePaths


def _kind(settings: Settings) -> Kind:
    return "sqlite" if settings.server.backend == "sqlite" else "galera"


def _progress(what: str, quiet: bool) -> Progress | None:
    return None if quiet else Progress(what)


def _say(line: str) -> None:
    """Steps go to standard error: standard output is the result (JSON with --json)."""
    click.echo(line, err=True)


@click.command("backup")
@config_option
@click.option("--to", "to", type=click.Path(file_okay=False), default=None,
              help="Directory to write the backup into, one subdirectory per backup (default: [backup] dir).")
@click.option("--node", "node_name", default=None,
              help="Galera: the node to back up (default: the last Synced node, never the writer while "
                   "another node serves).")
@click.option("--keep", type=click.IntRange(0, 100_000), default=None,
              help="Complete backups to keep in the directory; older ones are removed (default: [backup] keep).")
@json_option
@handle_errors
def backup(settings: Settings, to: str | None, node_name: str | None, keep: int | None,
           as_json: bool) -> None:
    """Take a consistent backup while the service keeps serving.

    SQLite: an online copy of the database file. Galera: mariadb-backup on a node
    taken out of rotation for the duration, streamed and compressed with zstd.
    Prints the backup's manifest (revision or Galera position, size, checksum).
    """
    base = Path(to) if to else settings.backup.dir
    report = _say
    manifest: Manifest
    if _kind(settings) == "sqlite":
        if node_name is not None:
            fail("--node applies to the Galera backend only ([server] backend = \"mariadb\")", 2)
        from galerakv.backend import snapshot

        if settings.cluster.nodes and not settings.server.sqlite_path.exists():
            fail(f"[server] backend is \"sqlite\" but there is no SQLite file at {settings.server.sqlite_path}; "
                 "this file lists Galera nodes: set [server] backend = \"mariadb\" to back up the cluster")
        report(f"backing up {settings.server.sqlite_path} into {base}")
        manifest = snapshot.backup(settings.server.sqlite_path, base, _progress("copied", as_json))
        report(f"revision {manifest.revision}: {manifest.keys} keys in {manifest.namespaces} namespaces")
    else:
        from galerakv.cluster.operations import backup as galera
        from galerakv.cluster.transport import make_transport
        from galerakv.secrets import load

        found = load(StatePaths.of(settings).secrets)
        if found is None:
            fail(f"no credentials at {StatePaths.of(settings).secrets}: is this the cluster's galerakv.toml, "
                 "and has `galerakv cluster up` run?")
            return
        manifest = galera.backup(settings, make_transport(settings), found, base, report,
                                 node_name=node_name, progress=_progress("streamed", as_json))
    removed = backups.prune(base, settings.backup.keep if keep is None else keep)
    if as_json:
        emit_json({**manifest.to_dict(), "removed": [str(p) for p in removed]})
        return
    click.echo(f"backup complete: {manifest.path} ({backups.human(manifest.bytes)}, "
               f"{manifest.seconds:.1f} s, sha256 {manifest.sha256[:16]}...)")
    for path in removed:
        click.echo(f"removed old backup {path} (keep = {settings.backup.keep if keep is None else keep})")


@click.command("restore")
@config_option
@click.option("--from", "source", type=click.Path(), required=True,
              help="A backup's directory, or a backup directory (its newest complete backup).")
@click.option("--force", is_flag=True,
              help="Replace what the target holds (a Galera target that runs is stopped first).")
@json_option
@handle_errors
def restore(settings: Settings, source: str, force: bool, as_json: bool) -> None:
    """Restore a backup into this configuration's backend.

    The backup's kind decides. SQLite: into server.sqlite_path, which must not be
    open in a running server. Galera: into the cluster of this galerakv.toml (normally a new one), which is
    then started from the backup's position; the other nodes join by state transfer.
    Refuses to replace data without --force, and says what would be lost.
    """
    manifest = backups.resolve(Path(source))
    kind = manifest.kind
    report = _say
    report(f"restoring {manifest.path} (taken {manifest.created})")
    result: dict[str, object] = {"backup": str(manifest.path), "kind": kind}
    if kind == "sqlite":
        from galerakv.backend import snapshot

        held = snapshot.restore(manifest, settings.server.sqlite_path, force=force,
                                progress=_progress("restored", as_json))
        result.update(target=str(settings.server.sqlite_path), revision=held.revision, keys=held.keys,
                      namespaces=held.namespaces)
        text = f"restored {held.describe()} into {settings.server.sqlite_path}"
    else:
        from galerakv.cluster.operations import backup as galera
        from galerakv.cluster.transport import make_transport

        if not settings.cluster.nodes:
            fail(f"{manifest.path} is a Galera backup and {settings.source or 'the configuration'} lists no "
                 "[[cluster.nodes]] to restore it into; write one with `galerakv cluster init`", 2)
        up = galera.restore(settings, make_transport(settings), manifest, report, force=force,
                            progress=_progress("unpacked", as_json))
        result.update(cluster=settings.cluster.name, position=f"{manifest.state_uuid}:{manifest.seqno}",
                      verdict=up.report.verdict.verdict, seconds=round(up.seconds, 1))
        text = (f"restored {manifest.path.name} into cluster {settings.cluster.name} at position "
                f"{manifest.state_uuid}:{manifest.seqno}: {up.report.verdict.verdict}")
    if as_json:
        emit_json(result)
    else:
        click.echo(text)
