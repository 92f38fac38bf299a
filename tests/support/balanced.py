"""A local cluster seen through its balancer's ports, as the admin account: for balancer tests."""

from __future__ import annotations

import subprocess

from galerakv import config
from galerakv.config import Settings
from galerakv.paths import StatePaths, TlsPaths
from galerakv.secrets import ADMIN_TCP_USER, Account, client_option_file, load, write_private
from tests.support.local_cluster import LocalCluster


class ThroughBalancer:
    """SQL through the balancer's read-write (``rw``) or read-only (``ro``) port."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.c = cluster
        self.settings: Settings = config.load(cluster.config)
        secrets = load(StatePaths.of(self.settings).secrets)
        assert secrets is not None
        self.option_file = cluster.state_dir / "test-admin-tcp.cnf"
        # the admin's own TCP password; TLS checked against the cluster's CA (the node's certificate
        # through HAProxy, which passes TLS through; MaxScale's own through MaxScale)
        tls = ({"ssl-ca": str(TlsPaths.of(self.settings).ca_cert), "ssl-verify-server-cert": "1"}
               if self.settings.cluster.tls else {})
        write_private(self.option_file, client_option_file(Account(ADMIN_TCP_USER, secrets.admin_tcp.password), tls))

    def query(self, via: str, sql: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        b = self.settings.balancer
        port = b.rw_port if via == "rw" else b.ro_port
        return subprocess.run(["mariadb", f"--defaults-file={self.option_file}", f"--host={b.address}",
                               f"--port={port}", "--protocol=tcp", "--connect-timeout=3", "-N", "-B",
                               "-e", sql], capture_output=True, text=True, timeout=timeout, check=False)

    def value(self, via: str, sql: str) -> str:
        result = self.query(via, sql)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()
