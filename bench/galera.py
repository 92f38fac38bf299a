"""A real local MariaDB Galera cluster for the benchmarks, driven by the `galerakv cluster` CLI.

`GaleraCluster.fresh()` makes a new directory under /var/tmp/galerakv-bench/ (mode 0755:
mariadbd runs as the mysql user and must traverse it), writes galerakv.toml with
`galerakv cluster init --local N --first-address A`, and `start()` runs `galerakv cluster up`.
`stop()` runs `galerakv cluster down`; if a node still runs after that, it is killed by the
PID in state_dir/<node>/galerakv.pid, and only if that PID is mariadbd started with that
node's my.cnf. `GaleraCluster.existing(config)` wraps a cluster someone else started:
it is neither started nor stopped here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

BASE = Path("/var/tmp/galerakv-bench")
CLI_TIMEOUT = 300


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def galerakv_exe() -> list[str]:
    exe = Path(sys.executable).with_name("galerakv")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("galerakv")
    return [found] if found else [sys.executable, "-m", "galerakv.cli.main"]


class GaleraCluster:
    def __init__(self, config: Path, owned: bool) -> None:
        self.config = config.resolve()
        self.owned = owned  # started (and to be stopped, removed) by us
        self.started = False
        data = tomllib.loads(self.config.read_text())
        state = Path(data.get("cluster", {}).get("state_dir", ".galerakv"))
        self.state_dir = state if state.is_absolute() else self.config.parent / state
        self.nodes = [n["name"] for n in data.get("cluster", {}).get("nodes", [])]

    @classmethod
    def fresh(cls, nodes: int, first_address: str) -> GaleraCluster:
        BASE.mkdir(parents=True, exist_ok=True)
        BASE.chmod(0o755)
        root = Path(tempfile.mkdtemp(prefix="galera-", dir=BASE))
        root.chmod(0o755)
        config = root / "galerakv.toml"
        cls._cli(config, "init", "--local", str(nodes), "--first-address", first_address)
        return cls(config, owned=True)

    @classmethod
    def existing(cls, config: Path) -> GaleraCluster:
        return cls(config, owned=False)

    @staticmethod
    def _cli(config: Path, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        argv = [*galerakv_exe(), "cluster", *args, "--config", str(config)]
        began = time.monotonic()
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
        _log(f"galerakv cluster {args[0]}: rc={out.returncode} in {time.monotonic() - began:.1f} s")
        if out.returncode != 0:
            raise RuntimeError(f"galerakv cluster {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out

    def start(self) -> None:
        if not self.owned:
            return
        self.started = True  # even a failed `up` may have left nodes running
        self._cli(self.config, "up")

    def serve_config(self, port: int, workers: int, engine: str | None = None) -> Path:
        """A galerakv.toml next to the cluster's (so state_dir resolves the same) for `serve`."""
        text = self.config.read_text()
        head = re.split(r"(?m)^\[server\]\s*$", text, maxsplit=1)[0]
        path = self.config.parent / f"serve-{port}.toml"
        path.write_text(
            head.rstrip() + "\n\n[server]\n"
            f'host = "127.0.0.1"\nport = {port}\nbackend = "mariadb"\nroute = "nodes"\nworkers = {workers}\n'
            + (f'engine = "{engine}"\n' if engine else "")
        )
        return path

    def stop(self) -> None:
        if not self.owned:
            return
        try:
            if self.started:
                try:
                    self._cli(self.config, "down")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    _log(f"cluster down failed: {exc}")
                self._kill_leftovers()
        finally:
            shutil.rmtree(self.config.parent, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        from galerakv.cluster.transport.local import runs_mariadbd

        for name in self.nodes:
            node_dir = self.state_dir / name
            try:
                pid = int((node_dir / "galerakv.pid").read_text())
            except (OSError, ValueError):
                continue
            if runs_mariadbd(pid, node_dir / "my.cnf"):
                _log(f"{name}: mariadbd pid {pid} still runs after down; SIGKILL")
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while runs_mariadbd(pid, node_dir / "my.cnf") and time.monotonic() < deadline:
                    time.sleep(0.1)

    def mariadb_version(self) -> str:
        try:
            out = subprocess.run(["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True, timeout=10)
            m = re.search(r"Ver (\S+)", out.stdout)
            return m.group(1) if m else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"
