"""Freeze windows and rollback preemption through a real ``gitopsd run``.

A freeze window keeps a new commit from deploying (status says why and until when), a
recurring window in a non-UTC zone does too, ``sync --force-freeze`` overrides once with an
Event naming who, and a rollback is allowed inside the window. Then a rollback requested while
a bad release is still waiting for its health gate preempts that wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    get_json,
    gitopsd_cli,
    wait_for,
    wait_ready,
)
from tests.gitopsd.test_releases import app, results, status_of

pytestmark = pytest.mark.cluster


def _freeze(cluster: ClusterInfo, ns: str, windows: list[dict[str, str]] | None) -> None:
    patch = json.dumps({"spec": {"freeze": windows}})
    out = kubectl(cluster, "patch", "env", "staging", "-n", ns, "--type=merge", "-p", patch)
    assert out.returncode == 0, out.stderr


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_freeze_blocks_deploys_allows_rollbacks_and_a_rollback_preempts_a_health_wait(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Frozen: nothing new deploys until forced; rollback works inside the window; a rollback preempts a sync."""
    cluster = gitopsd_crd
    ops, app_ns = namespaces("ops"), namespaces("stg")
    first = repo.commit(app("one"))
    start_daemon(f"--namespace={ops}")
    manifest = environment("staging", ops, repo.file_url, target=app_ns, branch="main")
    manifest["spec"]["wait"] = {"timeout": "60s"}
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "staging", revision=f"main@sha1:{first}")

    # An absolute window around now: the next commit waits, and status says until when.
    now = datetime.now(UTC)
    until = now + timedelta(hours=1)
    _freeze(cluster, ops, [{"start": _rfc3339(now - timedelta(minutes=5)), "end": _rfc3339(until)}])
    second = repo.commit(app("two"))

    def frozen() -> dict[str, str] | None:
        cond = condition(env_object(cluster, ops, "staging"), "Frozen")
        return cond if second in cond.get("message", "") else None

    cond = wait_for("the Frozen condition", frozen)
    assert f"until {_rfc3339(until)}" in cond["message"] and "spec.freeze[0]" in cond["message"]
    st = status_of(cluster, ops, "staging")
    ready = condition({"status": st}, "Ready")
    assert ready["status"] == "True" and "waits: deploys are frozen" in ready["message"]
    assert st["release"] == 1 and st["lastAppliedRevision"] == f"main@sha1:{first}"
    assert get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["release"] == "one"

    # A recurring window in Tokyo time that is always open (every minute, for an hour) blocks too.
    _freeze(cluster, ops, [{"cron": "* * * * *", "duration": "1h", "timezone": "Asia/Tokyo"}])
    wait_for(
        "the recurring window named",
        lambda: "Asia/Tokyo" in condition(env_object(cluster, ops, "staging"), "Frozen").get("message", ""),
    )
    assert results(cluster, ops, "staging") == {1: "Healthy"}

    # --force-freeze deploys this once, and an Event says who forced it.
    out = gitopsd_cli(cluster, "sync", "staging", "-n", ops, "--force-freeze", "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    st = status_of(cluster, ops, "staging")
    assert st["release"] == 2 and st["lastAppliedRevision"] == f"main@sha1:{second}"
    assert condition({"status": st}, "Frozen") == {}
    events = get_json(cluster, "events", "-n", ops, "--field-selector", "reason=FreezeOverridden")["items"]
    assert len(events) == 1 and "forced by kubernetes-admin" in events[0]["message"], events

    # A rollback inside the window is allowed.
    out = gitopsd_cli(cluster, "rollback", "staging", "-n", ops, "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    st = status_of(cluster, ops, "staging")
    assert st["release"] == 3 and st["held"]["revision"] == f"main@sha1:{second}"
    assert get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["release"] == "one"
    assert results(cluster, ops, "staging") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}

    # No freeze: a never-ready commit deploys as release 4 and waits up to 60s for health...
    _freeze(cluster, ops, None)
    bad = repo.commit(app("three", ready=False))
    wait_for(
        "release 4 waiting for its health gate",
        lambda: (
            (st := status_of(cluster, ops, "staging")).get("release") == 4
            and condition({"status": st}, "Reconciling").get("status") == "True"
        ),
    )
    assert results(cluster, ops, "staging")[4] == "Pending"
    # ...and a rollback requested meanwhile preempts the wait: done long before the 60s pass.
    started = time.monotonic()
    out = gitopsd_cli(cluster, "rollback", "staging", "-n", ops, "--wait", "--timeout", "50s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < 50
    st = status_of(cluster, ops, "staging")
    assert st["release"] == 5 and st["held"]["revision"] == f"main@sha1:{bad}"
    assert results(cluster, ops, "staging") == {1: "Healthy", 2: "RolledBack", 3: "Healthy", 4: "RolledBack",
                                                5: "Healthy"}  # fmt: skip
    assert get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["release"] == "one"
    # resume lifts the hold: the held revision is tried again as a new release.
    assert gitopsd_cli(cluster, "resume", "staging", "-n", ops).returncode == 0
    wait_for("release 6 of the resumed revision", lambda: status_of(cluster, ops, "staging").get("release") == 6)
    assert "held" not in status_of(cluster, ops, "staging")
