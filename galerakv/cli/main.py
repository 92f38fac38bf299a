"""Entry point of the ``galerakv`` command."""

from __future__ import annotations

import sys

import click

from galerakv import __version__, config
from galerakv.cli.backup import backup, restore
from galerakv.cli.cluster import cluster
from galerakv.cli.clustercheck import clustercheck
from galerakv.cli.common import EXIT_CONFIG, config_option, config_path_option, emit_json, fail, json_option
from galerakv.cli.service import service
from galerakv.cli.transfer import export, import_
from galerakv.cli.watch import watch
from galerakv.config import Settings
from galerakv.errors import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galerakv")
def main() -> None:
    """galerakv: a replicated key-value web service on SQLite or MariaDB Galera Cluster."""


@main.group("config")
def config_group() -> None:
    """Inspect the metadata configuration file."""


@config_group.command("check")
@config_path_option
@json_option
def config_check(config_path: str | None, as_json: bool) -> None:
    """Validate galerakv.toml; print every problem and exit 2 when invalid."""
    # loaded here, not by config_option: an invalid file is an answer in the format asked for
    try:
        settings = config.load(config_path)
    except ConfigError as exc:
        if not as_json:
            fail(str(exc), EXIT_CONFIG)
        source = exc.issues[0].file if exc.issues else config_path
        emit_json({"valid": False, "source": source, "problems": [i.to_dict() for i in exc.issues]})
        sys.exit(EXIT_CONFIG)
    source = str(settings.source) if settings.source else "no file (defaults)"
    if as_json:
        emit_json({"valid": True, "source": source, "backend": settings.server.backend,
                   "nodes": [n.name for n in settings.cluster.nodes]})
        return
    click.echo(f"{source}: valid")
    click.echo(f"  server   {settings.server.host}:{settings.server.port} on {settings.server.backend}")
    if settings.cluster.nodes:
        names = ", ".join(f"{n.name}@{n.address}" for n in settings.cluster.nodes)
        click.echo(f"  cluster  {settings.cluster.name}: {names}")
        if len(settings.cluster.nodes) % 2 == 0:
            click.echo("  warning: an even number of nodes can lose quorum in a 50/50 split; "
                       "add a node or run garbd")


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: server.host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Listen port (default: server.port).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: server.workers).")
def serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP key-value API."""
    from galerakv.cli.serving import serve as run

    try:
        run(settings, host, port, workers)
    except OSError as exc:
        fail(f"cannot listen on {host or settings.server.host}:{port or settings.server.port}: "
             f"{exc.strerror or exc}; choose another --port or stop what uses it")


main.add_command(backup)
main.add_command(restore)
main.add_command(cluster)
main.add_command(clustercheck)
main.add_command(watch)
main.add_command(service)
main.add_command(export)
main.add_command(import_)

if __name__ == "__main__":  # pragma: no cover
    main()
