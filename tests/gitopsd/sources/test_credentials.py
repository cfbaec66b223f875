"""Secrets read with Flux's keys; combinations that cannot work are refused naming secret and key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from e2e import pki
from e2e.gitserver import new_ssh_key
from gitopsd.sources import Credentials, InvalidCredentials, parse_url

IDENTITY, PUBLIC = new_ssh_key()
KNOWN_HOSTS = f"[127.0.0.1]:2222 {PUBLIC}\n".encode()
CA, _ = pki.new_ca("test-ca")
CA_PEM = CA.public_bytes(serialization.Encoding.PEM)


def _encrypted_key() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )


def test_basic_auth_with_ca() -> None:
    """username + password + ca.crt read as https credentials."""
    creds = Credentials.from_secret({"username": b"bot", "password": b"pw\n", "ca.crt": CA_PEM}, "git")
    assert (creds.username, creds.password, creds.ca_cert) == ("bot", "pw", CA_PEM)
    creds.check_for(parse_url("https://h/x.git"))


def test_bearer_token() -> None:
    """bearerToken alone is enough for https."""
    creds = Credentials.from_secret({"bearerToken": b"tok"}, "git")
    assert creds.bearer_token == "tok"
    creds.check_for(parse_url("https://h/x.git"))


def test_ssh_identity_and_known_hosts() -> None:
    """identity + known_hosts read as ssh credentials (a missing final newline is added)."""
    creds = Credentials.from_secret({"identity": IDENTITY.rstrip(b"\n"), "known_hosts": KNOWN_HOSTS}, "deploy-key")
    assert creds.identity is not None and creds.identity.endswith(b"\n")
    creds.check_for(parse_url("ssh://git@127.0.0.1:2222/x.git"))
    creds.check_for(parse_url("git@127.0.0.1:x.git"))


def test_unrelated_keys_are_ignored() -> None:
    """Keys other tools put in the same Secret do not matter (as in Flux)."""
    creds = Credentials.from_secret({"username": b"u", "password": b"p", "note": b"\xff"}, "git")
    assert creds.username == "u"


def test_secrets_never_in_repr() -> None:
    """repr() (tracebacks, logs) shows no password, token or key."""
    creds = Credentials.from_secret({"username": b"bot", "password": b"hunter2"}, "git")
    token = Credentials.from_secret({"bearerToken": b"tok-123456"}, "git")
    ssh = Credentials.from_secret({"identity": IDENTITY, "known_hosts": KNOWN_HOSTS}, "git")
    assert "hunter2" not in repr(creds)
    assert "tok-123456" not in repr(token)
    assert "PRIVATE" not in repr(ssh)


def test_fingerprint_tells_credentials_apart_without_showing_them() -> None:
    """Caches key by a digest: equal secrets match, different ones do not."""
    a = Credentials.from_secret({"username": b"u", "password": b"p1"}, "a")
    b = Credentials.from_secret({"username": b"u", "password": b"p1"}, "b")
    c = Credentials.from_secret({"username": b"u", "password": b"p2"}, "a")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert "p1" not in a.fingerprint


BAD_SECRETS = [
    ({}, "has none of the keys"),
    ({"unrelated": b"x"}, "has none of the keys"),
    ({"username": b"u"}, "key 'password' is required with 'username'"),
    ({"password": b"p"}, "key 'username' is required with 'password'"),
    ({"username": b"u", "password": b"p", "bearerToken": b"t"}, "give either 'bearerToken' or 'username'/'password'"),
    ({"username": b"u", "password": b""}, "key 'password' is empty"),
    ({"username": b"\xff", "password": b"p"}, "key 'username' is not UTF-8"),
    ({"username": b"u", "password": b"a\nb"}, "key 'password' must be one line"),
    ({"identity": b"not a key", "known_hosts": KNOWN_HOSTS}, "key 'identity' is not an ssh private key"),
    ({"identity": _encrypted_key(), "known_hosts": KNOWN_HOSTS}, "key 'identity' is passphrase-protected"),
    ({"identity": IDENTITY, "password": b"p", "known_hosts": KNOWN_HOSTS}, "would be a passphrase"),
    ({"identity": IDENTITY, "known_hosts": b"garbage"}, "key 'known_hosts' needs lines"),
    ({"identity": IDENTITY, "known_hosts": b"\n# only a comment\n"}, "key 'known_hosts' needs lines"),
    ({"username": b"u", "password": b"p", "ca.crt": b"-----BEGIN NOPE"}, "key 'ca.crt' is not a PEM certificate"),
    ({"username": b"u", "password": b"p", "caFile": b"junk"}, "key 'caFile' is not a PEM certificate"),
]


@pytest.mark.parametrize(("data", "said"), BAD_SECRETS)
def test_bad_secrets(data: dict[str, bytes], said: str) -> None:
    """A secret whose keys cannot work is refused, naming the secret and the key."""
    with pytest.raises(InvalidCredentials) as info:
        Credentials.from_secret(data, "git-creds")
    message = str(info.value)
    assert "secret 'git-creds'" in message
    assert said in message
    assert info.value.reason == "InvalidCredentials"
    for key in ("password", "bearerToken", "identity"):  # known_hosts is public and may be quoted
        if len(data.get(key, b"")) > 3:
            assert data[key].decode(errors="replace") not in message


TRANSPORT_MISMATCH = [
    ({"username": b"u", "password": b"p"}, "ssh://git@h/x.git", "ssh needs 'identity' and 'known_hosts'"),
    ({"bearerToken": b"t"}, "git@h:x.git", "gives 'bearerToken' for an ssh URL"),
    ({"identity": IDENTITY}, "ssh://git@h/x.git", "key 'known_hosts' is required for ssh URLs"),
    ({"known_hosts": KNOWN_HOSTS}, "ssh://git@h/x.git", "key 'identity' (an ssh private key) is required"),
    ({"identity": IDENTITY, "known_hosts": KNOWN_HOSTS}, "https://h/x.git", "gives an ssh 'identity' for an https URL"),
    ({"username": b"u", "password": b"p"}, "http://h/x.git", "refusing to send credentials over plain http"),
    ({"username": b"u", "password": b"p"}, "file:///srv/x.git", "file:// URL, which takes none"),
]


@pytest.mark.parametrize(("data", "url", "said"), TRANSPORT_MISMATCH)
def test_credentials_that_do_not_fit_the_url(data: dict[str, bytes], url: str, said: str) -> None:
    """Credentials for the wrong transport are refused before git runs, naming the secret."""
    creds = Credentials.from_secret(data, "git-creds")
    with pytest.raises(InvalidCredentials) as info:
        creds.check_for(parse_url(url))
    assert "secret 'git-creds'" in str(info.value)
    assert said in str(info.value)
