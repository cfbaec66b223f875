"""Who asked kube-apiserver for what: its audit log, read back per client and per minute.

kube-apiserver's own metrics (``apiserver_request_total``) carry verb and resource but not the
client, and gitopsd's client counts only what it thinks it sent. The audit log is the server's
record of every request with its user agent, so a bench can attribute requests to gitopsd
(``gitopsd/<version>``) and leave out its own (it uses another user agent) and the control
plane's. Level ``Metadata`` (no bodies) keeps the log small; the ``RequestReceived`` stage is
left out, so each request is one ``ResponseComplete`` event and each watch also one
``ResponseStarted`` event when it opens.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""

#: The user agent of the benches' own client, so their requests are never counted as gitopsd's.
BENCH_USER_AGENT = "gitopsd-bench"


def apiserver_args(directory: Path) -> list[str]:
    """kube-apiserver flags writing every request's metadata to ``directory/audit.log`` (JSON lines)."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = directory / "audit-policy.yaml"
    policy.write_text(POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log_path(directory)}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",  # never rotate: a bench reads the whole run back
    ]


def log_path(directory: Path) -> Path:
    return directory / "audit.log"


@dataclass(frozen=True, slots=True)
class Request:
    """One audited request, reduced to what the benches count."""

    at: float  # epoch seconds of the stage (ResponseStarted for a watch, else ResponseComplete)
    user_agent: str
    verb: str  # the API verb (get, list, watch, create, patch, update, delete, ...), "dryrun-<verb>" for a dry-run
    resource: str  # "configmaps", "deployments/scale", or the path of a non-resource URL
    watch: bool
    ended: bool = False  # a watch's ResponseComplete: it closed


def parse(line: str) -> Request | None:
    """The request an audit line records, or None for a line that is not one (another stage)."""
    try:
        event: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return None  # a line cut short while the server was writing it
    stage, verb = event.get("stage"), str(event.get("verb", ""))
    watch = verb == "watch"
    if stage not in (("ResponseStarted", "ResponseComplete") if watch else ("ResponseComplete",)):
        return None
    ref = event.get("objectRef") or {}
    uri = str(event.get("requestURI", ""))
    if ref.get("resource"):
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    else:
        resource = uri.split("?", 1)[0]
    if "dryRun=All" in uri:
        verb = f"dryrun-{verb}"
    at = datetime.fromisoformat(str(event["stageTimestamp"])).timestamp()
    ended = watch and stage == "ResponseComplete"
    return Request(at, str(event.get("userAgent", "")), verb, resource, watch, ended)


def read(path: Path) -> Iterator[Request]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            request = parse(line)
            if request is not None:
                yield request


def per_minute(requests: Iterable[Request], agent_prefix: str, start: float, minutes: int) -> list[dict[str, Any]]:
    """For each whole minute from ``start``: requests of clients whose user agent starts with
    ``agent_prefix``, by "verb resource", with watches opened counted apart."""
    calls: list[Counter[str]] = [Counter() for _ in range(minutes)]
    watches: list[Counter[str]] = [Counter() for _ in range(minutes)]
    for request in requests:
        if request.ended or not request.user_agent.startswith(agent_prefix):
            continue
        minute = int((request.at - start) // 60)
        if 0 <= minute < minutes:
            target = watches if request.watch else calls
            target[minute][request.resource if request.watch else f"{request.verb} {request.resource}"] += 1
    return [
        {
            "minute": i + 1,
            "requests": sum(calls[i].values()),
            "by_verb_and_resource": dict(sorted(calls[i].items())),
            "watches_opened": sum(watches[i].values()),
            "watches_by_resource": dict(sorted(watches[i].items())),
        }
        for i in range(minutes)
    ]


def between(requests: Iterable[Request], agent_prefix: str, start: float, end: float) -> dict[str, int]:
    """Requests (watches opened included, as "watch RESOURCE") of ``agent_prefix`` clients from
    ``start`` to ``end``, by "verb resource"."""
    count: Counter[str] = Counter()
    for request in requests:
        if not request.ended and request.user_agent.startswith(agent_prefix) and start <= request.at <= end:
            count[f"{request.verb} {request.resource}"] += 1
    return dict(sorted(count.items()))


def open_watches(requests: Iterable[Request], agent_prefix: str, at: float) -> dict[str, int]:
    """Watches of ``agent_prefix`` clients open at ``at`` (opened before it and not yet closed), by resource."""
    count: Counter[str] = Counter()
    for request in requests:
        if request.watch and request.at <= at and request.user_agent.startswith(agent_prefix):
            count[request.resource] += -1 if request.ended else 1
    return {resource: n for resource, n in sorted(count.items()) if n}


__all__ = [
    "BENCH_USER_AGENT",
    "POLICY",
    "Request",
    "apiserver_args",
    "between",
    "log_path",
    "open_watches",
    "parse",
    "per_minute",
    "read",
]
