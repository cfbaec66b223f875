"""kill -9 of the daemon at random points of syncs and rollbacks, then restart: it always converges.

Each round starts a change (a new commit, or a rollback request written the way the CLI writes
it), kills the daemon with SIGKILL after a random delay (somewhere in fetch, render, record,
apply, health wait or status), starts it again and waits for it to settle. After every round:
Ready, no record left Pending, release numbers contiguous with no gap and no release recorded
twice, ``status.release`` the newest record, and the cluster running exactly the current
release's bundle. ``GITOPSD_CRASH_ROUNDS`` sets the number of rounds (20 in CI, 10 otherwise;
about 6 s each); ``GITOPSD_CRASH_SEED`` replays a run's random delays.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, environment, get_json, wait_for, wait_ready
from tests.gitopsd.test_releases import records, status_of

pytestmark = pytest.mark.cluster

#: 20 in CI (``CI=true``), 10 on a developer's machine; ``GITOPSD_CRASH_ROUNDS`` overrides both.
ROUNDS = int(os.environ.get("GITOPSD_CRASH_ROUNDS") or (20 if os.environ.get("CI") else 10))


def _app(value: int) -> dict[str, str]:
    return {
        "deploy/app.yaml": f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{value: "{value}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  minReadySeconds: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {{value: "{value}"}}}}
    spec: {{containers: [{{name: web, image: "registry.invalid/web:{value}"}}]}}
"""
    }


def _bundle_value(head: dict[str, Any]) -> str:
    items = json.loads(gzip.decompress(base64.b64decode(head["data"]["bundle"])))
    [config] = [i["object"] for i in items if i["object"]["kind"] == "ConfigMap"]
    return str(config["data"]["value"])


def _settled(cluster: ClusterInfo, ops: str, app_ns: str, token: str | None) -> str | None:
    """None when converged, else what is not yet."""
    st = status_of(cluster, ops, "web")
    if condition({"status": st}, "Ready").get("status") != "True":
        return f"not Ready: {condition({'status': st}, 'Ready').get('message')}"
    if token and (st.get("lastHandledRollback") or {}).get("token") != token:
        return "rollback request not handled yet"
    heads = records(cluster, ops, "web")
    pending = [n for n, h in heads.items() if h["metadata"]["labels"]["gitopsd.dev/result"] == "Pending"]
    if pending:
        return f"records still Pending: {pending}"
    if st.get("release") != max(heads):
        return f"status.release {st.get('release')} is not the newest record {max(heads)}"
    live = get_json(cluster, "configmap", "settings", "-n", app_ns)["data"]["value"]
    if live != _bundle_value(heads[max(heads)]):
        return f"the cluster runs {live}, release {max(heads)} holds {_bundle_value(heads[max(heads)])}"
    return None


def test_kill_9_at_random_points_always_converges(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Random SIGKILLs across syncs and rollbacks: converged after each restart, numbers contiguous, no duplicates."""
    cluster = gitopsd_crd
    ops, app_ns = namespaces("ops"), namespaces("crash")
    seed = int(os.environ.get("GITOPSD_CRASH_SEED", str(time.time_ns())))
    rng = random.Random(seed)  # noqa: S311 (timing, not secrets)
    value = 0
    first = repo.commit(_app(value))
    daemon = start_daemon(f"--namespace={ops}")
    manifest = environment("web", ops, repo.file_url, target=app_ns, branch="main", interval="1s")
    manifest["spec"].update(wait={"timeout": "20s"}, historyLimit=100)  # keep every record: none may be lost
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "web", revision=f"main@sha1:{first}")
    kills: list[tuple[str, float, str]] = []  # what was going on at each kill
    for round_ in range(ROUNDS):
        heads = records(cluster, ops, "web")
        healthy_before = [
            n for n, h in heads.items()
            if h["metadata"]["labels"]["gitopsd.dev/result"] == "Healthy" and n < max(heads)
        ]  # fmt: skip
        token: str | None = None
        if healthy_before and rng.random() < 0.4:
            token = f"crash-{round_}"
            request = json.dumps({"token": token, "by": "crash-test", "at": "2026-01-01T00:00:00Z"})
            out = kubectl(
                cluster, "annotate", "--overwrite", "env", "web", "-n", ops, f"gitopsd.dev/rollback={request}"
            )
            assert out.returncode == 0, out.stderr
            action = "rollback"
        else:
            value += 1
            repo.commit(_app(value))
            action = "sync"
        delay = rng.uniform(0.2, 2.5)
        time.sleep(delay)
        st = status_of(cluster, ops, "web")
        busy = condition({"status": st}, "Reconciling").get("message") or "idle"
        daemon.kill()
        kills.append((action, round(delay, 2), f"release {st.get('release')}: {busy}"))
        daemon.start()
        wait_for(
            f"convergence after kill {round_ + 1} ({action}, {delay:.2f}s in; GITOPSD_CRASH_SEED={seed})",
            lambda token=token: _settled(cluster, ops, app_ns, token) is None or None,  # type: ignore[misc]
            timeout=60,
        )

    heads = records(cluster, ops, "web")
    numbers = sorted(heads)
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # contiguous, none lost
    intents = [
        (h["metadata"]["annotations"]["release.gitopsd.dev/revision"],
         h["metadata"]["annotations"]["release.gitopsd.dev/digest"],
         h["metadata"]["annotations"].get("release.gitopsd.dev/request"))
        for _, h in sorted(heads.items())
    ]  # fmt: skip
    duplicates = [n for n, (a, b) in enumerate(itertools.pairwise(intents), 1) if a == b]
    assert duplicates == [], (duplicates, kills)
    assert status_of(cluster, ops, "web")["release"] == numbers[-1]
    assert any(busy != "idle" for *_, busy in kills), kills  # some kills did land mid-reconcile
    print(json.dumps({"rounds": ROUNDS, "releases": len(numbers), "kills": kills}, indent=1))
