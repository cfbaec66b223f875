"""Certificates and keys for one local cluster.

A throwaway PKI laid out the way kubeadm does it (``ca``, ``apiserver``, ``sa``,
``front-proxy-ca``, ``front-proxy-client``, plus an admin client in ``system:masters``),
so the aggregation layer and service-account tokens behave as in a real cluster.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ClusterPKI:
    """Paths of every PEM file a cluster's components read."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    front_proxy_ca_cert: Path
    front_proxy_client_cert: Path
    front_proxy_client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def new_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    org: str | None = None,
    server: bool = False,
    client: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Sign a leaf certificate for a server, a client, or both."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Read back a CA written by :func:`generate`, e.g. to sign a test server's certificate."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def write_pair(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """Write ``stem.crt`` and ``stem.key``; return their paths."""
    crt, k = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_cert(crt, cert)
    _write_key(k, key)
    return crt, k


def generate(directory: Path, service_ip: str) -> ClusterPKI:
    """Create the whole PKI for one cluster in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = new_ca("gitopsd-e2e-ca")
    ca_crt_path, ca_key_path = write_pair(directory, "ca", ca_cert, ca_key)

    api_cert, api_key = issue(
        ca_cert,
        ca_key,
        "kube-apiserver",
        server=True,
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", "::1", service_ip),
    )
    api_crt_path, api_key_path = write_pair(directory, "apiserver", api_cert, api_key)

    admin_cert, admin_key = issue(ca_cert, ca_key, "kubernetes-admin", org="system:masters", client=True)
    admin_crt_path, admin_key_path = write_pair(directory, "admin", admin_cert, admin_key)

    # Service-account tokens are signed with RSA, which every token consumer accepts.
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path, sa_pub_path = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_key_path, sa)
    sa_pub_path.write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    fp_ca_cert, fp_ca_key = new_ca("gitopsd-e2e-front-proxy-ca")
    fp_ca_path, _ = write_pair(directory, "front-proxy-ca", fp_ca_cert, fp_ca_key)
    fp_cert, fp_key = issue(fp_ca_cert, fp_ca_key, "front-proxy-client", client=True)
    fp_crt_path, fp_key_path = write_pair(directory, "front-proxy-client", fp_cert, fp_key)

    return ClusterPKI(
        ca_cert=ca_crt_path,
        ca_key=ca_key_path,
        apiserver_cert=api_crt_path,
        apiserver_key=api_key_path,
        admin_cert=admin_crt_path,
        admin_key=admin_key_path,
        sa_key=sa_key_path,
        sa_pub=sa_pub_path,
        front_proxy_ca_cert=fp_ca_path,
        front_proxy_client_cert=fp_crt_path,
        front_proxy_client_key=fp_key_path,
    )
