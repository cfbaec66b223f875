"""The cluster PKI has the names and usages the components check."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from e2e import pki


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_apiserver_certificate_covers_loopback_and_service_names(tmp_path: Path) -> None:
    """The serving cert is valid for localhost, 127.0.0.1, ::1, the service IP and kubernetes.default.svc."""
    tls = pki.generate(tmp_path, "fd00:10:96::1")
    cert = _load(tls.apiserver_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(san.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address(i) for i in ("127.0.0.1", "::1", "fd00:10:96::1")} <= set(
        san.get_values_for_type(x509.IPAddress)
    )
    assert cert.issuer == _load(tls.ca_cert).subject


def test_admin_is_a_system_masters_client_and_front_proxy_has_its_own_ca(tmp_path: Path) -> None:
    """Admin authenticates as system:masters; the front-proxy client chains to the front-proxy CA only."""
    tls = pki.generate(tmp_path, "10.96.0.1")
    admin = _load(tls.admin_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    eku = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    proxy = _load(tls.front_proxy_client_cert)
    assert proxy.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "front-proxy-client"
    assert proxy.issuer == _load(tls.front_proxy_ca_cert).subject
    assert proxy.issuer != _load(tls.ca_cert).subject
    assert oct(tls.admin_key.stat().st_mode & 0o777) == "0o600"
