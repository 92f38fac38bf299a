"""A real local MariaDB Galera cluster for the benchmarks, driven by the `galerakv cluster` CLI.

`GaleraCluster.fresh()` makes a new directory under /var/tmp/galerakv-bench/ (mode 0755:
mariadbd runs as the mysql user and must traverse it), writes galerakv.toml with
`galerakv cluster init --local N --first-address A`, and `start()` runs `galerakv cluster up`.
`stop()` runs `galerakv cluster down`; if a node still runs after that, it is killed by the
PID in state_dir/<node>/galerakv.pid, and only if that PID is mariadbd started with that
node's my.cnf. `GaleraCluster.existing(config)` wraps a cluster someone else started:
it is neither started nor stopped here (`stop()` only removes the serve-PORT.toml files
written next to its galerakv.toml by `serve_config()`).
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
        nodes = data.get("cluster", {}).get("nodes", [])
        self.nodes = [n["name"] for n in nodes]
        # (address, port) of each node, in file order: the first is the root node
        self.addresses = [(str(n["address"]), int(n.get("port", 3306))) for n in nodes]
        self.balancer = dict(data.get("balancer", {}))
        self.database = str(data.get("database", {}).get("name", "galerakv"))
        self.serve_configs: list[Path] = []

    @classmethod
    def fresh(
        cls, nodes: int, first_address: str, balancer: str | None = None, tls: bool | None = None
    ) -> GaleraCluster:
        """A new cluster's directory and galerakv.toml (not started). balancer: `cluster init
        --balancer` (haproxy, maxscale, none; default init's); tls: `cluster.tls` (default init's)."""
        BASE.mkdir(parents=True, exist_ok=True)
        BASE.chmod(0o755)
        root = Path(tempfile.mkdtemp(prefix="galera-", dir=BASE))
        root.chmod(0o755)
        config = root / "galerakv.toml"
        try:
            cls._cli(
                config,
                "init",
                "--local",
                str(nodes),
                "--first-address",
                first_address,
                *(("--balancer", balancer) if balancer else ()),
            )
            if tls is not None:
                text, n = re.subn(
                    r"(?m)^tls = (true|false)\b", f"tls = {'true' if tls else 'false'}", config.read_text(), count=1
                )
                if n != 1 or tomllib.loads(text).get("cluster", {}).get("tls") is not tls:
                    raise RuntimeError(f"{config}: no `tls = ...` line in [cluster] to set")
                config.write_text(text)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
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

    def balancer_desc(self) -> str:
        """The balancer as the cluster's [balancer] section gives it, e.g. haproxy 127.0.0.40:3306 rw / :3307 ro."""
        b = self.balancer
        kind = b.get("kind", "none")
        if kind == "none":
            return "none"
        return f"{kind} {b.get('address', '?')}:{b.get('rw_port', 3306)} rw / :{b.get('ro_port', 3307)} ro"

    def app_credentials(self) -> tuple[str, str]:
        """(user, password) of the application account, from state_dir/secrets.toml [app]."""
        data = tomllib.loads((self.state_dir / "secrets.toml").read_text())
        app = data.get("app", {})
        if "user" not in app or "password" not in app:
            raise RuntimeError(f"{self.state_dir / 'secrets.toml'} has no [app] user/password")
        return str(app["user"]), str(app["password"])

    def serve_config(self, port: int, workers: int, engine: str | None = None, route: str = "nodes") -> Path:
        """A galerakv.toml next to the cluster's (so state_dir resolves the same) for `serve`.

        route "nodes": galerakv picks the nodes itself; "balancer": through the balancer of the
        cluster's [balancer] section (HAProxy started by `galerakv cluster up`). Removed by
        remove_serve_configs() (or with the whole directory by stop() on a cluster of ours).
        """
        text = self.config.read_text()
        head = re.split(r"(?m)^\[server\]\s*$", text, maxsplit=1)[0]
        if route not in ("nodes", "balancer"):
            raise ValueError(f"route must be nodes or balancer, not {route!r}")
        path = self.config.parent / f"serve-{port}.toml"
        path.write_text(
            head.rstrip() + "\n\n[server]\n"
            f'host = "127.0.0.1"\nport = {port}\nbackend = "mariadb"\nroute = "{route}"\nworkers = {workers}\n'
            + (f'engine = "{engine}"\n' if engine else "")
        )
        self.serve_configs.append(path)
        return path

    def remove_serve_configs(self) -> None:
        """Remove the serve-PORT.toml files this object wrote (only those)."""
        for path in self.serve_configs:
            path.unlink(missing_ok=True)
        self.serve_configs.clear()

    def stop(self) -> None:
        self.remove_serve_configs()
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

    def mariadbd_pids(self) -> dict[str, int]:
        """Each node's running mariadbd: the PID in state_dir/<node>/galerakv.pid, checked to be
        mariadbd started with that node's my.cnf (nodes not running are left out)."""
        from galerakv.cluster.transport.local import runs_mariadbd

        pids = {}
        for name in self.nodes:
            node_dir = self.state_dir / name
            try:
                pid = int((node_dir / "galerakv.pid").read_text())
            except (OSError, ValueError):
                continue
            if runs_mariadbd(pid, node_dir / "my.cnf"):
                pids[name] = pid
        return pids

    def sql(self, statement: str) -> str:
        """`galerakv cluster sql -e statement` (the root node, admin user): the client's output."""
        return self._cli(self.config, "sql", "-e", statement, timeout=60).stdout

    def _kill_leftovers(self) -> None:
        from galerakv.cluster.transport.local import runs_mariadbd

        for name, pid in self.mariadbd_pids().items():
            my_cnf = self.state_dir / name / "my.cnf"
            _log(f"{name}: mariadbd pid {pid} still runs after down; SIGKILL")
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while runs_mariadbd(pid, my_cnf) and time.monotonic() < deadline:
                time.sleep(0.1)

    def mariadb_version(self) -> str:
        try:
            out = subprocess.run(["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True, timeout=10)
            m = re.search(r"Ver (\S+)", out.stdout)
            return m.group(1) if m else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"
