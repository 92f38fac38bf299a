"""``galerakv export`` and ``galerakv import``: namespaces as NDJSON, from one store to another.

Both open the store of ``--config`` directly (no server needed), so
``galerakv export --config a.toml | galerakv import --config b.toml`` copies SQLite to Galera
or back. The format and the rules are in :mod:`galerakv.backend.dump`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import click

from galerakv.backend import Store, create_store, dump
from galerakv.cli.common import config_option, emit_json, fail, json_option
from galerakv.config import NAMESPACE_RE, Settings
from galerakv.errors import GalerakvError

T = TypeVar("T")

EXIT_INPUT = 2  # the input is not a valid export


def _on_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store, run ``work`` on it, close it.

    The summary line is the report: a normal run logs nothing (the store's start is quiet:
    no driver notes, the first choice of a writer only at info); a warning, such as the writer
    moving to another node mid-way, is news and shown; a failure surfaces as the command's error.
    """
    logging.basicConfig(level=logging.WARNING, format="galerakv %(name)s: %(message)s")

    async def run() -> T:
        store = create_store(settings)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _report(verb: str, preposition: str, summary: dump.Summary) -> str:
    """Such as ``exported 10000 keys of 3 namespaces in 0.41 s (24,390 keys/s)``."""
    keys = f"{summary.keys} key{'s' if summary.keys != 1 else ''}"
    namespaces = f"{summary.namespaces} namespace{'s' if summary.namespaces != 1 else ''}"
    return (f"{verb} {keys} {preposition} {namespaces} in {summary.seconds:.2f} s "
            f"({summary.keys_per_second:,.0f} keys/s)")


def _namespaces(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    for ns in value:
        if not NAMESPACE_RE.match(ns):
            raise click.BadParameter(f"{ns[:64]!r} is not a valid namespace: use 1-128 letters, digits, '.', "
                                     "'_' or '-', starting with a letter or digit")
    return value


@click.command("export")
@config_option
@click.option("--ns", "namespaces", multiple=True, metavar="NS", callback=_namespaces,
              help="Export this namespace (repeat for several). Default: every namespace that has keys.")
@click.option("--prefix", default="", help="Only the keys that start with this.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (replaced only once the export is complete) instead of stdout.")
def export(settings: Settings, namespaces: tuple[str, ...], prefix: str, out_path: str | None) -> None:
    """Write the live keys of the store of --config as NDJSON: a header line, then one line a key
    ({"ns", "key", "value_base64", "content_type", "ttl"}), namespaces in order and keys in byte
    order. Expired keys are left out; ttl is the seconds left, or null. A summary goes to stderr.
    """
    selected = list(namespaces) or None
    try:
        if out_path is None:
            summary = _on_store(settings, lambda store: dump.export(store, sys.stdout.buffer.write,
                                                                    namespaces=selected, prefix=prefix))
            sys.stdout.flush()
        else:
            summary = _export_to_file(settings, Path(out_path), selected, prefix)
    except BrokenPipeError:  # the reader went away (`galerakv export | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except GalerakvError as exc:
        fail(f"export failed: {exc}")
    except OSError as exc:
        fail(f"cannot write {out_path or 'stdout'}: {exc.strerror or exc}")
    click.echo(_report("exported", "of", summary), err=True)


def _export_to_file(settings: Settings, path: Path, namespaces: list[str] | None, prefix: str) -> dump.Summary:
    """Export to a temporary file next to ``path``, renamed over it once complete."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            summary = _on_store(settings, lambda store: dump.export(store, out.write, namespaces=namespaces,
                                                                    prefix=prefix))
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return summary


@click.command("import")
@config_option
@click.option("--in", "in_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read this file instead of stdin.")
@json_option
def import_(settings: Settings, in_path: str | None, as_json: bool) -> None:
    """Write the keys of an export (`galerakv export`) read from stdin into the store of --config.

    Every line is checked with the server's rules first; a bad line is reported with its number
    and exit status 2. A file (--in, or stdin redirected from a file) is checked whole before
    anything is written, so a bad line leaves the store as it was; a pipe is written as it is
    read, and a bad line stops it: the message says how many keys of the lines before it were
    imported. Keys are written as plain puts (500 a batch), so importing the same input again
    leaves the same keys, values and content types; a TTL is restored as the seconds that were
    left at export. A summary goes to stderr, or with --json to stdout.
    """
    try:
        if in_path is None:
            summary = _import(settings, sys.stdin.buffer)
        else:
            with open(in_path, "rb") as stream:
                summary = _import(settings, stream)
    except dump.BadLine as exc:
        fail(str(exc), EXIT_INPUT)
    except GalerakvError as exc:
        fail(f"import failed: {exc}")
    except OSError as exc:
        fail(f"cannot read {in_path or 'stdin'}: {exc.strerror or exc}")
    if as_json:
        emit_json(summary.as_dict())
    else:
        click.echo(f"{_report('imported', 'into', summary)}; {summary.created} created, "
                   f"{summary.replaced} replaced", err=True)


def _import(settings: Settings, stream: BinaryIO) -> dump.Summary:
    return _on_store(settings, lambda store: dump.load(store, stream, settings.limits))
