"""Wall time of the cluster verbs on 3 nodes, local transport beside the ssh transport, in one run.

    sudo python bench/cluster_up.py [--runs 3] [--transports local,ssh] [--balancer haproxy|none]
                                    [--output bench/results/cluster_up.md]

Per round and per transport (the order flips every round): ``up`` from nothing, ``restart
--rolling``, ``down``, then ``up`` again after the clean stop. The local nodes live on
127.0.0.41-43; the ssh nodes on three hosts the bench makes on 127.0.0.81-83 the way the tests
do (tests/support/ssh_hosts.py: one real sshd each, in a mount namespace of its own, key login,
host keys checked), so every step really crosses ssh. With ``--balancer haproxy`` (the default)
each side runs HAProxy and its health checks too: beside the local nodes (127.0.0.40), and on a
host of its own for the ssh nodes (127.0.0.85, started over ssh). Each round uses
a fresh state directory (removed afterwards); every process is stopped by ``down`` or by its PID.
Not a test: numbers depend on the machine; quote the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.ssh_hosts

from galerakv.cluster import starter
from tests.support.ssh_hosts import SshHosts

BASE = Path("/var/tmp/galerakv-bench")
STEPS = ("up", "restart --rolling", "down", "up after down")
SSH_ADDRESSES = ["127.0.0.81", "127.0.0.82", "127.0.0.83"]
SSH_BALANCER = "127.0.0.85"


def galerakv(config: Path, *args: str) -> float:
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "cluster", *args, "--config", str(config)],
                            capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"galerakv cluster {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return elapsed


def local_config(root: Path, balancer: str) -> Path:
    config = root / "galerakv.toml"
    config.write_text(starter.starter_toml(3, "127.0.0.41", state_dir="state", balancer_kind=balancer))
    return config


def ssh_config(root: Path, hosts: SshHosts, balancer: str) -> Path:
    config = root / "galerakv.toml"
    data = {"cluster": {"name": "galerakv_bench", "transport": "ssh", "state_dir": str(hosts.state_dir),
                        "nodes": [{"name": f"db{i}", "address": a} for i, a in enumerate(hosts.addresses, 1)]},
            # systemd = "auto", as users get it: one call per host asks whether it runs systemd
            "ssh": {**hosts.ssh_table(), "control_persist": 60, "systemd": "auto",
                    "galerakv": str(Path(sys.executable).parent / "galerakv")},
            "balancer": {"kind": balancer, "address": SSH_BALANCER} if balancer != "none" else {"kind": "none"}}
    config.write_text(tomli_w.dumps(data))
    return config


def one_round(config: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    try:
        times["up"] = galerakv(config, "up")
        times["restart --rolling"] = galerakv(config, "restart", "--rolling")
        times["down"] = galerakv(config, "down")
        times["up after down"] = galerakv(config, "up")
    finally:
        subprocess.run([sys.executable, "-m", "galerakv.cli.main", "cluster", "down", "--config", str(config)],
                       capture_output=True, check=False, timeout=600)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transports", default="local,ssh")
    parser.add_argument("--balancer", choices=("haproxy", "none"), default="haproxy")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    transports = args.transports.split(",")
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o755)
    results: dict[str, list[dict[str, float]]] = {t: [] for t in transports}
    load_start = os.getloadavg()
    hosts: SshHosts | None = None
    try:
        if "ssh" in transports:
            state_root = Path(tempfile.mkdtemp(prefix="ssh-state-", dir=BASE))
            state_root.chmod(0o755)  # mariadbd (mysql) must enter it
            hosts = SshHosts(SSH_ADDRESSES, state_root / "state",
                             [SSH_BALANCER] if args.balancer != "none" else [])
            hosts.start()
        for run in range(1, args.runs + 1):
            order = transports if run % 2 else list(reversed(transports))
            for transport in order:
                root = Path(tempfile.mkdtemp(prefix="run-", dir=BASE))
                root.chmod(0o755)
                try:
                    assert hosts is not None or transport == "local"
                    config = (local_config(root, args.balancer) if transport == "local"
                              else ssh_config(root, hosts, args.balancer))  # type: ignore[arg-type]
                    times = one_round(config)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
                    if transport == "ssh" and hosts is not None:
                        hosts.empty_state()
                results[transport].append(times)
                print(f"run {run} {transport}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
                      flush=True)
    finally:
        if hosts is not None:
            hosts.stop()
    load_end = os.getloadavg()
    median = {t: {s: statistics.median(r[s] for r in rs) for s in STEPS} for t, rs in results.items()}
    lines = [
        "# `galerakv cluster` verbs: local nodes beside ssh hosts",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; `sudo python bench/cluster_up.py --runs {args.runs} "
        f"--transports {args.transports} --balancer {args.balancer}`; 3 nodes, "
        + ("HAProxy and a health check per node (local: beside the nodes; ssh: on a host of its own, "
           f"{SSH_BALANCER}, started over ssh)" if args.balancer != "none" else "no balancer")
        + ", rsync SST, TLS on; the ssh hosts are real "
        "sshd on 127.0.0.81-83 in mount namespaces of their own (tests/support/ssh_hosts.py), one shared "
        "connection per host (ControlMaster). Medians of the runs, the order flipped every round.",
        "",
        "| step | " + " | ".join(f"{t} s" for t in transports) + (" | ssh/local |" if len(transports) == 2 else " |"),
        "|---|" + "---:|" * (len(transports) + (1 if len(transports) == 2 else 0)),
    ]
    for step in STEPS:
        row = [f"{median[t][step]:.1f}" for t in transports]
        if len(transports) == 2 and "local" in median and "ssh" in median:
            row.append(f"{median['ssh'][step] / median['local'][step]:.2f}x")
        lines.append(f"| {step} | " + " | ".join(row) + " |")
    lines += ["", f"Load average (1/5/15 min): {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} "
              f"at the start, {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} at the end.", "",
              "Every run, in order:", ""]
    for t, rs in results.items():
        for i, r in enumerate(rs, 1):
            lines.append(f"- {t} run {i}: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.items()))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
