"""The server reads the cluster's secrets, its CA and its HTTPS pair from systemd credentials.

`galerakv service install` hands the secrets file to the unprivileged server as
``LoadCredential=galerakv-secrets.toml:...`` (and the cluster's CA, and the HTTPS
certificate and key): systemd copies them into ``$CREDENTIALS_DIRECTORY`` for that
service only. Here the server's state_dir holds no secrets and no certificate, and
tls_cert/tls_key name files that do not exist, so only the credentials let it in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.configs import merge, write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess, trust, wait_ready

pytestmark = pytest.mark.cluster


def test_the_server_logs_in_with_the_credential_systemd_gives_it(galera_api_cluster: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    data = dict(galera_api_cluster)
    data.pop("__cluster__")
    secrets = Path(data["cluster"]["state_dir"]) / "secrets.toml"
    port = free_port()
    empty = tmp_path / "no-secrets-here"
    empty.mkdir()
    config = write_config(tmp_path / "server.toml", merge(data, {
        "cluster": {"state_dir": str(empty)},
        "server": {"backend": "mariadb", "route": "nodes", "port": port, "host": "127.0.0.1",
                   "tls_cert": str(empty / "http.crt"), "tls_key": str(empty / "http.key")}}))
    tls_dir = Path(data["cluster"]["state_dir"]) / "tls"

    without = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "serve", "--config", str(config)],
                             capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert without.returncode != 0 and "secrets file" in without.stderr + without.stdout, without
    assert "Traceback" not in without.stderr

    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    for source, name in ((secrets, "galerakv-secrets.toml"), (tls_dir / "ca.crt", "galerakv-ca.crt"),
                         (tls_dir / "http.crt", "galerakv-https.crt"), (tls_dir / "http.key", "galerakv-https.key")):
        shutil.copy(source, credentials / name)
        os.chmod(credentials / name, 0o400)
    trust(tls_dir / "ca.crt")
    os.environ["CREDENTIALS_DIRECTORY"] = str(credentials)
    try:
        server = ServerProcess(config, port, scheme="https")
        server.start()
    finally:
        del os.environ["CREDENTIALS_DIRECTORY"]
    try:
        wait_ready(server)
        put = httpx.put(f"{server.url}/v1/ns/cred/kv/k", content=b"v", timeout=10)
        assert put.status_code in (200, 201), put.text
    finally:
        server.stop()
