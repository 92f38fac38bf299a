"""Certificates (galerakv/tls.py, galerakv/cluster/certs.py), the TLS parts of accounts and secrets,
and the one-line errors for a bad certificate, before anything starts."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from galerakv import config, secrets, tls
from galerakv.cluster import certs
from galerakv.cluster.operations.lifecycle import accounts_sql
from galerakv.errors import ConfigError
from galerakv.paths import TlsPaths


def cluster_settings(tmp_path: Path, **cluster: object) -> config.Settings:
    data = {"cluster": {"state_dir": str(tmp_path / "state"),
                        "nodes": [{"name": f"db{i}", "address": f"127.0.0.{10 + i}"} for i in (1, 2, 3)],
                        **cluster},
            "balancer": {"kind": "haproxy", "address": "127.0.0.10"}}
    return config.parse(data, source=tmp_path / "galerakv.toml")


def write_pair(folder: Path, names: list[str], **kw: object) -> tuple[Path, Path, Path]:
    ca, ca_key = tls.issue_ca("test")
    cert, key = tls.issue_leaf(ca, ca_key, names[0], names, **kw)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.crt").write_text(ca)
    (folder / "c.crt").write_text(cert)
    (folder / "c.key").write_text(key)
    return folder / "c.crt", folder / "c.key", folder / "ca.crt"


def test_issued_leaf_carries_its_names_and_verifies(tmp_path: Path) -> None:
    cert, key, ca = write_pair(tmp_path, ["127.0.0.11", "db1", "127.0.0.10"])
    found = tls.load_pair(cert, key, host="127.0.0.10", ca=ca)
    assert found.names == ("127.0.0.11", "127.0.0.10", "db1")
    assert found.covers("db1") and found.covers("127.0.0.11") and not found.covers("127.0.0.12")
    assert 824 < found.days_left() <= 825
    assert tls.info(ca.read_text()).is_ca and not found.is_ca
    # real TLS handshakes: Python's client trusts the CA and checks the address it dialled
    import contextlib
    import socket
    import ssl
    import threading

    server = tls.server_context(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.10", 0))
        listener.listen(2)
        port = listener.getsockname()[1]

        def accept() -> None:
            for _ in range(2):
                conn, _addr = listener.accept()
                with contextlib.suppress(OSError), server.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        ctx = tls.client_context(ca)
        with socket.create_connection(("127.0.0.10", port)) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.10") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            s.send(b"x")
        with socket.create_connection(("127.0.0.10", port)) as raw, \
                pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.12")  # not one of its names
        t.join(5)


@pytest.mark.parametrize("case", ["missing", "not-pem", "expired", "other-host", "other-ca", "other-key",
                                  "unreadable-key"])
def test_a_bad_certificate_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    cert, key, ca = write_pair(tmp_path, ["127.0.0.11"])
    host = "127.0.0.11"
    named = cert
    if case == "missing":
        cert.unlink()
        message = "does not exist"
    elif case == "not-pem":
        cert.write_text("hello\n")
        message = "not a PEM certificate"
    elif case == "expired":
        c2, k2 = _expired(ca)
        cert.write_text(c2)
        key.write_text(k2)
        message = "expired on"
    elif case == "other-host":
        host = "127.0.0.99"
        message = "is for 127.0.0.11, not for 127.0.0.99"
    elif case == "other-ca":
        ca.write_text(tls.issue_ca("another")[0])
        message = f"was not signed by the CA in {ca}"
    elif case == "other-key":
        key.write_text(tls.issue_ca("k")[1])
        named = key
        message = "does not belong to the certificate"
    else:
        key.write_text("garbage")
        named = key
        message = "not a PEM private key"
    with pytest.raises(tls.TlsError) as err:
        tls.load_pair(cert, key, host=host, ca=ca)
    text = str(err.value)
    assert "\n" not in text and str(named) in text and message in text, text


def _expired(ca: Path) -> tuple[str, str]:
    """A leaf signed by a fresh CA (written over ``ca``) that expired nine days ago."""
    long_ago = tls.utcnow() - dt.timedelta(days=10)
    ca_pem, ca_key = tls.issue_ca("old", now=long_ago)
    ca.write_text(ca_pem)
    return tls.issue_leaf(ca_pem, ca_key, "a", ["127.0.0.11"], days=1, now=long_ago)


def test_ensure_makes_what_is_missing_and_checks_the_rest(tmp_path: Path) -> None:
    s = cluster_settings(tmp_path)
    lines: list[str] = []
    issued = certs.ensure(s, lines.append)
    assert issued == ["db1", "db2", "db3", "http"]
    p = TlsPaths.of(s)
    assert p.ca_key.stat().st_mode & 0o777 == 0o600 and p.key("db1").stat().st_mode & 0o777 == 0o600
    assert p.ca_cert.stat().st_mode & 0o777 == 0o644
    db1 = tls.load_pair(p.cert("db1"), p.key("db1"), host="127.0.0.10", ca=p.ca_cert)  # HAProxy's address
    assert set(db1.names) == {"127.0.0.11", "127.0.0.10", "db1"}
    assert certs.ensure(s) == []  # nothing to do the second time
    before = p.cert("db2").read_text()
    assert certs.ensure(s, renew=True, days=20) == ["db1", "db2", "db3", "http"]
    assert p.cert("db2").read_text() != before
    assert 19 < tls.info(p.cert("db2").read_text()).days_left() <= 20
    # a node moved to another address: its certificate no longer fits, and nothing is replaced
    moved = config.parse({**_data(s), "cluster": {**_data(s)["cluster"], "nodes": [
        {"name": "db1", "address": "127.0.0.11"}, {"name": "db2", "address": "127.0.0.42"},
        {"name": "db3", "address": "127.0.0.13"}]}}, source=tmp_path / "galerakv.toml")
    kept = p.cert("db2").read_text()
    with pytest.raises(tls.TlsError, match=r"db2\.crt: the certificate is for .* not for 127\.0\.0\.42; run "
                                           r"`galerakv cluster certs --renew`"):
        certs.ensure(moved)
    assert p.cert("db2").read_text() == kept
    assert certs.summary(s)["enabled"] is True and "20 days" in str(certs.summary(s)["text"])


def _data(s: config.Settings) -> dict[str, object]:
    return {"cluster": {"state_dir": str(s.cluster.state_dir),
                        "nodes": [{"name": n.name, "address": n.address} for n in s.cluster.nodes]},
            "balancer": {"kind": "haproxy", "address": "127.0.0.10"}}


def test_your_own_ca_must_be_a_ca_with_its_key(tmp_path: Path) -> None:
    s = cluster_settings(tmp_path)
    leaf, leaf_key, ca = write_pair(tmp_path / "own", ["x"])
    with pytest.raises(tls.TlsError, match="not a CA certificate"):
        certs.import_ca(s, leaf, leaf_key)
    with pytest.raises(tls.TlsError, match="does not belong to the CA certificate"):
        certs.import_ca(s, ca, leaf_key)
    ca_pem, ca_key = tls.issue_ca("mine")
    (tmp_path / "mine.crt").write_text(ca_pem)
    (tmp_path / "mine.key").write_text(ca_key)
    certs.import_ca(s, tmp_path / "mine.crt", tmp_path / "mine.key")
    certs.ensure(s, renew=True)
    p = TlsPaths.of(s)
    assert tls.signed_by(p.cert("db3").read_text(), ca_pem)


def test_tls_off_makes_nothing(tmp_path: Path) -> None:
    s = cluster_settings(tmp_path, tls=False)
    assert certs.ensure(s) == [] and not TlsPaths.of(s).root.exists()
    assert certs.summary(s)["enabled"] is False


def test_accounts_require_ssl_and_the_admin_has_its_own_password(tmp_path: Path) -> None:
    s = cluster_settings(tmp_path)
    found = secrets.generate(s)
    sql = accounts_sql(s, found)
    for user in ("galerakv", "galerakv_monitor", "galerakv_admin"):
        assert f"ALTER USER '{user}'@'127.%' IDENTIFIED BY" in sql
    assert sql.count("REQUIRE SSL") == 6 and "REQUIRE NONE" not in sql
    assert found.admin_tcp.password not in (found.admin.password, "")
    assert f"'galerakv_admin'@'127.%' IDENTIFIED BY '{found.admin_tcp.password}'" in sql
    plain = accounts_sql(cluster_settings(tmp_path, tls=False), found)
    assert "REQUIRE SSL" not in plain and plain.count("REQUIRE NONE") == 6
    # on real hosts the admin account is for the balancer's address only
    hosts = config.parse({**_data(s), "cluster": {**_data(s)["cluster"], "transport": "ssh",
                                                    "nodes": [{"name": "db1", "address": "10.0.0.1"}]}},
                         source=tmp_path / "galerakv.toml")
    remote = accounts_sql(hosts, found)
    assert "'galerakv_admin'@'127.0.0.10'" in remote and "DROP USER IF EXISTS 'galerakv_admin'@'%'" in remote
    assert "'galerakv'@'%'" in remote


def test_an_older_secrets_file_gets_the_admin_account_its_own_password(tmp_path: Path) -> None:
    s = cluster_settings(tmp_path)
    old = secrets.generate(s)
    path = tmp_path / "state" / "secrets.toml"
    text = secrets.dumps(old)
    secrets.write_private(path, text[:text.index("[admin_tcp]")])
    assert secrets.load(path).admin_tcp.password == ""  # type: ignore[union-attr]
    loaded, created = secrets.ensure(s)
    assert not created and loaded.app == old.app and loaded.admin_tcp.password
    assert secrets.load(path).admin_tcp == loaded.admin_tcp  # type: ignore[union-attr]


def test_https_needs_both_files() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"server": {"tls_cert": "a.crt"}})
    assert "server.tls_key" in str(err.value) and "server.tls_cert is set" in str(err.value)


def test_serve_refuses_a_bad_certificate_before_listening(tmp_path: Path) -> None:
    cert, key, _ = write_pair(tmp_path, ["127.0.0.1"])
    key.write_text(tls.issue_ca("k")[1])
    toml = tmp_path / "galerakv.toml"
    toml.write_text(f'[server]\nport = 18493\nsqlite_path = "{tmp_path / "kv.sqlite3"}"\n'
                    f'tls_cert = "{cert.name}"\ntls_key = "{key.name}"\n')
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "serve", "--config", str(toml)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{key}: this private key does not belong to the certificate" in lines[0], lines


@pytest.mark.parametrize(("args", "cluster", "message"), [
    (["--ca-cert", "ca.pem"], {}, "--ca-cert and --ca-key go together"),
    ([], {"tls": False}, "cluster.tls is false"),
    (["--days", "0"], {}, "Invalid value for '--days'"),
    (["--ca-cert", "nope.pem", "--ca-key", "nope.key"], {}, "nope.pem: the CA certificate does not exist"),
])
def test_certs_bad_input_is_one_message_and_writes_nothing(tmp_path: Path, args: list[str],
                                                           cluster: dict[str, object], message: str) -> None:
    s = cluster_settings(tmp_path, **cluster)
    toml = tmp_path / "galerakv.toml"
    nodes = "".join(f'[[cluster.nodes]]\nname = "{n.name}"\naddress = "{n.address}"\n' for n in s.cluster.nodes)
    toml.write_text(f'[cluster]\nstate_dir = "state"\ntls = {str(s.cluster.tls).lower()}\n{nodes}')
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "cluster", "certs", "--config", str(toml),
                             *args], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "state" / "tls").exists()


def test_certs_shows_every_certificate_as_json(tmp_path: Path) -> None:
    toml = tmp_path / "galerakv.toml"
    toml.write_text('[cluster]\nstate_dir = "state"\n[[cluster.nodes]]\nname = "db1"\naddress = "127.0.0.11"\n'
                    '[balancer]\nkind = "maxscale"\naddress = "127.0.0.10"\n')
    result = subprocess.run([sys.executable, "-m", "galerakv.cli.main", "cluster", "certs", "--config", str(toml),
                             "--json", "--http-name", "kv.example.org"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["issued"] == ["db1", "http", "balancer"]
    by_name = {c["name"]: c for c in found["certificates"]}
    assert by_name["balancer"]["names"] == ["127.0.0.10"]  # MaxScale ends TLS on its own address
    assert "kv.example.org" in by_name["http"]["names"] and by_name["db1"]["days_left"] > 800
