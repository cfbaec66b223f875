"""Webhook signatures: each host's scheme accepted when right, refused with the reason when not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gitopsd.webhooks.signatures import SignatureError, sign, verify

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
# GitHub's documented example: this secret and body give this signature.
GITHUB_EXAMPLE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_example_verifies() -> None:
    """The secret/body/signature triple from GitHub's docs is accepted, and sign() produces it."""
    assert sign(SECRET, BODY) == GITHUB_EXAMPLE
    verify("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE}, BODY, [SECRET])


@pytest.mark.parametrize(
    ("provider", "headers"),
    [
        ("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE.upper().replace("SHA256=", "sha256=")}),
        ("generic", {"X-Signature": GITHUB_EXAMPLE}),
        ("gitea", {"X-Gitea-Signature": GITHUB_EXAMPLE.removeprefix("sha256=")}),
        ("gitlab", {"X-Gitlab-Token": SECRET.decode()}),
    ],
)
def test_each_scheme_accepts_the_right_signature(provider: str, headers: dict[str, str]) -> None:
    """GitHub/generic sha256=<hex> (any hex case), Gitea bare hex, GitLab's token."""
    verify(provider, headers, BODY, [SECRET])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("provider", "headers", "reason"),
    [
        ("github", {}, "missing X-Hub-Signature-256"),
        ("github", {"X-Hub-Signature-256": "  "}, "missing"),
        ("github", {"X-Hub-Signature-256": "sha1=" + "a" * 40}, "unsupported signature scheme 'sha1'"),
        ("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE.removeprefix("sha256=")}, "expected sha256=<64 hex"),
        ("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE[:-1]}, "64 hex digits (got 63)"),
        ("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE + "00"}, "64 hex digits (got 66)"),
        ("github", {"X-Hub-Signature-256": "sha256=" + "g" * 64}, "64 hex digits"),
        ("github", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ("generic", {"X-Hub-Signature-256": GITHUB_EXAMPLE}, "missing X-Signature"),
        ("gitea", {"X-Gitea-Signature": GITHUB_EXAMPLE}, "64 hex digits"),
        ("gitlab", {"X-Gitlab-Token": "guess"}, "does not match"),
        ("gitlab", {"X-Hub-Signature-256": GITHUB_EXAMPLE}, "missing X-Gitlab-Token"),
    ],
)
def test_bad_signatures_are_refused_with_the_reason(provider: str, headers: dict[str, str], reason: str) -> None:
    """Missing, wrong scheme, wrong length, not hex, wrong value: SignatureError saying which."""
    with pytest.raises(SignatureError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        verify(provider, headers, BODY, [SECRET])  # type: ignore[arg-type]


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    """A replayed signature on another body, or a body signed with another secret, is refused."""
    with pytest.raises(SignatureError):
        verify("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE}, BODY + b" ", [SECRET])
    other = "sha256=" + hmac.new(b"other", BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        verify("github", {"X-Hub-Signature-256": other}, BODY, [SECRET])


def test_any_of_several_secrets_verifies() -> None:
    """During a rotation the old and the new secret are both accepted."""
    verify("github", {"X-Hub-Signature-256": GITHUB_EXAMPLE}, BODY, [b"new-secret", SECRET])
