"""``galerakv cluster init --local N``: a starter galerakv.toml for N loopback nodes."""

from __future__ import annotations

import grp
import hashlib
import ipaddress
import pwd
from pathlib import Path

from galerakv.cluster.transport.local import untraversable
from galerakv.errors import ClusterError

FIRST_ADDRESS = "127.0.0.11"
MAX_NODES = 99


def node_addresses(count: int, first: str = FIRST_ADDRESS) -> list[str]:
    if count < 1:
        raise ClusterError(f"--local {count}: the cluster needs at least one node (3 or more "
                           "to survive a failure)")
    if count > MAX_NODES:
        raise ClusterError(f"--local {count}: at most {MAX_NODES} local nodes")
    try:
        start = ipaddress.IPv4Address(first)
    except ValueError as exc:
        raise ClusterError(f"--first-address {first!r} is not an IPv4 address") from exc
    last = start + (count - 1)
    if not (start.is_loopback and last.is_loopback) or int(last) & 0xFF in (0, 255):
        raise ClusterError(f"{count} nodes from {first} leave the usable loopback range; "
                           "choose a lower --first-address")
    return [str(start + i) for i in range(count)]


def balancer_address(addresses: list[str]) -> str:
    """The address just below the first node's (127.0.0.10 for 127.0.0.11), else just above the last."""
    below = ipaddress.IPv4Address(addresses[0]) - 1
    if int(below) & 0xFF != 0:
        return str(below)
    return str(ipaddress.IPv4Address(addresses[-1]) + 1)


SHARED_STATE_ROOT = Path("/var/lib/galerakv")
"""Where ``init`` puts state_dir when the mysql user cannot reach the file's own folder."""


def reachable_state_dir(config_file: Path, run_as: str = "mysql") -> tuple[str, Path | None]:
    """state_dir for a new metadata file: ``.galerakv`` beside it, or, when ``run_as`` (mariadbd's
    user) cannot enter a folder on the way there (a home directory of mode 0700 or 0750, as on
    current Ubuntu), a folder of its own under /var/lib/galerakv; and the folder that blocked.

    Before the packages are installed ``run_as`` may not exist yet: the folders' "others" bits
    decide then, as they will for it.
    """
    folder = config_file.parent.absolute()
    try:
        pw = pwd.getpwnam(run_as)
        uid, gids = pw.pw_uid, {g.gr_gid for g in grp.getgrall() if run_as in g.gr_mem} | {pw.pw_gid}
    except KeyError:
        uid, gids = -1, set()
    blocked = untraversable(folder, uid, gids)
    if blocked is None:
        return ".galerakv", None
    tag = hashlib.sha256(str(config_file.absolute()).encode()).hexdigest()[:8]
    return str(SHARED_STATE_ROOT / f"{folder.name or 'cluster'}-{tag}"), blocked


def starter_toml(count: int, first: str = FIRST_ADDRESS, cluster_name: str = "galerakv_cluster",
                 state_dir: str = ".galerakv", balancer_kind: str = "haproxy",
                 balancer: str | None = None) -> str:
    """The starter file; the balancer listens next to the nodes unless ``balancer`` names an address."""
    addresses = node_addresses(count, first)
    if balancer_kind not in ("haproxy", "maxscale", "none"):
        raise ClusterError(f"balancer kind {balancer_kind!r}: use haproxy, maxscale or none")
    balancer = balancer or balancer_address(addresses)
    if balancer in addresses:
        raise ClusterError(f"the balancer address {balancer} is also a node's address; choose another")
    lines = [
        "# galerakv metadata file: every address, name and credential comes from here.",
        "# Written by `galerakv cluster init`; see docs/cluster.md.",
        "",
        "[cluster]",
        f'name = "{cluster_name}"        # wsrep_cluster_name',
        'transport = "local"              # nodes are mariadbd processes on this machine',
        f'state_dir = "{state_dir}"           # datadirs, logs, configs, secrets (0600)',
        'sst_method = "rsync"             # rsync | mariabackup',
        "tls = true                       # TLS between and to the nodes (`galerakv cluster certs`);",
        "                                 # false only for experiments: data and passwords in clear",
        "",
    ]
    for i, address in enumerate(addresses, start=1):
        comment = "   # the root node: bootstrapped first" if i == 1 else ""
        lines += ["[[cluster.nodes]]" + comment, f'name = "db{i}"', f'address = "{address}"', ""]
    lines += [
        "[balancer]",
        f'kind = "{balancer_kind}"' + " " * (24 - len(balancer_kind)) + "# haproxy | maxscale | none",
        f'address = "{balancer}"',
        "rw_port = 3306                   # one writer at a time, the others as backups",
        "ro_port = 3307                   # reads spread over every Synced node",
        "",
        "[database]",
        'name = "galerakv"',
        'user = "galerakv"                # its password is generated into the secrets file',
        "",
        "[server]",
        'host = "127.0.0.1"',
        "port = 8080",
        'backend = "sqlite"               # switch to "mariadb" once the cluster is up',
        "# HTTPS: `galerakv cluster certs` (or `up`) writes this pair, signed by the cluster's CA",
        f'# tls_cert = "{state_dir}/tls/http.crt"',
        f'# tls_key = "{state_dir}/tls/http.key"',
        "",
    ]
    return "\n".join(lines)
