"""Certificates: issue them (a private CA and its leaves) and check them, with ``cryptography``.

Used by the toolkit (``galerakv cluster certs``, ``up``, the doctor) and the server
(HTTPS, TLS to MariaDB) alike, so it imports nothing else of galerakv but the
error tree. Everything here is a pure function of PEM text and the time, except
:func:`load_pair` and :func:`load_cert`, which read files and say which one is
wrong in one line (:class:`TlsError`).

Keys are ECDSA P-256: small, fast to make and to handshake with, and accepted by
every component galerakv runs (MariaDB's OpenSSL, Galera's asio, stunnel, socat,
HAProxy, MaxScale, Python's ssl). Leaves carry both the server and the client
extended key usage: Galera nodes use one certificate for both ends of gcomm.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from galerakv.errors import GalerakvError

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity browsers and most TLS clients accept for a leaf
EXPIRY_WARNING_DAYS = 30


class TlsError(GalerakvError):
    """A certificate or key that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class CertInfo:
    """What galerakv reads from a certificate."""

    subject: str
    issuer: str
    not_before: _dt.datetime
    not_after: _dt.datetime
    names: tuple[str, ...]  # subjectAltName: DNS names and IP addresses, as text
    serial: int
    is_ca: bool
    fingerprint: str  # SHA-256 of the DER, hex

    def days_left(self, now: _dt.datetime | None = None) -> float:
        return (self.not_after - (now or utcnow())).total_seconds() / 86400

    def covers(self, host: str) -> bool:
        """Whether ``host`` (an address or a DNS name) is one of the certificate's names."""
        try:
            wanted = str(ipaddress.ip_address(host))
        except ValueError:
            wanted = host.lower()
        return wanted in self.names


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


# --------------------------------------------------------------------------- issuing


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issue_ca(name: str, days: int = CA_DAYS, now: _dt.datetime | None = None) -> tuple[str, str]:
    """A new self-signed CA: (certificate PEM, key PEM)."""
    now = now or utcnow()
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "galerakv"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"galerakv CA {name}")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_leaf(ca_cert_pem: str, ca_key_pem: str, common_name: str, names: list[str],
               days: int = LEAF_DAYS, now: _dt.datetime | None = None) -> tuple[str, str]:
    """A certificate for ``names`` (addresses or DNS names) signed by the CA: (cert PEM, key PEM)."""
    now = now or utcnow()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | _rsa_type()):
        raise TlsError("the CA key is neither an EC nor an RSA key; galerakv signs with either")
    key = _key()
    not_after = min(now + _dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    unique = list(dict.fromkeys(names))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "galerakv"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in unique]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return _cert_pem(cert), _key_pem(key)


def _rsa_type() -> type:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.RSAPrivateKey


# --------------------------------------------------------------------------- reading and checking


def info(pem: str) -> CertInfo:
    """The first certificate of ``pem``; ValueError when there is none."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    return _info(cert)


def _info(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple([str(n) for n in san.get_values_for_type(x509.IPAddress)]
                      + [n.lower() for n in san.get_values_for_type(x509.DNSName)])
    except x509.ExtensionNotFound:
        names = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, names=names,
                    serial=cert.serial_number, is_ca=is_ca,
                    fingerprint=cert.fingerprint(hashes.SHA256()).hex())


def signed_by(cert_pem: str, ca_pem: str) -> bool:
    """Whether the certificate was signed by (one of) the CA certificate(s) in ``ca_pem``."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    for ca in x509.load_pem_x509_certificates(ca_pem.encode()):
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def key_matches(cert_pem: str, key_pem: str) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(serialization.Encoding.PEM, pub)
                == key.public_key().public_bytes(serialization.Encoding.PEM, pub))


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise TlsError(f"{path}: the {what} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TlsError(f"{path}: the {what} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def load_cert(path: Path, what: str = "certificate", now: _dt.datetime | None = None) -> tuple[str, CertInfo]:
    """Read and parse a certificate file; TlsError (naming the file) when it is missing,
    unreadable, not a certificate, not yet valid or expired."""
    pem = _read(path, what)
    try:
        found = info(pem)
    except ValueError:
        raise TlsError(f"{path}: the {what} is not a PEM certificate") from None
    now = now or utcnow()
    if found.not_after <= now:
        raise TlsError(f"{path}: the {what} expired on {found.not_after:%Y-%m-%d %H:%M} UTC")
    if found.not_before > now:
        raise TlsError(f"{path}: the {what} is valid only from {found.not_before:%Y-%m-%d %H:%M} UTC")
    return pem, found


def load_pair(cert: Path, key: Path, *, host: str | None = None, ca: Path | None = None,
              now: _dt.datetime | None = None) -> CertInfo:
    """Check a certificate and its key before anything uses them: both readable, the key the
    certificate's, not expired, for ``host`` (when given) and signed by ``ca`` (when given)."""
    pem, found = load_cert(cert, now=now)
    key_pem = _read(key, "private key")
    try:
        matches = key_matches(pem, key_pem)
    except (ValueError, TypeError):
        raise TlsError(f"{key}: not a PEM private key without a passphrase") from None
    if not matches:
        raise TlsError(f"{key}: this private key does not belong to the certificate {cert}")
    if host is not None and host not in ("0.0.0.0", "::") and not found.covers(host):
        raise TlsError(f"{cert}: the certificate is for {', '.join(found.names) or found.subject}, "
                       f"not for {host}")
    if ca is not None:
        ca_pem, _ = load_cert(ca, "CA certificate", now)
        if not signed_by(pem, ca_pem):
            raise TlsError(f"{cert}: the certificate was not signed by the CA in {ca}")
    return found


def client_context(ca: Path) -> ssl.SSLContext:
    """A client context that trusts only ``ca`` and checks the peer's name (TLS 1.2 at least)."""
    load_cert(ca, "CA certificate")
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
