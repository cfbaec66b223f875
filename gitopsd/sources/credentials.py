"""Credentials from an Environment's ``secretRef``, read with Flux's key names.

A user moving from Flux keeps their Secret: ``username`` + ``password`` (or ``bearerToken``)
for https, ``identity`` (an ssh private key) + ``known_hosts`` for ssh, ``ca.crt`` for an
https server signed by a private CA. Other keys are ignored, as Flux does. A combination that
cannot work is refused here, naming the secret and the key, before git ever runs.

The values are secrets: the dataclass never shows them in ``repr``, and ``fingerprint`` lets
caches tell credentials apart without keeping them as readable keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from gitopsd.sources.errors import InvalidCredentials
from gitopsd.sources.urls import GitURL

USERNAME, PASSWORD, BEARER_TOKEN = "username", "password", "bearerToken"
IDENTITY, KNOWN_HOSTS, CA_CERT = "identity", "known_hosts", "ca.crt"
_CA_ALIASES = (CA_CERT, "caFile")  # "caFile" is Flux's older name
KNOWN_KEYS = (USERNAME, PASSWORD, BEARER_TOKEN, IDENTITY, KNOWN_HOSTS, *_CA_ALIASES)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one secret offers for reaching a repository."""

    secret_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    identity: bytes | None = field(default=None, repr=False)
    known_hosts: bytes | None = field(default=None, repr=False)
    ca_cert: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], secret_name: str) -> Credentials:
        """Read a Secret's (already base64-decoded) data; ``InvalidCredentials`` names a bad key."""

        def text(key: str) -> str | None:
            raw = data.get(key)
            if raw is None:
                return None
            try:
                value = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InvalidCredentials(f"secret {secret_name!r}: key {key!r} is not UTF-8 text") from None
            if not value:
                raise InvalidCredentials(f"secret {secret_name!r}: key {key!r} is empty")
            if "\n" in value or "\r" in value:
                raise InvalidCredentials(f"secret {secret_name!r}: key {key!r} must be one line")
            return value

        if not any(key in data for key in KNOWN_KEYS):
            raise InvalidCredentials(
                f"secret {secret_name!r} has none of the keys git credentials use "
                f"({USERNAME}/{PASSWORD}, {BEARER_TOKEN}, {IDENTITY}/{KNOWN_HOSTS}, {CA_CERT})"
            )
        username, password, token = text(USERNAME), text(PASSWORD), text(BEARER_TOKEN)
        if token and (username or password):
            extra = USERNAME if username else PASSWORD
            raise InvalidCredentials(
                f"secret {secret_name!r}: give either {BEARER_TOKEN!r} or {USERNAME!r}/{PASSWORD!r}, "
                f"not both (found {BEARER_TOKEN!r} and {extra!r})"
            )
        identity = data.get(IDENTITY)
        if identity is not None:
            _check_identity(identity, secret_name)
        if identity is not None and password and not username:
            # Flux reads a lone password next to an identity as the key's passphrase.
            raise InvalidCredentials(
                f"secret {secret_name!r}: key {PASSWORD!r} next to {IDENTITY!r} would be a passphrase; "
                "use a key without a passphrase"
            )
        if password and not username:
            raise InvalidCredentials(f"secret {secret_name!r}: key {USERNAME!r} is required with {PASSWORD!r}")
        if username and not password:
            raise InvalidCredentials(f"secret {secret_name!r}: key {PASSWORD!r} is required with {USERNAME!r}")
        known_hosts = data.get(KNOWN_HOSTS)
        if known_hosts is not None:
            _check_known_hosts(known_hosts, secret_name)
        ca_key = next((k for k in _CA_ALIASES if k in data), None)
        ca_cert = data[ca_key] if ca_key else None
        if ca_key and ca_cert is not None:
            try:
                x509.load_pem_x509_certificates(ca_cert)
            except ValueError:
                raise InvalidCredentials(f"secret {secret_name!r}: key {ca_key!r} is not a PEM certificate") from None
        return cls(
            secret_name=secret_name,
            username=username,
            password=password,
            bearer_token=token,
            identity=_with_newline(identity) if identity is not None else None,
            known_hosts=_with_newline(known_hosts) if known_hosts is not None else None,
            ca_cert=ca_cert,
        )

    @property
    def fingerprint(self) -> str:
        """A digest of every value, so caches keyed by credentials hold no secret in clear."""
        h = hashlib.sha256()
        for part in (self.username, self.password, self.bearer_token, self.identity, self.known_hosts, self.ca_cert):
            raw = part.encode() if isinstance(part, str) else (part or b"")
            h.update(len(raw).to_bytes(8, "big") + raw)
        return h.hexdigest()

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never show in a message (for scrubbing git's output)."""
        values: list[str] = [v for v in (self.password, self.bearer_token) if v]
        if self.identity:
            values += [line for line in self.identity.decode(errors="replace").splitlines() if len(line) > 8]
        return tuple(values)

    def check_for(self, url: GitURL) -> None:
        """Refuse credentials that cannot work with ``url``'s transport, naming the missing key."""
        name = self.secret_name
        if url.scheme == "ssh":
            if self.password or self.bearer_token:
                key = repr(BEARER_TOKEN) if self.bearer_token else f"{USERNAME!r}/{PASSWORD!r}"
                raise InvalidCredentials(
                    f"secret {name!r} gives {key} for an ssh URL; ssh needs {IDENTITY!r} and {KNOWN_HOSTS!r}"
                )
            if not self.known_hosts:
                raise InvalidCredentials(
                    f"secret {name!r}: key {KNOWN_HOSTS!r} is required for ssh URLs, so the server's host key "
                    "can be checked (e.g. the output of ssh-keyscan)"
                )
            if not self.identity:
                raise InvalidCredentials(
                    f"secret {name!r}: key {IDENTITY!r} (an ssh private key) is required for ssh URLs"
                )
        elif url.scheme in ("https", "http"):
            if self.identity:
                raise InvalidCredentials(
                    f"secret {name!r} gives an ssh {IDENTITY!r} for an {url.scheme} URL; "
                    f"use {USERNAME!r}/{PASSWORD!r} or {BEARER_TOKEN!r}, or an ssh:// URL"
                )
            if url.scheme == "http" and (self.password or self.bearer_token):
                raise InvalidCredentials(
                    f"secret {name!r}: refusing to send credentials over plain http to {url.host}; use https"
                )
        elif url.scheme == "file" and (self.password or self.bearer_token or self.identity):
            raise InvalidCredentials(f"secret {name!r} gives credentials for a file:// URL, which takes none")


def _with_newline(value: bytes) -> bytes:
    # OpenSSH refuses a private key file whose last line has no newline.
    return value if value.endswith(b"\n") else value + b"\n"


def _check_identity(raw: bytes, secret_name: str) -> None:
    problem = f"secret {secret_name!r}: key {IDENTITY!r} "
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in raw:
            serialization.load_ssh_private_key(_with_newline(raw), password=None)
        else:
            serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise InvalidCredentials(problem + "is passphrase-protected; use a key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidCredentials(problem + "is not an ssh private key (OpenSSH or PEM format)") from None


def _check_known_hosts(raw: bytes, secret_name: str) -> None:
    lines = [line for line in raw.decode(errors="replace").splitlines() if line.strip() and not line.startswith("#")]
    bad = next((line for line in lines if len(line.split()) < 3), None)
    if not lines or bad is not None:
        shown = f" (line {bad[:40]!r})" if bad else ""
        raise InvalidCredentials(
            f"secret {secret_name!r}: key {KNOWN_HOSTS!r} needs lines of 'HOST KEYTYPE KEY', "
            f"as ssh-keyscan prints{shown}"
        )
