"""Wall time of `galerakv cluster up` for 3 local nodes: from nothing, and after `down`.

    sudo python bench/cluster_up.py [--runs 5] [--first-address 127.0.0.41]

Each run uses a fresh state directory under /var/tmp/galerakv-bench/ (the
mysql user must be able to enter it) and removes it afterwards. Prints every
timing and the medians. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from galerakv.cluster import starter

BASE = Path("/var/tmp/galerakv-bench")


def galerakv(config: Path, *args: str) -> float:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "galerakv.cli.main", "cluster", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"galerakv cluster {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--first-address", default="127.0.0.41")
    args = parser.parse_args()
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o755)
    fresh: list[float] = []
    again: list[float] = []
    for run in range(1, args.runs + 1):
        root = Path(tempfile.mkdtemp(prefix="run-", dir=BASE))
        root.chmod(0o755)
        config = root / "galerakv.toml"
        config.write_text(starter.starter_toml(args.nodes, args.first_address, state_dir="state"))
        try:
            fresh.append(galerakv(config, "up"))
            galerakv(config, "down")
            again.append(galerakv(config, "up"))
            print(f"run {run}: up from nothing {fresh[-1]:.1f} s, up after down {again[-1]:.1f} s", flush=True)
        finally:
            subprocess.run(
                [sys.executable, "-m", "galerakv.cli.main", "cluster", "down", "--config", str(config)],
                capture_output=True,
                check=False,
                timeout=600,
            )
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.nodes} nodes, {args.runs} runs: median up from nothing "
        f"{statistics.median(fresh):.1f} s, median up after down {statistics.median(again):.1f} s"
    )


if __name__ == "__main__":
    main()
