"""Notifications from a real ``gitopsd run``: a deploy and a failed release, told to local receivers.

The receivers check what a real endpoint would: the webhook's HMAC, Slack's message, and the
path, auth header and body of GitHub's, GitLab's and Gitea's commit-status APIs. One of them
fails twice with 503 before accepting each event; another never answers. Events must arrive
in order, each accepted exactly once, and a restarted daemon must not send anything again.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, environment, secret, wait_for, wait_ready, wait_reason
from tests.gitopsd.notify.receivers import Received, Receiver, Silent

pytestmark = pytest.mark.cluster

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web{never}}}
    spec:
      containers: [{{name: web, image: registry.invalid/web:{tag}}}]
"""
AUDIT_SECRET = b"audit-hmac-" + secrets.token_hex(8).encode()
TOKENS = {"github": "ghp_" + secrets.token_hex(8), "gitlab": "glpat-" + secrets.token_hex(8),
          "gitea": secrets.token_hex(20)}  # fmt: skip


@dataclass
class Setup:
    cluster: ClusterInfo
    ops: str
    repo: WorkRepo
    receiver: Receiver
    silent: Silent
    daemon: DaemonProcess
    commits: list[str]


def _flaky(attempts: Counter[str]) -> Any:
    def respond(request: Received) -> int:
        if request.path.startswith("/flaky"):
            event = request.headers.get("X-Event-Id", "")
            attempts[event] += 1
            return 503 if attempts[event] <= 2 else 200
        return 201 if "/statuses/" in request.path else 200

    return respond


@pytest.fixture(scope="module")
def setup(gitopsd_crd: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A daemon with seven notifiers; Environment app subscribed to all; a good release, then a never-ready one."""
    cluster = gitopsd_crd
    tmp = tmp_path_factory.mktemp("notify")
    suffix = secrets.token_hex(3)
    ops, app = f"notify-{suffix}", f"notify-app-{suffix}"
    for ns in (ops, app, f"{app}-auto"):
        assert kubectl(cluster, "create", "namespace", ns).returncode == 0
    receiver = Receiver(_flaky(Counter()))
    silent = Silent()
    apply_objects(
        cluster,
        secret("audit", ops, {"secret": AUDIT_SECRET}),
        secret("slack", ops, {"url": receiver.url("/slack/T000/B000/XXXX").encode()}),
        secret("tokens", ops, {k: v.encode() for k, v in TOKENS.items()}),
    )
    notifiers = [
        {"name": "audit", "type": "webhook", "url": receiver.url("/audit"), "secretRef": {"name": "audit"}},
        {"name": "auto", "type": "webhook", "url": receiver.url("/auto"), "secretRef": {"name": "audit"}},
        {"name": "flaky", "type": "webhook", "url": receiver.url("/flaky"), "secretRef": {"name": "audit"},
         "backoff": "200ms", "retries": 4},
        {"name": "team", "type": "slack", "secretRef": {"name": "slack"}},
        {"name": "dead", "type": "webhook", "url": silent.url("/never"), "secretRef": {"name": "audit"},
         "timeout": "1s", "retries": 1, "backoff": "100ms"},
    ] + [
        {"name": kind, "type": kind, "url": receiver.url(f"/{kind}"), "repository": "org/shop",
         "secretRef": {"name": "tokens", "key": kind}}
        for kind in ("github", "gitlab", "gitea")
    ]  # fmt: skip
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig",
                                  "secretNamespace": ops, "notifiers": notifiers}))  # fmt: skip
    repo = WorkRepo.create(tmp / "shop.git", tmp / "work")
    good = repo.commit({"deploy/web.yaml": DEPLOYMENT.format(never="", tag="1")})
    daemon = DaemonProcess(cluster.kubeconfig, tmp / "daemon", f"--namespace={ops}", f"--config={config}",
                           name="gitopsd-notify").start()  # fmt: skip
    try:
        env = environment("app", ops, repo.file_url, target=app, interval="2s", branch="main", wait={"timeout": "5s"})
        env["spec"]["notify"] = [
            {"notifier": "audit"},
            {"notifier": "flaky", "events": ["deploy.succeeded", "health.failed"]},
            {"notifier": "team", "severity": "error"},
            {"notifier": "github"},
            {"notifier": "gitlab"},
            {"notifier": "gitea"},
            {"notifier": "dead"},
        ]
        # The same release with rollback.auto: its failure is rolled back and the bad revision held.
        auto = environment("auto", ops, repo.file_url, target=f"{app}-auto", interval="2s", branch="main",
                           wait={"timeout": "5s"}, rollback={"auto": True}, notify=[{"notifier": "auto"}])  # fmt: skip
        apply_objects(cluster, env, auto)
        wait_ready(cluster, ops, "app", revision=f"main@sha1:{good}")
        wait_ready(cluster, ops, "auto", revision=f"main@sha1:{good}")
        bad = repo.commit(
            {"deploy/web.yaml": DEPLOYMENT.format(never=', e2e.gitopsd.dev/never-ready: "true"', tag="2")}
        )
        wait_reason(cluster, ops, "app", "HealthCheckFailed")
        yield Setup(cluster, ops, repo, receiver, silent, daemon, [good, bad])
    finally:
        code = daemon.stop()
        receiver.stop()
        silent.stop()
        for ns in (ops, app, f"{app}-auto"):
            kubectl(cluster, "delete", "namespace", ns, "--wait=false")
    assert code == 0, daemon.log_text()[-3000:]


def _events(received: list[Received]) -> list[tuple[str, str]]:
    return [(r.json()["type"], r.json()["revision"].rpartition(":")[2][:8]) for r in received]


def test_deploy_and_failed_release_arrive_in_order_signed(setup: Setup) -> None:
    """The webhook notifier gets started/succeeded then started/health.failed, each signed and with X-Event-Id."""
    s = setup
    good, bad = (c[:8] for c in s.commits)
    expected = [("deploy.started", good), ("deploy.succeeded", good), ("deploy.started", bad), ("health.failed", bad)]
    wait_for("4 audit events", lambda: len(s.receiver.at("/audit")) >= 4, timeout=30)
    audit = s.receiver.at("/audit")
    assert _events(audit) == expected
    for request in audit:
        body = request.json()
        assert request.signed_with(AUDIT_SECRET)
        assert request.headers["X-Event-Id"] == body["id"] and request.headers["X-Event-Type"] == body["type"]
        assert body["environment"] == {"namespace": s.ops, "name": "app"}
        assert set(body) >= {"id", "type", "severity", "revision", "previousRevision", "reason", "message", "time"}
    assert audit[-1].json()["severity"] == "error" and audit[-1].json()["reason"] == "HealthCheckFailed"
    assert audit[-1].json()["previousRevision"] == f"main@sha1:{s.commits[0]}"
    assert len({r.headers["X-Event-Id"] for r in audit}) == 4


def test_a_failed_release_rolled_back_automatically_is_told_in_order(setup: Setup) -> None:
    """rollback.auto: started, succeeded, started, health.failed, rollback.performed, revision.held; nothing after."""
    s = setup
    good, bad = (c[:8] for c in s.commits)
    wait_for("6 events for auto", lambda: len(s.receiver.at("/auto")) >= 6, timeout=60)
    time.sleep(3)  # a restore that turned healthy is told by rollback.performed, not by a deploy.succeeded after it
    received = s.receiver.at("/auto")
    assert all(r.signed_with(AUDIT_SECRET) for r in received)
    assert _events(received) == [
        ("deploy.started", good), ("deploy.succeeded", good), ("deploy.started", bad), ("health.failed", bad),
        ("rollback.performed", good), ("revision.held", bad),
    ]  # fmt: skip
    rollback = received[4].json()
    assert rollback["severity"] == "error" and "Rolled back to release 1" in rollback["message"]
    assert received[5].json()["reason"] == "HealthCheckFailed"


def test_a_receiver_failing_twice_gets_each_event_exactly_once(setup: Setup) -> None:
    """503, 503, then 200 for each event: two events (its filter), three attempts each, each accepted once."""
    s = setup
    wait_for("2 flaky events accepted", lambda: len(s.receiver.at("/flaky")) >= 6, timeout=30)
    flaky = s.receiver.at("/flaky")
    per_event = Counter(r.headers["X-Event-Id"] for r in flaky)
    assert sorted(per_event.values()) == [3, 3]
    assert [t for t, _ in _events(flaky)] == ["deploy.succeeded"] * 3 + ["health.failed"] * 3
    assert s.daemon.metric("gitopsd_notifications_total", notifier="flaky", result="delivered") == 2
    assert s.daemon.metric("gitopsd_notifications_total", notifier="flaky", result="retried") == 4


def test_slack_gets_a_readable_message_for_errors_only(setup: Setup) -> None:
    """severity: error: only health.failed reaches Slack, as text naming the Environment and the revision."""
    s = setup
    wait_for("slack message", lambda: s.receiver.at("/slack/"), timeout=30)
    time.sleep(1)
    (message,) = s.receiver.at("/slack/T000/B000/XXXX")
    body = message.json()
    assert f"*{s.ops}/app* is unhealthy at `main@{s.commits[1][:7]}`" in body["text"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "health.failed" in json.dumps(body["blocks"])


@pytest.mark.parametrize(
    ("kind", "path", "auth", "states", "context_key"),
    [
        ("github", "/github/repos/org/shop/statuses/", ("Authorization", "Bearer {t}"),
         ["pending", "success", "pending", "failure"], "context"),
        ("gitlab", "/gitlab/api/v4/projects/org%2Fshop/statuses/", ("PRIVATE-TOKEN", "{t}"),
         ["pending", "success", "pending", "failed"], "name"),
        ("gitea", "/gitea/api/v1/repos/org/shop/statuses/", ("Authorization", "token {t}"),
         ["pending", "success", "pending", "failure"], "context"),
    ],
)  # fmt: skip
def test_commit_status_follows_each_hosts_api(
    setup: Setup, kind: str, path: str, auth: tuple[str, str], states: list[str], context_key: str
) -> None:
    """Pending then success on the good commit, pending then failure on the bad one, context gitopsd/app."""
    s = setup
    wait_for(f"4 {kind} statuses", lambda: len(s.receiver.at(f"/{kind}/")) >= 4, timeout=30)
    posted = s.receiver.at(f"/{kind}/")
    good, bad = s.commits
    assert [r.path for r in posted] == [path + good, path + good, path + bad, path + bad]
    header, value = auth
    assert all(r.headers.get(header) == value.format(t=TOKENS[kind]) for r in posted)
    assert [r.json()["state"] for r in posted] == states
    assert {r.json()[context_key] for r in posted} == {"gitopsd/app"}
    assert all(r.headers["Content-Type"] == "application/json" for r in posted)
    if kind == "gitlab":
        assert {r.json()["ref"] for r in posted} == {"main"}
    if kind == "github":
        assert {r.headers["X-GitHub-Api-Version"] for r in posted} == {"2022-11-28"}


def test_a_notifier_that_never_answers_fails_alone(setup: Setup) -> None:
    """The hanging endpoint times out and gives up (logged, counted); the other notifiers were not held up."""
    s = setup
    wait_for(
        "dead notifier failures",
        lambda: s.daemon.metric("gitopsd_notifications_total", notifier="dead", result="failed") >= 2,
        timeout=60,
    )
    assert s.daemon.metric("gitopsd_notifications_total", notifier="audit", result="delivered") == 4
    assert "notification failed" in s.daemon.log_text()


def test_a_restart_sends_nothing_again(setup: Setup, tmp_path: Path) -> None:
    """After a restart and several reconciles of the same state, no receiver gets a new request."""
    s = setup
    time.sleep(2)
    paths = ("/audit", "/auto", "/flaky", "/slack", "/github", "/gitlab", "/gitea")
    counts = {p: len(s.receiver.at(p)) for p in paths}
    assert s.daemon.stop() == 0
    s.daemon.start()
    wait_for(
        "three reconciles after the restart",
        lambda: s.daemon.metric("gitopsd_reconcile_total", environment=f"{s.ops}.app") >= 3,
        timeout=60,
    )
    time.sleep(1)
    assert {p: len(s.receiver.at(p)) for p in counts} == counts
