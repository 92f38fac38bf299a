"""Install MariaDB, Galera and the state-transfer tools on Debian/Ubuntu.

``galerakv cluster install`` (and ``up``, when something is missing) runs
``apt-get update`` once and ``apt-get install -y`` with only the missing
packages, non-interactively. While it runs, ``/usr/sbin/policy-rc.d`` exits
101, which tells Debian's maintainer scripts not to start the packaged
``mariadb`` service: galerakv starts its own nodes, and a system mysqld on
127.0.0.1:3306 with its own datadir would only confuse. The file is removed
afterwards (or left alone if it was already there). On a machine that runs
systemd, the services of the packages it installed (Debian's ``mariadb`` and
``haproxy``) are then disabled, so a reboot does not start them beside the
nodes and the balancer galerakv runs; a service that was there before is left
alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from galerakv.config import SstMethod
from galerakv.errors import ClusterError

# stunnel4: rsync state transfers go through it when the cluster uses TLS (cluster.tls)
BASE_PACKAGES = ("mariadb-server", "mariadb-client", "galera-4", "rsync", "stunnel4", "iproute2")
MARIABACKUP_PACKAGES = ("mariadb-backup", "socat")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
POLICY_SCRIPT = "#!/bin/sh\n# written by galerakv cluster install; removed when it ends\nexit 101\n"
APT_TIMEOUT = 1800.0
# the services Debian's packages enable, which galerakv replaces with its own nodes and balancer
PACKAGED_SERVICES = {"mariadb-server": "mariadb.service", "haproxy": "haproxy.service"}
SYSTEMD_RUNS = Path("/run/systemd/system")  # sd_booted(3)


def packaged_services(installed: list[str]) -> list[str]:
    """The services the packages in ``installed`` brought (and enabled)."""
    return [PACKAGED_SERVICES[p] for p in installed if p in PACKAGED_SERVICES]


def required_packages(sst_method: SstMethod | None) -> list[str]:
    """Packages the nodes need; ``None`` means every SST method."""
    packages = list(BASE_PACKAGES)
    if sst_method in (None, "mariabackup"):
        packages += MARIABACKUP_PACKAGES
    return packages


DPKG_FORMAT = "${Package} ${Status}\\n"


def installed(dpkg_output: str) -> set[str]:
    """The packages ``dpkg-query -W -f=DPKG_FORMAT`` lists as installed (architecture suffix dropped)."""
    return {line.split(" ", 1)[0].split(":")[0] for line in dpkg_output.splitlines() if line.endswith("ok installed")}


def query_script(packages: list[str] | tuple[str, ...]) -> str:
    """Script: what :func:`installed` reads, on a remote host (dpkg-query's exit status ignored)."""
    return f"dpkg-query -W -f={shlex.quote(DPKG_FORMAT)} {' '.join(shlex.quote(p) for p in packages)} 2>/dev/null; true"


def missing_packages(packages: list[str]) -> list[str]:
    """The packages dpkg does not report as installed (all of them without dpkg)."""
    if not packages or shutil.which("dpkg-query") is None:
        return list(packages)
    try:
        # one call for all; dpkg-query exits 1 when some are unknown but still lists the rest
        result = subprocess.run(["dpkg-query", "-W", f"-f={DPKG_FORMAT}", *packages],
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return list(packages)
    ok = installed(result.stdout)
    return [p for p in packages if p not in ok]


def install(packages: list[str], report: Callable[[str], None]) -> list[str]:
    """Install whatever of ``packages`` is missing; returns what was installed."""
    missing = missing_packages(packages)
    if not missing:
        report("all packages present: " + " ".join(packages))
        return []
    if shutil.which("apt-get") is None:
        raise ClusterError("missing packages " + " ".join(missing)
                           + " and no apt-get on this machine; install them by hand")
    if os.geteuid() != 0:
        raise ClusterError("missing packages " + " ".join(missing)
                           + "; installing them needs root: run `sudo galerakv cluster install`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    placed = _place_policy()
    try:
        report("apt-get update")
        _apt(["apt-get", "update"], env)
        report("apt-get install -y " + " ".join(missing))
        _apt(["apt-get", "install", "-y", "--no-install-recommends", *missing], env)
    finally:
        if placed:
            POLICY_RC_D.unlink(missing_ok=True)
    still = missing_packages(missing)
    if still:
        raise ClusterError("apt-get finished but these are still not installed: " + " ".join(still))
    services = packaged_services(missing)
    if services and SYSTEMD_RUNS.is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--quiet", *services], capture_output=True, timeout=60, check=False)
        report(f"disabled {', '.join(services)}: galerakv runs its own")
    return missing


def _place_policy() -> bool:
    if POLICY_RC_D.exists():
        return False
    POLICY_RC_D.write_text(POLICY_SCRIPT)
    POLICY_RC_D.chmod(0o755)
    return True


def _apt(argv: list[str], env: dict[str, str]) -> None:
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True,
                                timeout=APT_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{' '.join(argv[:2])} took more than {APT_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise ClusterError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ClusterError(f"{' '.join(argv[:2])} failed (exit {result.returncode}):\n{tail}")


def script_outcome(out: str) -> list[str]:
    """What :func:`install_script` says it did (apt-get's own chatter left out)."""
    return [line for line in out.splitlines() if line.startswith(("installed:", "disabled "))]


def install_script(packages: list[str]) -> str:
    """The same steps as :func:`install`, as a POSIX shell script for a remote root shell."""
    names = " ".join(shlex.quote(p) for p in packages)
    cases = " ".join(f'{p}) services="$services {unit}";;' for p, unit in PACKAGED_SERVICES.items())
    return f"""set -eu
missing=""
for p in {names}; do
  dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
placed=0
if [ ! -e {POLICY_RC_D} ]; then
  printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D}; chmod 755 {POLICY_RC_D}; placed=1
fi
trap 'if [ "$placed" = 1 ]; then rm -f {POLICY_RC_D}; fi' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
echo "installed:$missing"
services=""
for p in $missing; do
  case "$p" in {cases}
  esac
done
if [ -n "$services" ] && [ -d {SYSTEMD_RUNS} ] && command -v systemctl >/dev/null; then
  systemctl disable --quiet $services && echo "disabled$services: galerakv runs its own"
fi
exit 0
"""
