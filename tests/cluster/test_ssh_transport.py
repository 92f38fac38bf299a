"""The ssh transport against real OpenSSH servers (tests/support/ssh_hosts.py): what a user sees
when a host cannot be reached, its key changed or is unknown, or the login is refused.

The lifecycle itself on these hosts is tests/cluster/test_lifecycle.py's ``[ssh]`` variant.
Every case is one line naming the host and what to do, exit status 1, and nothing made on
any host.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from galerakv.cluster.transport.ssh import SshRunner
from galerakv.config import load as config_load
from tests.support.ssh_hosts import SshHosts

pytestmark = [pytest.mark.cluster]


def config_file(hosts: SshHosts, root: Path, addresses: list[str] | None = None,
                balancer: dict[str, object] | None = None, **ssh: object) -> Path:
    addresses = addresses or hosts.addresses
    data = {"cluster": {"name": "galerakv_ssh_bad", "transport": "ssh", "state_dir": str(hosts.state_dir),
                        "nodes": [{"name": f"db{i}", "address": a} for i, a in enumerate(addresses, start=1)]},
            "ssh": {**hosts.ssh_table(), **ssh}, "balancer": balancer or {"kind": "none"}}
    path = root / f"galerakv-{len(list(root.glob('galerakv-*.toml')))}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def galerakv(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "galerakv.cli.main", "cluster", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def nothing_made(hosts: SshHosts) -> bool:
    return not any(any(h.private(hosts.state_dir).iterdir()) for h in hosts.hosts.values())


def test_a_bad_ssh_setting_is_one_line_naming_the_host(ssh_test_hosts: SshHosts, tmp_path: Path) -> None:
    hosts = ssh_test_hosts
    first = hosts.addresses[0]
    other_key = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    changed = tmp_path / "known_hosts_changed"  # the first host's line holds another key
    lines = hosts.known_hosts.read_text().splitlines()
    fake = Path(f"{other_key}.pub").read_text().split()
    changed.write_text("\n".join([f"{first} {fake[0]} {fake[1]}", *lines[1:]]) + "\n")
    unknown = tmp_path / "known_hosts_without_the_first"
    unknown.write_text("\n".join(lines[1:]) + "\n")
    cases = [
        (config_file(hosts, tmp_path, ["127.0.0.64", *hosts.addresses[1:]]),
         "root@127.0.0.64: cannot be reached over ssh", "sshd listens on port 22"),
        (config_file(hosts, tmp_path, known_hosts_file=str(changed)),
         f"root@{first}: the host's ssh key is not the one in", f"ssh-keygen -R {first}"),
        (config_file(hosts, tmp_path, known_hosts_file=str(unknown)), f"root@{first}: the host's ssh key is not in",
         "ssh-keyscan"),
        (config_file(hosts, tmp_path, identity_file=str(other_key)), f"root@{first}: the login was refused",
         "authorized_keys"),
        (config_file(hosts, tmp_path, port=2222), f"root@{first} port 2222: cannot be reached over ssh", "ssh.port"),
    ]
    for config, message, advice in cases:
        result = galerakv(config, "up", "--no-install")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result
        said = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(said) == 1 and message in said[0] and advice in said[0], said
        assert nothing_made(hosts), f"{message}: something was left on a host"
    # status reports the unreachable node as down, and says why, instead of failing
    result = galerakv(cases[0][0], "status", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot be reached over ssh" in result.stdout
    # the balancer's host lost: `up` names it before anything starts; status lists it as the
    # balancer's problem; `down` still stops the nodes (there are none running here)
    lost = config_file(hosts, tmp_path, balancer={"kind": "haproxy", "address": "127.0.0.64"})
    result = galerakv(lost, "up", "--no-install")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    assert "balancer: root@127.0.0.64: cannot be reached over ssh" in result.stderr, result.stderr
    assert nothing_made(hosts)
    result = galerakv(lost, "status", "--json")
    assert "the balancer's host does not answer" in result.stdout and "Traceback" not in result.stderr
    result = galerakv(lost, "down")
    assert result.returncode == 0 and "warning: cannot stop the balancer on 127.0.0.64" in result.stdout, result


def test_a_working_setting_reaches_every_host_through_one_connection(ssh_test_hosts: SshHosts,
                                                                     tmp_path: Path) -> None:
    """``status`` on hosts where nothing runs: down, not an ssh error; ControlMaster shares a connection."""
    config = config_file(ssh_test_hosts, tmp_path)
    result = galerakv(config, "status", "--json")
    assert result.returncode == 1 and '"verdict": "down"' in result.stdout, result
    assert "ssh" not in result.stderr
    tag = SshRunner.of(config_load(config)).login_tag()
    for address in ssh_test_hosts.addresses:
        path = Path.home() / ".ssh" / "galerakv-control" / f"{tag}-%C"
        check = subprocess.run(["ssh", "-o", f"ControlPath={path}", "-p", "22", "-O", "check", f"root@{address}"],
                               capture_output=True, text=True, timeout=10, check=False)
        assert check.returncode == 0 and "Master running" in check.stderr, check
