"""``galerakv watch NS``: print a namespace's changes as they happen, one JSON object a line."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

import click

from galerakv import config as _config
from galerakv.cli.common import EXIT_CONFIG, fail
from galerakv.client import Client, ClientError, Event
from galerakv.errors import ConfigError
from galerakv.paths import TlsPaths


class _Terminated(BaseException):
    """SIGTERM arrived: stop as on Ctrl-C (a BaseException, so that nothing on the way swallows it)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def server_url(host: str, port: int, https: bool = False) -> str:
    """The URL a client on this machine reaches ``galerakv serve`` at, from its listen address."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@click.command("watch")
@click.argument("ns")
@click.option("--prefix", default="", help="Only the keys that start with this.")
@click.option("--since", default=None, metavar="REVISION",
              help="Print the changes after this revision (default: those from now on).")
@click.option("--keys-only", is_flag=True, help="Leave the values out of put events.")
@click.option("--url", "urls", multiple=True, envvar="GALERAKV_URL", metavar="URL",
              help="A server instance, such as http://127.0.0.1:8080; repeat for several (tried in turn). "
                   "Default: $GALERAKV_URL (space-separated), else server.host and server.port of --config.")
@click.option("--token", envvar="GALERAKV_TOKEN", default=None,
              help="Bearer token (default: $GALERAKV_TOKEN).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Metadata file to take the server's address from when no --url is given "
                   "(default: $GALERAKV_CONFIG, else ./galerakv.toml).")
@click.option("--ca", type=click.Path(dir_okay=False), default=None,
              help="CA certificate to check an HTTPS server with (default: the system's; with the address "
                   "from --config and server.tls_cert set, the cluster's state_dir/tls/ca.crt when it exists).")
def watch(ns: str, prefix: str, since: str | None, keys_only: bool, urls: tuple[str, ...], token: str | None,
          config_path: str | None, ca: str | None) -> None:
    """Print the changes of namespace NS as they happen: one JSON object a line (the server's event
    data, with "type": "put" or "delete"), until Ctrl-C or SIGTERM (exit status 0).

    It follows the server's event stream and, when a server instance goes away, goes on from
    the last revision printed on the next --url, so no change is printed twice or left out.
    An error (a bad --since, a token that does not fit, history compacted past --since, no
    server answering) is one line on stderr and exit status 1.
    """
    if since is not None and not (since.isascii() and since.isdigit()):
        fail(f"--since is a revision, a whole number from 0 such as 1234, not {since[:40]!r}")
    if not urls:
        try:
            settings = _config.load(config_path)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        https = bool(settings.server.tls_cert)
        urls = (server_url(settings.server.host, settings.server.port, https),)
        cluster_ca = TlsPaths.of(settings).ca_cert
        if https and ca is None and cluster_ca.is_file():
            ca = str(cluster_ca)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with Client(urls, token=token, ca=ca) as kv:
            events = kv.watch(ns, prefix=prefix, since=int(since) if since is not None else None,
                              keys_only=keys_only)
            try:
                _print(events, sys.stdout)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
    except (KeyboardInterrupt, _Terminated):
        return
    except BrokenPipeError:  # the reader went away (`galerakv watch ns | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return
    except ClientError as exc:
        fail(_one_line(exc))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print(events: Iterator[Event], out: TextIO) -> None:
    for event in events:
        out.write(json.dumps(event.as_dict(), separators=(",", ":")) + "\n")
        out.flush()
