"""Options and helpers shared by every command."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from galerakv import config as _config
from galerakv.errors import ConfigError, GalerakvError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CONFIG = 2


config_path_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar=None,
    help="Metadata file (default: $GALERAKV_CONFIG, else ./galerakv.toml).")
"""``--config FILE`` as a path, for a command that loads (and reports) the file itself."""


def config_option(func: F) -> F:
    """Add ``--config FILE`` and pass the loaded :class:`Settings` as ``settings``.

    A configuration error is printed (every issue) and exits with status 2.
    """

    @config_path_option
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: str | None, **kwargs: Any) -> Any:
        try:
            settings = _config.load(config_path)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def handle_errors(func: F) -> F:
    """Turn galerakv errors into a one-paragraph message and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        except GalerakvError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]
