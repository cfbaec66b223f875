"""Push bodies as GitHub, GitLab and Gitea send them (trimmed to realistic, documented fields), and a signed POST."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

ZERO = "0" * 40


def _commit(sha: str, url: str) -> dict[str, Any]:
    return {
        "id": sha,
        "message": "change",
        "timestamp": "2026-05-01T10:00:00+00:00",
        "url": f"{url}/commit/{sha}",
        "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "added": [],
        "removed": [],
        "modified": ["deploy/app.yaml"],
    }


def github_push(
    ref: str, after: str, *, clone_url: str, ssh_url: str, html_url: str, before: str = ZERO
) -> dict[str, Any]:
    """An X-GitHub-Event: push body."""
    deleted = after == ZERO
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"{html_url}/compare/{before[:12]}...{after[:12]}",
        "commits": [] if deleted else [_commit(after, html_url)],
        "head_commit": None if deleted else _commit(after, html_url),
        "repository": {
            "id": 1296269,
            "name": html_url.rsplit("/", 1)[-1],
            "full_name": "org/shop",
            "private": True,
            "html_url": html_url,
            "url": html_url,
            "clone_url": clone_url,
            "git_url": clone_url.replace("https://", "git://"),
            "ssh_url": ssh_url,
            "default_branch": "main",
        },
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "sender": {"login": "dev", "id": 1},
    }


def gitlab_push(
    ref: str, after: str, *, http_url: str, ssh_url: str, web_url: str, before: str = ZERO
) -> dict[str, Any]:
    """A GitLab Push Hook / Tag Push Hook body (object_kind from the ref)."""
    kind = "tag_push" if ref.startswith("refs/tags/") else "push"
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": None if after == ZERO else after,
        "user_id": 4,
        "user_name": "Dev",
        "user_username": "dev",
        "project_id": 15,
        "project": {
            "id": 15,
            "name": "shop",
            "web_url": web_url,
            "git_ssh_url": ssh_url,
            "git_http_url": http_url,
            "namespace": "org",
            "path_with_namespace": "org/shop",
            "default_branch": "main",
        },
        "commits": [] if after == ZERO else [_commit(after, web_url)],
        "total_commits_count": 0 if after == ZERO else 1,
        "repository": {
            "name": "shop",
            "url": ssh_url,
            "homepage": web_url,
            "git_http_url": http_url,
            "git_ssh_url": ssh_url,
        },
    }


def gitea_push(
    ref: str, after: str, *, clone_url: str, ssh_url: str, html_url: str, before: str = ZERO
) -> dict[str, Any]:
    """An X-Gitea-Event: push body."""
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": f"{html_url}/compare/{before}...{after}",
        "commits": [_commit(after, html_url)],
        "total_commits": 1,
        "head_commit": _commit(after, html_url),
        "repository": {
            "id": 140,
            "owner": {"id": 1, "login": "org", "username": "org"},
            "name": "shop",
            "full_name": "org/shop",
            "private": True,
            "html_url": html_url,
            "ssh_url": ssh_url,
            "clone_url": clone_url,
            "default_branch": "main",
        },
        "pusher": {"id": 1, "login": "dev", "username": "dev"},
        "sender": {"id": 1, "login": "dev", "username": "dev"},
    }


def hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signed_headers(provider: str, secret: bytes, body: bytes, event: str | None = None) -> dict[str, str]:
    """Headers a real host sends for ``body`` signed with ``secret``."""
    headers = {"Content-Type": "application/json"}
    if provider == "github":
        headers |= {"X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body), "X-GitHub-Event": event or "push",
                    "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}  # fmt: skip
    elif provider == "gitlab":
        headers |= {"X-Gitlab-Token": secret.decode(), "X-Gitlab-Event": event or "Push Hook"}
    elif provider == "gitea":
        headers |= {"X-Gitea-Signature": hmac_hex(secret, body), "X-Gitea-Event": event or "push"}
    else:
        headers["X-Signature"] = "sha256=" + hmac_hex(secret, body)
    return headers


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """POST and return (status, decoded JSON answer); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"{}")
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
