"""One lifecycle event as the HTTP request each kind of notifier expects.

- ``webhook``: the event as one JSON object (documented below), signed
  ``X-Signature: sha256=<hex HMAC-SHA256 of the body>``, with ``X-Event-Id`` (stable for one
  happening, so a receiver can drop a duplicate) and ``X-Event-Type``::

      {"id": "3f1c...", "type": "deploy.succeeded", "severity": "info",
       "environment": {"namespace": "ops", "name": "prod"},
       "revision": "main@sha1:9ab1...", "previousRevision": "main@sha1:77c0...",
       "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:9ab1...",
       "time": "2026-05-01T10:00:00Z", "repository": "https://git.example.com/shop.git", "release": 7}

- ``slack``: an incoming-webhook message (``text`` for notifications, ``blocks`` for the channel).
- ``github`` / ``gitlab`` / ``gitea``: a commit status on the event's commit, context
  ``gitopsd/<environment>``: pending while deploying, success after, failure when the
  deploy, its health check or its verification failed or the revision was held back.
  The API shapes are each host's documented ones:

  ====== ============================================= ========================== ===========================
  host   request                                       auth header                states used
  ====== ============================================= ========================== ===========================
  GitHub POST {api}/repos/{owner}/{repo}/statuses/{sha} Authorization: Bearer TOKEN pending, success, failure
  GitLab POST {url}/api/v4/projects/{id}/statuses/{sha} PRIVATE-TOKEN: TOKEN       pending, success, failed
  Gitea  POST {url}/api/v1/repos/{owner}/{repo}/statuses/{sha} Authorization: token TOKEN pending, success, failure
  ====== ============================================= ========================== ===========================

  (GitLab's ``{id}`` is the URL-encoded project path.) The repository comes from the
  notifier's ``repository`` or else the Environment's source URL.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd import __version__
from gitopsd.lifecycle import EventType, LifecycleEvent
from gitopsd.webhooks.repourl import repository_identity
from gitopsd.webhooks.signatures import sign

USER_AGENT = f"gitopsd/{__version__}"
_STATE: Mapping[EventType, str] = {
    "deploy.started": "pending",
    "freeze.blocked": "pending",
    "deploy.succeeded": "success",
    "deploy.failed": "failure",
    "health.failed": "failure",
    "verification.failed": "failure",
    "revision.held": "failure",
}
_GITLAB_STATE = {"pending": "pending", "success": "success", "failure": "failed"}
_DESCRIPTION: Mapping[str, str] = {
    "deploy.started": "Deploying to {env}",
    "freeze.blocked": "Waiting: {env} is in a freeze window",
    "deploy.succeeded": "Deployed to {env}",
    "deploy.failed": "Deploy to {env} failed: {reason}",
    "health.failed": "Unhealthy in {env}: {reason}",
    "verification.failed": "Verification failed in {env}: {reason}",
    "revision.held": "Held back from {env}: {reason}",
}
_SLACK_ICON: Mapping[str, str] = {
    "deploy.started": ":hourglass_flowing_sand:",
    "deploy.succeeded": ":white_check_mark:",
    "deploy.failed": ":x:",
    "health.failed": ":broken_heart:",
    "rollback.performed": ":rewind:",
    "revision.held": ":no_entry:",
    "resumed": ":arrow_forward:",
    "freeze.blocked": ":snowflake:",
    "verification.failed": ":warning:",
}
_SLACK_VERB: Mapping[str, str] = {
    "deploy.started": "is deploying",
    "deploy.succeeded": "deployed",
    "deploy.failed": "failed to deploy",
    "health.failed": "is unhealthy at",
    "rollback.performed": "rolled back from",
    "revision.held": "is holding back",
    "resumed": "resumed at",
    "freeze.blocked": "is frozen; not deploying",
    "verification.failed": "failed verification of",
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    event_id: str
    #: (what, state) for commit statuses: the same state for the same commit and context is sent once.
    status_key: tuple[str, str] | None = None


def event_body(event: LifecycleEvent) -> dict[str, Any]:
    """The documented JSON form of one event (the ``webhook`` notifier's body)."""
    return {
        "id": event.id,
        "type": event.type,
        "severity": event.severity,
        "environment": {"namespace": event.namespace, "name": event.environment},
        "revision": event.revision,
        "previousRevision": event.previous_revision,
        "reason": event.reason,
        "message": event.message,
        "time": event.time,
        "repository": event.source_url,
        "release": event.release,
    }


def webhook(event: LifecycleEvent, url: str, secret: bytes | None) -> Request:
    body = json.dumps(event_body(event), separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Event-Id": event.id,
        "X-Event-Type": event.type,
    }
    if secret:
        headers["X-Signature"] = sign(secret, body)
    return Request("POST", url, headers, body, event.id)


def slack_text(event: LifecycleEvent) -> str:
    """One readable line: icon, Environment, what happened, revision."""
    icon = _SLACK_ICON.get(event.type, ":information_source:")
    revision = f" `{_short(event.revision)}`" if event.revision else ""
    return f"{icon} *{event.namespace}/{event.environment}* {_SLACK_VERB.get(event.type, event.type)}{revision}"


def slack(event: LifecycleEvent, url: str) -> Request:
    details = [f"*{event.type}* · {event.reason}"]
    if event.release is not None:
        details.append(f"release {event.release}")
    if event.previous_revision and event.previous_revision != event.revision:
        details.append(f"previously `{_short(event.previous_revision)}`")
    payload = {
        "text": slack_text(event),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_text(event)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(event.message, 2900)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]},
        ],
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Request("POST", url, {"Content-Type": "application/json", "User-Agent": USER_AGENT}, body, event.id)


def commit_status(
    kind: str, event: LifecycleEvent, api_url: str, token: bytes, repository: str | None
) -> Request | None:
    """The commit-status request for ``event``, or None when the event sets no status."""
    state = _STATE.get(event.type)
    sha = event.commit
    if state is None or not sha:
        return None
    if event.type == "deploy.failed" and event.revision == event.previous_revision:
        return None  # a failure before a new commit was in play (e.g. Git unreachable) is not that commit's
    path = repository or repository_path(event.source_url)
    if not path:
        return None
    context = f"gitopsd/{event.environment}"
    description = _clip(_DESCRIPTION[event.type].format(env=event.environment, reason=event.reason), 140)
    base = api_url.rstrip("/")
    secret = token.decode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    body: dict[str, Any]
    if kind == "github":
        url = f"{base}/repos/{_quote_path(path)}/statuses/{sha}"
        headers |= {
            "Authorization": f"Bearer {secret}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        body = {"state": state, "context": context, "description": description}
    elif kind == "gitlab":
        url = f"{base}/api/v4/projects/{urllib.parse.quote(path, safe='')}/statuses/{sha}"
        headers["PRIVATE-TOKEN"] = secret
        body = {"state": _GITLAB_STATE[state], "name": context, "description": description}
        ref = (event.revision or "").partition("@sha1:")[0]
        if ref and "@" in (event.revision or ""):
            body["ref"] = ref
    elif kind == "gitea":
        url = f"{base}/api/v1/repos/{_quote_path(path)}/statuses/{sha}"
        headers["Authorization"] = f"token {secret}"
        body = {"state": state, "context": context, "description": description}
    else:
        raise ValueError(f"not a commit-status notifier: {kind}")
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return Request("POST", url, headers, encoded, event.id, status_key=(f"{path}@{sha}#{context}", state))


def repository_path(url: str) -> str | None:
    """``owner/name`` (or ``group/sub/name``) of a hosted repository URL, as spelt; None for file:// URLs."""
    identity = repository_identity(url)
    if identity is None or identity.startswith("file://"):
        return None
    text = url.strip()
    path = urllib.parse.urlsplit(text).path if "://" in text else text.partition(":")[2]
    path = re.sub(r"/+", "/", urllib.parse.unquote(path)).strip("/").removeprefix("~/").removesuffix(".git")
    return path.strip("/") or None


def _quote_path(path: str) -> str:
    return "/".join(urllib.parse.quote(part, safe="") for part in path.split("/"))


def _short(revision: str | None) -> str:
    if not revision:
        return ""
    ref, sep, sha = revision.partition("@sha1:")
    if sep:
        return f"{ref}@{sha[:7]}" if ref else sha[:7]
    return revision.removeprefix("sha1:")[:12]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
