"""The serving TLS context: our certificate, and the front-proxy CA that client certificates must chain to.

kube-apiserver's aggregator presents its front-proxy client certificate; the CA it must chain
to comes from ``kube-system/extension-apiserver-authentication`` and can change while we run.
An ``SSLContext`` cannot drop a CA once loaded, so each change builds a new context, and the
listening context's SNI callback (called on every handshake, with or without SNI) moves the
connection onto the newest one. The serving certificate is reloaded the same way when its
files change on disk (cert-manager rotations). With ``--cert-dir`` and no files, a self-signed
certificate is generated there, as Kubernetes API servers do.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from metrics_adapter.errors import ConfigError
from metrics_adapter.tlspolicy import TLSPolicy

log = structlog.get_logger("metrics_adapter.tls")


@dataclass(frozen=True, slots=True)
class ServingFiles:
    cert: Path
    key: Path


def serving_files(cert_file: str | None, key_file: str | None, cert_dir: str | None) -> ServingFiles:
    """Resolve the serving certificate flags; generate a self-signed pair in ``cert_dir`` if needed."""
    if bool(cert_file) != bool(key_file):
        raise ConfigError("--tls-cert-file and --tls-private-key-file must be given together")
    if cert_file and key_file:
        files = ServingFiles(Path(cert_file), Path(key_file))
    elif cert_dir:
        d = Path(cert_dir)
        files = ServingFiles(d / "apiserver.crt", d / "apiserver.key")
        if not (files.cert.exists() and files.key.exists()):
            try:
                d.mkdir(parents=True, exist_ok=True)
                _self_signed(files)
            except OSError as exc:
                raise ConfigError(
                    f"--cert-dir {d}: cannot write a self-signed certificate: {exc.strerror or exc}"
                ) from exc
            log.warning("generated a self-signed serving certificate", cert=str(files.cert))
    else:
        raise ConfigError("give --tls-cert-file and --tls-private-key-file, or --cert-dir")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(files.cert), str(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"serving certificate {files.cert} / key {files.key}: {exc}") from exc
    return files


def _self_signed(files: ServingFiles) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"metrics-adapter@{host}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName(host),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class ServerTLS:
    """Builds and swaps the serving contexts (see the module docstring)."""

    def __init__(self, files: ServingFiles, *, verify_clients: bool, policy: TLSPolicy | None = None) -> None:
        self.files = files
        self.verify_clients = verify_clients
        self.policy = policy or TLSPolicy()
        self.client_ca_pem: str | None = None
        self._mtimes = self._stat()
        self.current = self._build()
        self.listening = self._build()
        self.listening.sni_callback = self._switch

    def _stat(self) -> tuple[float, float]:
        try:
            return (self.files.cert.stat().st_mtime, self.files.key.stat().st_mtime)
        except OSError:
            return (0.0, 0.0)

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.policy.apply(ctx)  # TLS 1.2 at least; --tls-min-version, --tls-cipher-suites
        ctx.load_cert_chain(str(self.files.cert), str(self.files.key))
        if self.verify_clients:
            if self.client_ca_pem:
                ctx.load_verify_locations(cadata=self.client_ca_pem)
            # Optional: callers without a certificate may still bring a bearer token. It is set
            # even without a CA because OpenSSL keeps the verify mode of the context a
            # connection started on when the SNI callback moves it to the current one.
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def _switch(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        sslobj.context = self.current

    def set_client_ca(self, pem: str | None) -> None:
        """Trust client certificates from ``pem`` (the requestheader CA) from the next handshake on."""
        if pem == self.client_ca_pem:
            return
        if pem:
            ssl.create_default_context(cadata=pem)  # raises on garbage before we switch
        self.client_ca_pem = pem
        self.current = self._build()

    def reload_if_changed(self) -> bool:
        mtimes = self._stat()
        if mtimes == self._mtimes:
            return False
        try:
            fresh = self._build()
        except (OSError, ssl.SSLError) as exc:
            log.error("serving certificate changed but cannot be loaded; keeping the old one", error=str(exc))
            return False
        self._mtimes, self.current = mtimes, fresh
        log.info("serving certificate reloaded", cert=str(self.files.cert))
        return True
