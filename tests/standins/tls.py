"""A throw-away certificate authority for the HTTPS stand-ins.

MSAL refuses a non-https authority, so the Entra stand-in must speak TLS, and the product must
verify it the way it verifies the real login.microsoftonline.com: against a CA bundle. This
module makes a CA and a server certificate for ``localhost`` and ``127.0.0.1`` at test time and
writes the CA to a PEM file that the product is pointed at with ``REQUESTS_CA_BUNDLE`` /
``SSL_CERT_FILE`` (or ``verify=<path>``). Verification is never turned off.

The certificates follow what strict verifiers check (Python 3.13 sets ``VERIFY_X509_STRICT``):
critical basicConstraints and keyUsage, subject and authority key identifiers, a SAN on the
leaf (the common name is not used for host matching), and serverAuth in extendedKeyUsage.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "LocalCA", "make_ca"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class LocalCA:
    """PEM files of a test CA and of one server certificate it signed."""

    ca_path: Path  # the CA certificate: what REQUESTS_CA_BUNDLE / SSL_CERT_FILE name
    cert_path: Path  # the server certificate (leaf only; the CA is the trust anchor)
    key_path: Path  # the server's private key, unencrypted
    hosts: tuple[str, ...]

    def server_context(self) -> ssl.SSLContext:
        """An SSLContext for a server presenting the certificate (TLS 1.2 or later)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext for a client that trusts only this CA, with host-name checking on."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Meeting-to-CRM test stand-ins"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def make_ca(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> LocalCA:
    """Create a CA and a server certificate for ``hosts`` under ``directory``.

    ``hosts`` are DNS names or IP addresses; add a name such as ``crm.test`` when a test serves
    the product under it through a loopback route. Keys are EC P-256 (fast to generate); the
    certificates are valid from an hour ago for two days, enough for any test session.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    not_before, not_after = now - timedelta(hours=1), now + timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Meeting-to-CRM test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = directory / "standin-ca.pem"
    cert_path = directory / "standin-server.pem"
    key_path = directory / "standin-server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return LocalCA(ca_path=ca_path, cert_path=cert_path, key_path=key_path, hosts=tuple(hosts))
