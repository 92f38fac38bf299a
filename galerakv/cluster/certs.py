"""The cluster's certificates: a private CA in ``state_dir/tls`` and the leaves it signs.

One certificate per node (its names: the node's address and name, and the
HAProxy address, since HAProxy passes TLS through and a client checks the
node's certificate against the address it dialled), one for the HTTPS API
(``http``) and one for the balancer's host (``balancer``): MaxScale's listeners
(MaxScale ends TLS itself), or, with nodes on ssh hosts, the health checks that
run beside HAProxy. ``galerakv cluster up`` makes whatever is missing; ``galerakv cluster
certs`` shows them, ``--renew`` issues new leaves (a rolling restart loads them),
``--ca-cert/--ca-key`` bring your own CA.

An existing certificate is never replaced silently: one that expired, is for
other names or was not signed by the CA stops ``up`` with the file and the
command that fixes it (:class:`~galerakv.tls.TlsError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from galerakv import tls
from galerakv.cluster.render.balancer import BALANCER_LEAF, checks_on_balancer_host
from galerakv.config import NodeSettings, Settings
from galerakv.files import write_file
from galerakv.paths import TlsPaths
from galerakv.tls import CertInfo, TlsError

HTTP = "http"
BALANCER = BALANCER_LEAF
RENEW = "run `galerakv cluster certs --renew`, then `galerakv cluster restart --rolling`"


@dataclass(frozen=True)
class NodeTls:
    """The three PEM texts a node needs."""

    ca: str
    cert: str
    key: str


def require_clause(settings: Settings) -> str:
    """What every TCP account galerakv makes requires of its connections."""
    return "REQUIRE SSL" if settings.cluster.tls else "REQUIRE NONE"


def leaf_names(settings: Settings, extra_http: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Leaf -> the names its certificate must carry, the first one its common name."""
    b = settings.balancer
    leaves: dict[str, list[str]] = {}
    for node in settings.cluster.nodes:
        names = [node.address, node.name]
        if b.kind == "haproxy":
            names.append(b.address)  # TLS passes through HAProxy: clients dial its address
        leaves[node.name] = names
    host = settings.server.host
    http = [n for n in (host, "127.0.0.1", "localhost", *extra_http) if n not in ("0.0.0.0", "::")]
    leaves[HTTP] = list(dict.fromkeys(http))
    if b.kind == "maxscale" or (b.kind == "haproxy" and checks_on_balancer_host(settings)):
        leaves[BALANCER] = [b.address]
    return leaves


def _write(path: Path, text: str, private: bool) -> None:
    write_file(path, text, 0o600 if private else 0o644, (0, 0) if os.geteuid() == 0 else None)


def import_ca(settings: Settings, cert: Path, key: Path) -> CertInfo:
    """Use your own CA: check it, copy it in, and remove the leaves the old CA signed."""
    pem, found = tls.load_cert(cert, "CA certificate")
    if not found.is_ca:
        raise TlsError(f"{cert}: not a CA certificate (basicConstraints CA:FALSE)")
    try:
        key_pem = key.read_text()
        ok = tls.key_matches(pem, key_pem)
    except OSError as exc:
        raise TlsError(f"{key}: the CA key cannot be read ({exc.strerror or exc})") from None
    except (ValueError, TypeError):
        raise TlsError(f"{key}: not a PEM private key without a passphrase") from None
    if not ok:
        raise TlsError(f"{key}: this key does not belong to the CA certificate {cert}")
    p = TlsPaths.of(settings)
    p.root.mkdir(parents=True, exist_ok=True, mode=0o755)
    _write(p.ca_cert, pem, private=False)
    _write(p.ca_key, key_pem, private=True)
    return found


def ensure(settings: Settings, report: Callable[[str], None] | None = None, *, renew: bool = False,
           days: int = tls.LEAF_DAYS, extra_http: tuple[str, ...] = ()) -> list[str]:
    """Make the CA and every leaf that is missing (every leaf with ``renew``); check the others.
    Returns the leaves issued. Nothing to do when ``cluster.tls`` is off."""
    if not settings.cluster.tls:
        return []
    say = report or (lambda _line: None)
    p = TlsPaths.of(settings)
    p.root.mkdir(parents=True, exist_ok=True, mode=0o755)
    if not p.ca_cert.exists():
        if p.ca_key.exists():
            raise TlsError(f"{p.ca_key} exists without {p.ca_cert}: put the CA's certificate back, or "
                           "remove the key to have galerakv make a new CA")
        ca_pem, ca_key = tls.issue_ca(settings.cluster.name)
        _write(p.ca_key, ca_key, private=True)
        _write(p.ca_cert, ca_pem, private=False)
        say(f"tls: made a CA for cluster {settings.cluster.name} in {p.root}")
    ca_pem, _ = tls.load_cert(p.ca_cert, "CA certificate")
    issued: list[str] = []
    for leaf, names in leaf_names(settings, extra_http).items():
        cert, key = p.cert(leaf), p.key(leaf)
        if not renew and cert.exists():
            for name in names:
                try:
                    tls.load_pair(cert, key, host=name, ca=p.ca_cert)
                except TlsError as exc:
                    raise TlsError(f"{exc}; {RENEW}") from None
            continue
        if not p.ca_key.exists():
            raise TlsError(f"{p.ca_key}: the CA's key is needed to issue {cert} (your own CA: give "
                           "`galerakv cluster certs --ca-cert FILE --ca-key FILE`, or put the leaf there)")
        cert_pem, key_pem = tls.issue_leaf(ca_pem, p.ca_key.read_text(), names[0], names, days)
        _write(key, key_pem, private=True)
        _write(cert, cert_pem, private=False)
        issued.append(leaf)
    if issued:
        say(f"tls: issued {', '.join(issued)} (valid {days} days, signed by {p.ca_cert})")
    return issued


def node_tls(settings: Settings, node: NodeSettings) -> NodeTls | None:
    """The node's CA, certificate and key, made first when missing; None with ``tls = false``."""
    if not settings.cluster.tls:
        return None
    ensure(settings)
    p = TlsPaths.of(settings)
    return NodeTls(p.ca_cert.read_text(), p.cert(node.name).read_text(), p.key(node.name).read_text())


def inventory(settings: Settings) -> list[tuple[str, Path, CertInfo | None, str]]:
    """Every certificate galerakv keeps: (leaf, path, its facts or None, the problem or '')."""
    p = TlsPaths.of(settings)
    found: list[tuple[str, Path, CertInfo | None, str]] = []
    for leaf in ["ca", *leaf_names(settings)]:
        path = p.ca_cert if leaf == "ca" else p.cert(leaf)
        if not path.exists():
            found.append((leaf, path, None, "missing"))
            continue
        try:
            found.append((leaf, path, tls.info(path.read_text()), ""))
        except (OSError, ValueError) as exc:
            found.append((leaf, path, None, f"unreadable: {exc}"))
    return found


def summary(settings: Settings) -> dict[str, object]:
    """What ``status`` says about TLS: on or off, and the certificate that expires first."""
    if not settings.cluster.tls:
        return {"enabled": False, "text": "off (cluster.tls = false): nothing is encrypted"}
    rows = inventory(settings)
    missing = [name for name, _, info, _ in rows if info is None]
    dated = [(info.not_after, name) for name, _, info, _ in rows if info is not None]
    out: dict[str, object] = {"enabled": True, "missing": missing}
    if dated:
        first, name = min(dated)
        days = (first - tls.utcnow()).total_seconds() / 86400
        out.update(soonest=name, not_after=first.isoformat(), days_left=round(days, 1))
        text = f"on; the first certificate to expire is {name}'s, on {first:%Y-%m-%d} ({days:.0f} days)"
        if days < tls.EXPIRY_WARNING_DAYS:
            text += f": renew now ({RENEW})"
    else:
        text = "on; no certificate yet (`galerakv cluster up` or `galerakv cluster certs` makes them)"
    if missing:
        text += f"; missing: {', '.join(missing)}"
    out["text"] = text
    return out
