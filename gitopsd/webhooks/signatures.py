"""Is a webhook request from the Git host we share a secret with?

Each host proves it differently: GitHub sends ``X-Hub-Signature-256: sha256=<hex>`` and Gitea
``X-Gitea-Signature: <hex>``, both an HMAC-SHA256 of the exact body bytes; GitLab sends the
secret itself in ``X-Gitlab-Token``; our generic hook (and ``gitopsd notify``) signs like
GitHub in ``X-Signature``. Comparisons go through :func:`hmac.compare_digest`, so the time
taken does not tell an attacker how much of a guess was right. The signature is checked on
the raw body, before it is parsed: nothing of an unsigned request is acted on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Provider = Literal["github", "gitlab", "gitea", "generic"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab", "gitea", "generic")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class SignatureError(Exception):
    """The request is not signed, or not signed with a secret we know (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Scheme:
    header: str
    prefix: str | None  # "sha256=" or None for a bare hex digest; token schemes have no digest
    token: bool = False


SCHEMES: Mapping[Provider, Scheme] = {
    "github": Scheme("X-Hub-Signature-256", "sha256="),
    "gitea": Scheme("X-Gitea-Signature", None),
    "gitlab": Scheme("X-Gitlab-Token", None, token=True),
    "generic": Scheme("X-Signature", "sha256="),
}


def sign(secret: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: the generic hook's and outbound webhooks' signature."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(provider: Provider, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> None:
    """Raise :class:`SignatureError` unless ``headers`` prove ``body`` was sent by a holder of one of ``secrets``."""
    scheme = SCHEMES[provider]
    given = headers.get(scheme.header)
    if given is None or not given.strip():
        raise SignatureError(f"missing {scheme.header} header")
    given = given.strip()
    if scheme.token:
        if not any(hmac.compare_digest(given.encode(), secret) for secret in secrets):
            raise SignatureError(f"{scheme.header} does not match the configured secret")
        return
    digest = _digest_of(scheme, given)
    matched = False
    for secret in secrets:  # every secret is tried, so timing does not tell which one matched
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise SignatureError(f"{scheme.header} does not match the body signed with the configured secret")


def _digest_of(scheme: Scheme, given: str) -> str:
    if scheme.prefix is not None:
        algorithm, sep, digest = given.partition("=")
        if not sep:
            raise SignatureError(f"{scheme.header}: expected {scheme.prefix}<64 hex digits>")
        if algorithm.lower() + "=" != scheme.prefix:
            raise SignatureError(
                f"{scheme.header}: unsupported signature scheme {algorithm[:16]!r} (expected {scheme.prefix}<hex>)"
            )
    else:
        digest = given
    if not _HEX64.match(digest):
        raise SignatureError(f"{scheme.header}: a SHA-256 signature is 64 hex digits (got {min(len(digest), 999)})")
    return digest.lower()
