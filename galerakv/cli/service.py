"""``galerakv service ...``: systemd units that bring galerakv back after a reboot, and
``galerakv`` on root's PATH (``sudo galerakv`` finds /usr/local/bin, not a venv)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import click

from galerakv.cli.common import config_option, fail, handle_errors
from galerakv.cluster.render import systemd
from galerakv.cluster.transport.local import untraversable
from galerakv.config import Settings

UNIT_DIR = Path("/etc/systemd/system")
LINK_DIR = Path("/usr/local/bin")
MARK = "# galerakv:"  # first line of every unit galerakv writes


def executable() -> Path:
    """The absolute path of this installation's ``galerakv`` command."""
    beside = Path(sys.executable).absolute().with_name("galerakv")  # the venv's console script
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("galerakv")
    if found:
        return Path(found).absolute()
    fail("cannot find the `galerakv` command of this installation; install galerakv with pip "
         "(its `galerakv` script is what the units run)")
    raise AssertionError  # pragma: no cover - fail exits


@click.group()
def service() -> None:
    """Run galerakv as systemd services, and put `galerakv` on root's PATH."""


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    result = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                             "/nonexistent", "--shell", "/usr/sbin/nologin", user],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        fail(f"cannot create the system user {user!r}: {result.stderr.strip()}; create it yourself "
             f"(useradd --system {user}) or pass --user")
    click.echo(f"created the system user {user} (no login, no home)")


@service.command("install")
@config_option
@click.option("--dir", "unit_dir", type=click.Path(file_okay=False, path_type=Path), default=UNIT_DIR,
              show_default=True, help="Where to write the unit files.")
@click.option("--user", default=systemd.SERVICE_USER, show_default=True,
              help="The unprivileged user `galerakv serve` runs as (created when missing).")
@click.option("--print", "print_only", is_flag=True, help="Print the units instead of writing them.")
@handle_errors
def install(settings: Settings, unit_dir: Path, user: str, print_only: bool) -> None:
    """Write galerakv.service (the API) and, for local nodes, galerakv-cluster.service
    (`cluster up` at boot, `cluster down` at shutdown), so a reboot brings everything back."""
    if settings.source is None:
        fail("no galerakv.toml found: the units run `galerakv --config FILE`; pass --config", 2)
        return
    units = systemd.render(settings, executable(), settings.source.absolute(), user)
    if print_only:
        for name, text in units.files.items():
            click.echo(f"# --- {name}\n{text}")
        return
    for name in units.files:
        path = unit_dir / name
        if path.exists() and not path.read_text().startswith(MARK):
            fail(f"{path} exists and was not written by galerakv; move it away first")
    system = unit_dir.resolve() == UNIT_DIR and os.geteuid() == 0
    if system:
        _ensure_user(user)
        entry = pwd.getpwnam(user)
        groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {entry.pw_gid}
        for needed in (executable().parent, settings.source.absolute().parent):
            blocked = untraversable(needed, entry.pw_uid, groups)
            if blocked is not None:
                fail(f"{user} cannot reach {needed} ({blocked} is closed to it); install galerakv where "
                     "every user can read it (docs/operations.md: a venv under /opt/galerakv) and keep "
                     "galerakv.toml readable (mode 0644)")
        for directory in units.writable:
            directory.mkdir(parents=True, exist_ok=True)
            for path in (directory, *directory.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            click.echo(f"{directory}: owned by {user} (the SQLite file and its journal live there)")
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name, text in units.files.items():
        path = unit_dir / name
        path.write_text(text)
        path.chmod(0o644)
        click.echo(f"wrote {path}")
    names = " ".join(units.files)
    if not system:
        click.echo(f"not the system unit directory: the user {user} and the ownership of "
                   + (", ".join(str(d) for d in units.writable) or "nothing") + " were left as they are")
    click.echo(f"next: systemctl daemon-reload && systemctl enable --now {names}")


@service.command("uninstall")
@click.option("--dir", "unit_dir", type=click.Path(file_okay=False, path_type=Path), default=UNIT_DIR,
              show_default=True, help="Where the unit files are.")
@handle_errors
def uninstall(unit_dir: Path) -> None:
    """Disable and remove the units `galerakv service install` wrote (data is left alone)."""
    ours = [unit_dir / n for n in (systemd.SERVER_UNIT, systemd.CLUSTER_UNIT)
            if (unit_dir / n).is_file() and (unit_dir / n).read_text().startswith(MARK)]
    if not ours:
        click.echo(f"no galerakv unit in {unit_dir}")
        return
    if unit_dir.resolve() == UNIT_DIR and _systemd_running():
        subprocess.run(["systemctl", "disable", "--now", *(p.name for p in ours)], check=False)
    for path in ours:
        path.unlink()
        click.echo(f"removed {path}")
    if _systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=False)


@service.command("link")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), default=LINK_DIR,
              show_default=True, help="A directory on root's PATH (sudo's secure_path has /usr/local/bin).")
@handle_errors
def link(to: Path) -> None:
    """Link this installation's `galerakv` into /usr/local/bin, so `sudo galerakv` finds it."""
    target = executable()
    path = to / "galerakv"
    if path.exists() and not path.is_symlink():
        fail(f"{path} exists and is not a link; remove it first if it is an old galerakv")
    to.mkdir(parents=True, exist_ok=True)
    tmp = to / ".galerakv.link"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, path)
    click.echo(f"{path} -> {target}")
