"""The target cluster's client on real sockets: refused, black-holed, wrong or expired CA, embedded credentials.

No API server is needed for these: a closed port, a listener that never answers and a small
aiohttp TLS server stand for a dead cluster, a black-holed one and a live one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from e2e import pki
from gitopsd.clusters import ClusterUnreachable
from gitopsd.clusters.aside import running
from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.kube import TargetKube
from gitopsd.clusters.kubeconfig import parse

TOKEN = "target-token-0123456789"
CLUSTER = "ops/cluster-a"


def kubeconfig(
    server: str, ca_pem: bytes | None = None, token: str = TOKEN, cert: bytes = b"", key: bytes = b""
) -> bytes:
    cluster = f"server: {server}"
    if ca_pem:
        cluster += f", certificate-authority-data: {base64.b64encode(ca_pem).decode()}"
    user = f"token: {TOKEN}"
    if cert:
        user += f", client-certificate-data: {base64.b64encode(cert).decode()}"
        user += f", client-key-data: {base64.b64encode(key).decode()}"
    text = f"""
current-context: t
contexts: [{{name: t, context: {{cluster: c, user: u}}}}]
clusters: [{{name: c, cluster: {{{cluster}}}}}]
users: [{{name: u, user: {{{user}}}}}]
"""
    return text.encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(raw: bytes, **options: Any) -> TargetKube:
    return TargetKube(parse(raw, "Secret ops/cluster-a key 'value'"), cluster=CLUSTER, **options)


async def test_a_refused_cluster_is_unreachable_by_name_then_its_circuit_fails_fast() -> None:
    """Connection refused: ClusterUnreachable naming the cluster; after 3 failures no request is even made."""
    kube = client(kubeconfig(f"https://127.0.0.1:{free_port()}"), timeout=1.0, connect_timeout=0.5,
                  breaker=Breaker(threshold=3, base=60.0))  # fmt: skip
    async with kube:
        for _ in range(3):
            with pytest.raises(ClusterUnreachable) as caught:
                await kube.get("/api")
            assert caught.value.reason == "ClusterUnreachable" and caught.value.transient
            assert f"cluster {CLUSTER}: unreachable" in str(caught.value)
        assert kube.breaker.state == "open"
        made = kube.stats.total
        with pytest.raises(ClusterUnreachable, match="circuit open"):
            await kube.get("/api")
        assert kube.stats.total == made  # refused by the breaker, no request
        assert TOKEN not in str(caught.value)


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[int]:
    """A listener that accepts connections and never sends a byte."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_black_holed_cluster_is_bounded_by_the_request_timeout() -> None:
    """TCP accepted, nothing answered: the call ends with ClusterUnreachable, not never."""
    async with black_hole() as port:
        kube = client(kubeconfig(f"https://127.0.0.1:{port}"), timeout=0.5, connect_timeout=0.3)
        async with kube:
            with pytest.raises(ClusterUnreachable, match=f"cluster {CLUSTER}"):
                await asyncio.wait_for(kube.get("/api"), 30)  # the guard only: the client's own timeout ends it


async def test_a_request_to_a_suspect_cluster_waits_aside() -> None:
    """Once a call failed, the next one runs inside the run's Aside (the daemon's worker is freed)."""
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def aside() -> AsyncIterator[None]:
        entered.append("aside")
        yield

    kube = client(kubeconfig(f"https://127.0.0.1:{free_port()}"), timeout=0.5, connect_timeout=0.3)
    async with kube:
        with running(aside):
            with pytest.raises(ClusterUnreachable):
                await kube.get("/api")
            assert entered == []  # healthy until then: no aside
            with pytest.raises(ClusterUnreachable):
                await kube.get("/api")
            assert entered == ["aside"]


class Tls:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM bytes."""

    def __init__(self) -> None:
        ca, ca_key = pki.new_ca("target-ca")
        server, server_key = pki.issue(ca, ca_key, "target", server=True, ips=("127.0.0.1",))
        user, user_key = pki.issue(ca, ca_key, "deployer", client=True)
        self.ca = _pem(ca)
        self.server, self.server_key = _pem(server), _key(server_key)
        self.user, self.user_key = _pem(user), _key(user_key)


def _pem(cert: Any) -> bytes:
    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def tls() -> Tls:
    return Tls()


@contextlib.contextmanager
def _files(tmp: Path, tls: Tls) -> Iterator[ssl.SSLContext]:
    (tmp / "s.crt").write_bytes(tls.server)
    (tmp / "s.key").write_bytes(tls.server_key)
    (tmp / "ca.crt").write_bytes(tls.ca)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "s.crt", tmp / "s.key")
    ctx.load_verify_locations(tmp / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    yield ctx


@contextlib.asynccontextmanager
async def api_server(tmp: Path, tls: Tls) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def api(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append({"authorization": request.headers.get("Authorization"), "client": bool(peer)})
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    app = web.Application()
    app.router.add_get("/api", api)
    runner = web.AppRunner(app)
    await runner.setup()
    with _files(tmp, tls) as ctx:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        await web.SockSite(runner, sock, ssl_context=ctx).start()
        try:
            yield port, seen
        finally:
            await runner.cleanup()


async def test_embedded_ca_token_and_client_certificate_reach_the_server(tmp_path: Path, tls: Tls) -> None:
    """certificate-authority-data verifies the server; the token and the client certificate are sent."""
    async with api_server(tmp_path, tls) as (port, seen):
        raw = kubeconfig(f"https://127.0.0.1:{port}", tls.ca, cert=tls.user, key=tls.user_key)
        async with client(raw) as kube:
            assert (await kube.get("/api"))["versions"] == ["v1"]
        assert seen == [{"authorization": f"Bearer {TOKEN}", "client": True}]
        assert kube.breaker.state == "closed"


async def test_a_wrong_ca_is_a_certificate_condition_naming_the_cluster(tmp_path: Path, tls: Tls) -> None:
    """Another CA than the server's: ClusterCertificateInvalid (Stalled), naming the cluster, no token shown."""
    other = Tls()
    async with api_server(tmp_path, tls) as (port, seen):
        async with client(kubeconfig(f"https://127.0.0.1:{port}", other.ca), timeout=3.0) as kube:
            with pytest.raises(ClusterUnreachable) as caught:
                await kube.get("/api")
        assert seen == []
    error = caught.value
    assert error.reason == "ClusterCertificateInvalid" and not error.transient
    assert f"cluster {CLUSTER}: TLS" in str(error) and "certificate" in str(error)
    assert "fix certificate-authority-data" in str(error)
    assert TOKEN not in str(error)


def _expired(cert: x509.Certificate, signer: Any) -> x509.Certificate:
    """``cert`` signed again by ``signer`` with a validity that ended yesterday (same names, key, extensions)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(signer, hashes.SHA256())


def expired_tls(which: str) -> Tls:
    """A ``Tls`` whose server certificate (``which="server"``) or CA (``which="ca"``) has expired."""
    tls = Tls()
    ca, ca_key = pki.new_ca("target-ca")
    server, server_key = pki.issue(ca, ca_key, "target", server=True, ips=("127.0.0.1",))
    if which == "server":
        server = _expired(server, ca_key)
    else:
        ca = _expired(ca, ca_key)
    tls.ca, tls.server, tls.server_key = _pem(ca), _pem(server), _key(server_key)
    return tls


@pytest.mark.parametrize("which", ["server", "ca"])
async def test_an_expired_certificate_is_a_certificate_condition_naming_the_cluster(tmp_path: Path, which: str) -> None:
    """An expired server certificate or CA: ClusterCertificateInvalid (Stalled), naming the cluster and the
    expiry, no token shown, and the server never receives a request."""
    tls = expired_tls(which)
    async with api_server(tmp_path, tls) as (port, seen):
        async with client(kubeconfig(f"https://127.0.0.1:{port}", tls.ca), timeout=3.0) as kube:
            with pytest.raises(ClusterUnreachable) as caught:
                await kube.get("/api")
        assert seen == []
    error = caught.value
    assert error.reason == "ClusterCertificateInvalid" and not error.transient
    assert f"cluster {CLUSTER}: TLS" in str(error) and "certificate has expired" in str(error)
    assert "renew the expired certificate" in str(error)
    assert TOKEN not in str(error)
