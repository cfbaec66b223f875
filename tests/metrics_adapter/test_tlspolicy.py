"""--tls-min-version and --tls-cipher-suites on the serving context: real handshakes in memory."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from metrics_adapter.errors import ConfigError
from metrics_adapter.tls import ServerTLS, serving_files
from metrics_adapter.tlspolicy import parse


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, str]:
    """(protocol, cipher) agreed by a client and a server context over memory BIOs."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, end in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            cipher = c.cipher()
            assert cipher is not None
            return str(c.version()), cipher[0]
    raise AssertionError("handshake did not finish")


def _client(cert: Path, maximum: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def test_min_version_13_refuses_a_tls12_client(tmp_path: Path) -> None:
    """VersionTLS13: a client capped at TLS 1.2 fails the handshake; a TLS 1.3 client gets 1.3."""
    files = serving_files(None, None, str(tmp_path))
    policy, notes = parse(None, "VersionTLS13")
    assert notes == []
    server = ServerTLS(files, verify_clients=False, policy=policy).current
    assert _handshake(server, _client(files.cert))[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        _handshake(server, _client(files.cert, ssl.TLSVersion.TLSv1_2))


def test_cipher_suites_limit_tls12(tmp_path: Path) -> None:
    """Only the named TLS 1.2 suites are offered (the generated key is ECDSA)."""
    files = serving_files(None, None, str(tmp_path))
    policy, _ = parse("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_AES_128_GCM_SHA256", "VersionTLS12")
    server = ServerTLS(files, verify_clients=False, policy=policy).current
    assert _handshake(server, _client(files.cert, ssl.TLSVersion.TLSv1_2)) == (
        "TLSv1.2",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    )
    with pytest.raises(ssl.SSLError):
        _handshake(server, _client(files.cert, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"))


def test_old_versions_are_raised_to_12_and_named() -> None:
    """VersionTLS10/11 keep the TLS 1.2 floor and say so; unknown names are refused."""
    policy, notes = parse(None, "VersionTLS11")
    assert policy.minimum is ssl.TLSVersion.TLSv1_2
    assert notes == ["--tls-min-version=VersionTLS11 (TLS 1.2 is the floor here)"]
    with pytest.raises(ConfigError, match="unknown cipher suite 'TLS_RSA_WITH_RC4_128_SHA'"):
        parse("TLS_RSA_WITH_RC4_128_SHA", None)
