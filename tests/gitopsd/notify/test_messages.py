"""Each notifier's request for an event: the documented webhook body, Slack text, commit-status API shapes."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from gitopsd.notify import messages
from tests.gitopsd.notify.events import OLD, SHA, event


def test_webhook_body_is_the_documented_event_signed() -> None:
    """Fields id/type/severity/environment/revision/previousRevision/reason/message/time; HMAC of the exact body."""
    e = event("health.failed", reason="HealthCheckFailed")
    request = messages.webhook(e, "https://audit.example.com/in", b"key")
    body = json.loads(request.body)
    assert body == {
        "id": e.id, "type": "health.failed", "severity": "error",
        "environment": {"namespace": "ops", "name": "prod"},
        "revision": f"main@sha1:{SHA}", "previousRevision": f"main@sha1:{OLD}",
        "reason": "HealthCheckFailed", "message": e.message, "time": "2026-05-01T10:00:00Z",
        "repository": "git@github.com:Org/Shop.git", "release": 7,
    }  # fmt: skip
    expected = "sha256=" + hmac.new(b"key", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == expected
    assert (request.headers["X-Event-Id"], request.headers["X-Event-Type"]) == (e.id, "health.failed")
    assert (request.method, request.url) == ("POST", "https://audit.example.com/in")
    assert "X-Signature" not in messages.webhook(e, "https://x", None).headers


def test_event_ids_are_stable_per_happening() -> None:
    """The same happening has the same id (receivers dedup); another type or revision has another."""
    assert event().id == event().id
    assert event().id != event("deploy.started").id
    assert event().id != event(revision=f"main@sha1:{OLD}").id


def test_slack_message_is_readable() -> None:
    """One line naming the Environment, what happened and the short revision; details in blocks."""
    request = messages.slack(event("deploy.succeeded"), "https://hooks.slack.com/services/T/B/X")
    body = json.loads(request.body)
    assert body["text"] == f":white_check_mark: *ops/prod* deployed `main@{SHA[:7]}`"
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    assert "release 7" in body["blocks"][2]["elements"][0]["text"]
    assert messages.slack_text(event("rollback.performed")).startswith(":rewind: *ops/prod* rolled back from")


@pytest.mark.parametrize(
    ("kind", "api", "url", "auth", "state_key"),
    [
        ("github", "https://api.github.com", f"https://api.github.com/repos/Org/Shop/statuses/{SHA}",
         ("Authorization", "Bearer T"), "context"),
        ("github", "https://ghe.example.com/api/v3/", f"https://ghe.example.com/api/v3/repos/Org/Shop/statuses/{SHA}",
         ("Authorization", "Bearer T"), "context"),
        ("gitlab", "https://gitlab.com", f"https://gitlab.com/api/v4/projects/Org%2FShop/statuses/{SHA}",
         ("PRIVATE-TOKEN", "T"), "name"),
        ("gitea", "https://gitea.example.com", f"https://gitea.example.com/api/v1/repos/Org/Shop/statuses/{SHA}",
         ("Authorization", "token T"), "context"),
    ],
)  # fmt: skip
def test_commit_status_request_shapes(kind: str, api: str, url: str, auth: tuple[str, str], state_key: str) -> None:
    """Path, auth header and body as each host documents them; context gitopsd/<environment>."""
    request = messages.commit_status(kind, event("deploy.started"), api, b"T", None)
    assert request is not None
    assert request.url == url and request.headers[auth[0]] == auth[1]
    body = json.loads(request.body)
    assert body["state"] == "pending" and body[state_key] == "gitopsd/prod"
    assert body["description"] == "Deploying to prod"
    assert request.status_key == (f"Org/Shop@{SHA}#gitopsd/prod", "pending")


@pytest.mark.parametrize(
    ("type_", "github", "gitlab"),
    [
        ("deploy.started", "pending", "pending"),
        ("freeze.blocked", "pending", "pending"),
        ("deploy.succeeded", "success", "success"),
        ("health.failed", "failure", "failed"),
        ("verification.failed", "failure", "failed"),
        ("revision.held", "failure", "failed"),
        ("deploy.failed", "failure", "failed"),
    ],
)
def test_states_per_event(type_: str, github: str, gitlab: str) -> None:
    """pending while deploying, success after, failure (GitLab: failed) when it failed or was held."""
    for kind, state in (("github", github), ("gitea", github), ("gitlab", gitlab)):
        request = messages.commit_status(kind, event(type_), "https://h", b"T", "org/shop")  # type: ignore[arg-type]
        assert request is not None and json.loads(request.body)["state"] == state


def test_no_status_when_there_is_nothing_to_mark() -> None:
    """No commit, a file:// repository, an event with no state, or a failure on the commit already running."""
    assert messages.commit_status("github", event(revision=None), "https://h", b"T", None) is None
    assert messages.commit_status("github", event(source_url="file:///srv/shop.git"), "https://h", b"T", None) is None
    assert messages.commit_status("github", event("resumed"), "https://h", b"T", None) is None
    same = event("deploy.failed", revision=f"main@sha1:{OLD}", previous=f"main@sha1:{OLD}")
    assert messages.commit_status("github", same, "https://h", b"T", None) is None
    # A repository override names it when the source URL cannot (a mirror, file://).
    override = messages.commit_status("gitea", event(source_url="file:///srv/shop.git"), "https://h", b"T", "o/r")
    assert override is not None and "/repos/o/r/statuses/" in override.url


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://github.com/Org/Shop.git", "Org/Shop"),
        ("git@gitlab.example.com:group/sub/app.git", "group/sub/app"),
        ("ssh://git@gitea.example.com:2222/org/app", "org/app"),
        ("https://user:tok@github.com/org/app/", "org/app"),
        ("file:///srv/git/app.git", None),
    ],
)
def test_repository_path(url: str, path: str | None) -> None:
    """owner/name (as spelt) from any URL form; none for local paths."""
    assert messages.repository_path(url) == path
