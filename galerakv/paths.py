"""Every path galerakv keeps under ``cluster.state_dir``, defined here and nowhere else.

::

    state_dir/
      secrets.toml            generated passwords (0600), read by the server and the toolkit
      admin.cnf               the admin's client option file (0600, socket login)
      admin-tcp.cnf           the same over TCP, for `galerakv cluster sql --via`
      tls/                    `galerakv cluster certs`: ca.crt ca.key (0600), <node>.crt/.key,
                              http.crt/.key (the HTTPS API), balancer.crt/.key (MaxScale's listeners)
      .init-<node>.sql        the bootstrap node's first SQL, removed once applied
      <node>/                 one per node (0750, owned by the mysql user)
        my.cnf cluster.cnf sst_auth.cnf   rendered configuration
        tls-ca.crt tls-server.crt tls-server.key   the node's TLS files (key 0600, mysql's)
        data/                 the datadir (grastate.dat inside)
        mysqld.log mysqld.pid mysqld.sock galerakv.pid
        clustercheck.pid clustercheck.log maintenance
      balancer/               haproxy.cfg haproxy.sock haproxy.pid haproxy.log
        maxscale/             maxscale.cnf accounts.toml galerakv.pid maxscale.out ...

Pure: nothing here touches the filesystem. Imported by the server (the
secrets file) and the toolkit alike, so it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from galerakv.config import NodeSettings, Settings


SECRETS_CREDENTIAL = "galerakv-secrets.toml"
"""The secrets file's name as a systemd credential: ``galerakv.service`` (``galerakv service
install``) hands it to the unprivileged server in ``$CREDENTIALS_DIRECTORY``."""

CA_CREDENTIAL = "galerakv-ca.crt"
"""The cluster's CA (``state_dir/tls/ca.crt``) as a credential: TLS to MariaDB checks against it."""
HTTPS_CERT_CREDENTIAL = "galerakv-https.crt"
HTTPS_KEY_CREDENTIAL = "galerakv-https.key"
"""``[server] tls_cert`` and ``tls_key`` as credentials: the key stays root's (0600)."""


@dataclass(frozen=True)
class StatePaths:
    """The files directly under ``state_dir``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> StatePaths:
        return cls(settings.cluster.state_dir)

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.toml"

    @property
    def admin_cnf(self) -> Path:
        return self.root / "admin.cnf"

    @property
    def admin_tcp_cnf(self) -> Path:
        return self.root / "admin-tcp.cnf"

    def init_sql(self, node: str) -> Path:
        return self.root / f".init-{node}.sql"


@dataclass(frozen=True)
class TlsPaths:
    """The certificates ``galerakv cluster certs`` keeps: ``state_dir/tls/``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> TlsPaths:
        return cls(settings.cluster.state_dir / "tls")

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def cert(self, name: str) -> Path:
        """A leaf: a node's name, ``http`` (the API) or ``balancer`` (MaxScale's listeners)."""
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"


@dataclass(frozen=True)
class NodePaths:
    """Where one local node keeps its files, all under ``state_dir/<node>/``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings, node: NodeSettings) -> NodePaths:
        return cls(settings.cluster.state_dir / node.name)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "mysqld.pid"

    @property
    def log(self) -> Path:
        return self.root / "mysqld.log"

    @property
    def my_cnf(self) -> Path:
        return self.root / "my.cnf"

    @property
    def cluster_cnf(self) -> Path:
        return self.root / "cluster.cnf"

    @property
    def sst_auth_cnf(self) -> Path:
        return self.root / "sst_auth.cnf"

    @property
    def tls_ca(self) -> Path:
        return self.root / "tls-ca.crt"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls-server.crt"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls-server.key"

    @property
    def launcher_pid(self) -> Path:
        """The PID galerakv recorded when it started this node's mariadbd."""
        return self.root / "galerakv.pid"

    @property
    def grastate(self) -> Path:
        return self.datadir / "grastate.dat"


@dataclass(frozen=True)
class BalancerPaths:
    """Where the balancer keeps its files: ``state_dir/balancer/``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> BalancerPaths:
        return cls(settings.cluster.state_dir / "balancer")

    @property
    def haproxy_cfg(self) -> Path:
        return self.root / "haproxy.cfg"

    @property
    def haproxy_socket(self) -> Path:
        return self.root / "haproxy.sock"

    @property
    def haproxy_pid(self) -> Path:
        """The PID galerakv recorded when it started HAProxy."""
        return self.root / "haproxy.pid"

    @property
    def haproxy_log(self) -> Path:
        return self.root / "haproxy.log"

    @property
    def haproxy_chroot(self) -> Path:
        """An empty root-owned directory HAProxy chroots into before dropping to its user."""
        return self.root / "haproxy-chroot"

    @property
    def maxscale_dir(self) -> Path:
        return self.root / "maxscale"

    @property
    def maxscale_cnf(self) -> Path:
        return self.maxscale_dir / "maxscale.cnf"

    @property
    def maxscale_pid(self) -> Path:
        return self.maxscale_dir / "galerakv.pid"

    @property
    def maxscale_log(self) -> Path:
        return self.maxscale_dir / "maxscale.out"

    @property
    def maxscale_tls_key(self) -> Path:
        """A copy of the balancer's TLS key MaxScale's user may read (0600)."""
        return self.maxscale_dir / "balancer.key"

    @property
    def maxscale_accounts(self) -> Path:
        """The MaxScale monitor and service accounts (0600)."""
        return self.maxscale_dir / "accounts.toml"


@dataclass(frozen=True)
class CheckPaths:
    """One node's ``galerakv clustercheck`` files, under ``state_dir/<node>/``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings, node: NodeSettings) -> CheckPaths:
        return cls(settings.cluster.state_dir / node.name)

    @property
    def pid(self) -> Path:
        return self.root / "clustercheck.pid"

    @property
    def log(self) -> Path:
        return self.root / "clustercheck.log"

    @property
    def maintenance(self) -> Path:
        """While this file exists the node's check answers 503 (drained)."""
        return self.root / "maintenance"
