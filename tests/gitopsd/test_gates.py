"""Release gates through a real ``gitopsd run``: verification against a real Prometheus, and promotion.

Prometheus scrapes a test exporter whose values the tests set; for the rollback test the value
depends on which release's ConfigMap is live in the cluster (read at every scrape), as an
application's error ratio depends on the version it runs. Gates are short (1-2 s intervals,
2-4 samples) so the whole module takes about three minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e import services
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.exporter import Exporter, Series
from e2e.gitrepo import WorkRepo
from e2e.tcpproxy import TcpProxy
from tests.e2e.kube import api_client, kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    get_json,
    gitopsd_cli,
    secret,
    wait_for,
    wait_ready,
    wait_reason,
)
from tests.gitopsd.notify.receivers import Receiver
from tests.gitopsd.test_releases import records, results

pytestmark = pytest.mark.cluster

RATIO = 'e2e_error_ratio{namespace="{{.namespace}}"}'


def app(release: str) -> dict[str, str]:
    return {
        "deploy/app.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{release: {release}}}\n"
    }


def gate(url: str, *metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A short verification gate: first sample after 1s, every second, 3 samples, 40s deadline."""
    spec = {"prometheus": {"url": url, "timeout": "2s"}, "startDelay": "1s", "interval": "1s", "samples": 3,
            "deadline": "40s", "metrics": list(metrics)}  # fmt: skip
    return {**spec, **extra}


def ratio(**extra: Any) -> dict[str, Any]:
    return {"name": "error-ratio", "query": RATIO, "range": {"max": 0.01}, **extra}


def scraped(prom: services.Prometheus, query: str) -> None:
    """Wait until Prometheus has the series (a new scrape target takes a second or two)."""
    wait_for(f"Prometheus to have {query}", lambda: prom.query(query), timeout=30)


def verification(cluster: ClusterInfo, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = (env_object(cluster, ns, name).get("status") or {}).get("verification") or {}
    return result


def wait_gate(cluster: ClusterInfo, ns: str, name: str, phase: str, *, release: int | None = None,
              timeout: float = 60) -> dict[str, Any]:  # fmt: skip
    """Wait until status.verification is in ``phase`` (for ``release`` when given)."""

    def check() -> dict[str, Any] | None:
        gate = verification(cluster, ns, name)
        ok = gate.get("phase") == phase and (release is None or gate.get("release") == release)
        return gate if ok else None

    result: dict[str, Any] = wait_for(f"{ns}/{name} verification {phase}", check, timeout=timeout)
    return result


def verdicts(cluster: ClusterInfo, ns: str, name: str) -> dict[int, str | None]:
    return {
        n: s["metadata"]["annotations"].get("release.gitopsd.dev/verification")
        for n, s in records(cluster, ns, name).items()
    }


def events(cluster: ClusterInfo, ns: str, reason: str, name: str) -> list[dict[str, Any]]:
    items = get_json(cluster, "events", "-n", ns, "--field-selector", f"reason={reason}")["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


class LiveRatio:
    """The error ratio of an app in ``namespace``: it depends on the release its ConfigMap says is live."""

    def __init__(self, cluster: ClusterInfo, namespace: str, by_release: dict[str, float]) -> None:
        self.core = client.CoreV1Api(api_client(cluster))
        self.namespace = namespace
        self.by_release = by_release

    def series(self) -> list[Series]:
        try:
            live = (self.core.read_namespaced_config_map("app", self.namespace).data or {}).get("release")
        except client.ApiException:
            return []
        value = self.by_release.get(str(live))
        return [] if value is None else [("e2e_error_ratio", {"namespace": self.namespace}, value)]


@pytest.fixture(scope="module")
def exporter(prometheus: services.Prometheus) -> Iterator[Exporter]:
    """One exporter for the module, scraped by the session's Prometheus every second."""
    exp = Exporter().start()
    prometheus.add_target("gitopsd-gates", exp.address)
    yield exp
    exp.stop()


def test_a_healthy_release_is_verified_recorded_and_can_be_verified_again(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    prometheus: services.Prometheus,
    exporter: Exporter,
) -> None:
    """Error ratio low: Verified=True, the resolved query and samples in status, the verdict on the record."""
    cluster = gitopsd_crd
    ops, shop = namespaces("ops"), namespaces("shop")
    exporter.set("e2e_error_ratio", {"namespace": shop}, 0.001)
    scraped(prometheus, f'e2e_error_ratio{{namespace="{shop}"}}')
    commit = repo.commit(app("v1"))
    daemon = start_daemon(f"--namespace={ops}")
    manifest = environment("web", ops, repo.file_url, target=shop, branch="main")
    manifest["spec"]["verification"] = gate(prometheus.url, ratio())
    apply_objects(cluster, manifest)

    gate_ = wait_gate(cluster, ops, "web", "Passed")
    verified = condition(env_object(cluster, ops, "web"), "Verified")
    assert (verified["status"], verified["reason"]) == ("True", "VerificationPassed")
    assert gate_["release"] == 1 and gate_["revision"] == f"main@sha1:{commit}" and gate_["recorded"]
    [metric] = gate_["metrics"]
    assert metric["query"] == f'e2e_error_ratio{{namespace="{shop}"}}'  # {{.namespace}} is the targetNamespace
    assert (metric["phase"], metric["passed"], metric["failed"]) == ("Passed", 3, 0)
    assert [(s["value"], s["outcome"]) for s in metric["samples"]] == [("0.001", "Pass")] * 3
    assert verdicts(cluster, ops, "web") == {1: "Passed"} and results(cluster, ops, "web") == {1: "Healthy"}
    history = json.loads(gitopsd_cli(cluster, "history", "web", "-n", ops, "-o", "json").stdout)
    assert history["releases"][0]["verification"]["result"] == "Passed"
    table = gitopsd_cli(cluster, "history", "web", "-n", ops).stdout.splitlines()
    assert "VERIFIED" in table[0] and "Passed" in table[1]
    header, row = gitopsd_cli(cluster, "get", "web", "-n", ops).stdout.splitlines()
    assert header.split()[:3] == ["NAME", "READY", "VERIFIED"] and row.split()[:3] == ["web", "True", "True"]
    assert daemon.metric("gitopsd_verification_total", result="Passed") == 1
    assert daemon.metric("gitopsd_verification_samples_total", outcome="Pass") == 3
    assert len(events(cluster, ops, "VerificationPassed", "web")) == 1

    # `gitopsd verify` runs the gate again for release 1 and prints every sample as it comes.
    out = gitopsd_cli(cluster, "verify", "web", "-n", ops, "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'error-ratio: e2e_error_ratio{{namespace="{shop}"}}' in out.stdout
    assert out.stdout.count("  error-ratio  0.001  Pass") == 3, out.stdout
    assert "✔" in out.stdout and "release 1 verified" in out.stdout
    again = verification(cluster, ops, "web")
    assert again["request"] and again["phase"] == "Passed" and again["startedAt"] > gate_["startedAt"]
    assert (env_object(cluster, ops, "web")["status"]["lastHandledVerify"]["result"]) == "Started"
    assert daemon.metric("gitopsd_verification_total", result="Passed") == 2


def test_a_release_whose_error_ratio_jumps_is_rolled_back_to_the_verified_one_and_held(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    prometheus: services.Prometheus,
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    """v2's error ratio is 20%: verified Failed, release 1 restored as release 3, v2 held; a dry run only records."""
    cluster = gitopsd_crd
    ops, shop, dry = namespaces("ops"), namespaces("shop"), namespaces("dry")
    live = [LiveRatio(cluster, ns, {"v1": 0.001, "v2": 0.2}) for ns in (shop, dry)]
    exporter.callbacks.extend(r.series for r in live)
    receiver = Receiver()
    try:
        apply_objects(cluster, secret("audit", ops, {"secret": b"hmac"}))
        config = tmp_path / "config.json"
        config.write_text(json.dumps({
            "apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig", "secretNamespace": ops,
            "notifiers": [{"name": "audit", "type": "webhook", "url": receiver.url("/audit"),
                           "secretRef": {"name": "audit"}}],
        }))  # fmt: skip
        v1 = repo.commit(app("v1"))
        daemon = start_daemon(f"--namespace={ops}", f"--config={config}")
        prod = environment("prod", ops, repo.file_url, target=shop, branch="main", notify=[{"notifier": "audit"}])
        prod["spec"]["verification"] = gate(prometheus.url, ratio(), samples=2)
        trial = environment("trial", ops, repo.file_url, target=dry, branch="main")
        trial["spec"]["verification"] = gate(prometheus.url, ratio(), samples=2, enforce=False)
        apply_objects(cluster, prod, trial)
        wait_gate(cluster, ops, "prod", "Passed", release=1)
        wait_gate(cluster, ops, "trial", "Passed", release=1)

        v2 = repo.commit(app("v2"))

        def rolled_back() -> dict[str, Any] | None:
            st = env_object(cluster, ops, "prod").get("status") or {}
            held = (st.get("held") or {}).get("revision")
            return st if st.get("release") == 3 and held == f"main@sha1:{v2}" else None

        st = wait_for("prod rolled back from v2", rolled_back, timeout=60)
        assert st["held"]["reason"] == "VerificationFailed" and st["held"]["release"] == 2
        assert get_json(cluster, "configmap", "app", "-n", shop)["data"]["release"] == "v1"
        wait_gate(cluster, ops, "prod", "Passed", release=3)  # the restored release is verified in its turn
        assert results(cluster, ops, "prod") == {1: "Healthy", 2: "RolledBack", 3: "Healthy"}
        assert verdicts(cluster, ops, "prod") == {1: "Passed", 2: "Failed", 3: "Passed"}
        second = records(cluster, ops, "prod")[2]["metadata"]["annotations"]
        assert "error-ratio failed" in second["release.gitopsd.dev/verification-message"]
        assert "0.2 is not <= 0.01" in second["release.gitopsd.dev/verification-message"]
        warning = events(cluster, ops, "VerificationFailed", "prod")
        assert [e["type"] for e in warning] == ["Warning"] and "release 2" in warning[0]["message"]
        rollback = events(cluster, ops, "RolledBack", "prod")
        assert len(rollback) == 1 and "automatically after VerificationFailed" in rollback[0]["message"]
        assert daemon.metric("gitopsd_rollbacks_total", reason="VerificationFailed") == 1
        history = gitopsd_cli(cluster, "history", "prod", "-n", ops).stdout.splitlines()
        assert "Failed" in history[2] and "RolledBack" in history[2]

        # The dry run recorded the same verdict and kept v2.
        wait_gate(cluster, ops, "trial", "Failed", release=2)
        trial_status = env_object(cluster, ops, "trial")["status"]
        assert trial_status["release"] == 2 and "held" not in trial_status
        assert get_json(cluster, "configmap", "app", "-n", dry)["data"]["release"] == "v2"
        verified = condition(env_object(cluster, ops, "trial"), "Verified")
        assert verified["status"] == "False" and "dry run" in verified["message"]
        trial_records = records(cluster, ops, "trial")
        assert results(cluster, ops, "trial") == {1: "Healthy", 2: "Healthy"}
        assert trial_records[2]["metadata"]["annotations"]["release.gitopsd.dev/verification-enforced"] == "false"

        # Held: v2 is not applied again over several intervals.
        reconciles = daemon.metric("gitopsd_reconcile_total", environment=f"{ops}.prod")
        wait_for("three more reconciles", lambda: daemon.metric(
            "gitopsd_reconcile_total", environment=f"{ops}.prod") >= reconciles + 3, timeout=30)  # fmt: skip
        assert sorted(records(cluster, ops, "prod")) == [1, 2, 3]

        # Told in order, and no deploy.succeeded after the restore.
        def told() -> list[tuple[str, str]]:
            return [(r.json()["type"], r.json()["revision"].rpartition(":")[2]) for r in receiver.at("/audit")]

        wait_for("7 lifecycle events", lambda: len(told()) >= 7, timeout=30)
        assert told() == [
            ("deploy.started", v1), ("deploy.succeeded", v1), ("deploy.started", v2), ("deploy.succeeded", v2),
            ("verification.failed", v2), ("rollback.performed", v1), ("revision.held", v2),
        ]  # fmt: skip
        failed = receiver.at("/audit")[4].json()
        assert failed["reason"] == "VerificationFailed" and failed["severity"] == "error"
    finally:
        for r in live:
            exporter.callbacks.remove(r.series)
        receiver.stop()


def test_a_prometheus_outage_holds_the_gate_and_it_finishes_once_prometheus_is_back(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    exporter: Exporter,
) -> None:
    """Prometheus stopped while v2 is verified: Held, never rolled back, resumed after a daemon restart, then Passed."""
    cluster = gitopsd_crd
    ops, shop = namespaces("ops"), namespaces("shop")
    exporter.set("e2e_error_ratio", {"namespace": shop}, 0.002)
    first = services.start_prometheus()
    first.add_target("gitopsd-gates", exporter.address)
    proxy = TcpProxy(first.host, first.port).up()  # a stable address for the Prometheus behind it
    second: services.Prometheus | None = None
    try:
        repo.commit(app("v1"))
        daemon = start_daemon(f"--namespace={ops}")
        manifest = environment("prod", ops, repo.file_url, target=shop, branch="main")
        manifest["spec"]["verification"] = gate(f"http://{proxy.address}", ratio(), interval="2s", samples=4,
                                                deadline="120s")  # fmt: skip
        apply_objects(cluster, manifest)
        wait_gate(cluster, ops, "prod", "Passed", release=1)
        repo.commit(app("v2"))
        wait_for("a first sample of release 2", lambda: (g := verification(cluster, ops, "prod")).get("release") == 2
                 and g["metrics"][0]["passed"] >= 1, timeout=30)  # fmt: skip

        first.stop()  # Prometheus goes away in the middle of the gate
        held = wait_gate(cluster, ops, "prod", "Held", release=2, timeout=30)
        assert held["reason"] == "PrometheusErrors" and held["metrics"][0]["phase"] == "Errored"
        assert "errors in a row" in held["metrics"][0]["message"]
        passed_before = held["metrics"][0]["passed"]
        verified = condition(env_object(cluster, ops, "prod"), "Verified")
        assert (verified["status"], verified["reason"]) == ("Unknown", "PrometheusErrors")
        assert "neither promoted nor rolled back" in verified["message"]

        # A restart of the daemon picks the gate up where its status left it.
        assert daemon.stop() == 0
        daemon.start()
        wait_for("a reconcile by the new daemon", lambda: daemon.metric("gitopsd_reconcile_total") >= 2, timeout=30)
        still = verification(cluster, ops, "prod")
        assert still["phase"] == "Held" and still["startedAt"] == held["startedAt"]
        assert still["metrics"][0]["passed"] == passed_before
        st = env_object(cluster, ops, "prod")["status"]
        assert st["release"] == 2 and "held" not in st and daemon.metric("gitopsd_rollbacks_total") == 0
        assert results(cluster, ops, "prod") == {1: "Healthy", 2: "Healthy"}

        # Prometheus is back at the same address: the gate goes on counting and passes.
        second = services.start_prometheus()
        second.add_target("gitopsd-gates", exporter.address)
        proxy.target = (second.host, second.port)
        done = wait_gate(cluster, ops, "prod", "Passed", release=2, timeout=60)
        assert done["startedAt"] == held["startedAt"] and done["metrics"][0]["passed"] == 4
        assert done["metrics"][0]["errors"] == 0
        assert verdicts(cluster, ops, "prod") == {1: "Passed", 2: "Passed"}
        assert results(cluster, ops, "prod") == {1: "Healthy", 2: "Healthy"}
        assert get_json(cluster, "configmap", "app", "-n", shop)["data"]["release"] == "v2"
    finally:
        proxy.down()
        first.stop()
        if second is not None:
            second.stop()


def test_no_data_two_series_deadlines_and_hold_end_as_configured(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    prometheus: services.Prometheus,
    exporter: Exporter,
) -> None:
    """noData Skip → deadline, Hold; Pass → Passed; Fail → Failed; two series → configuration error told once."""
    cluster = gitopsd_crd
    ops = namespaces("ops")
    apps = {name: namespaces(name) for name in ("skip", "pass", "fail", "many", "hold")}
    for ns in apps.values():
        exporter.set("e2e_error_ratio", {"namespace": ns}, 0.5 if ns == apps["hold"] else 0.001)
    for pod in ("web-a", "web-b"):
        exporter.set("e2e_pod_errors", {"namespace": apps["many"], "pod": pod}, 0.0)
    scraped(prometheus, f'e2e_pod_errors{{namespace="{apps["many"]}"}}')
    scraped(prometheus, f'e2e_error_ratio{{namespace="{apps["hold"]}"}}')
    missing = 'e2e_never_exported{namespace="{{.namespace}}"}'
    specs = {
        "skip": gate(prometheus.url, {"name": "missing", "query": missing, "range": {"max": 1}}, samples=2,
                     deadline="6s"),
        "pass": gate(prometheus.url, ratio(), {"name": "missing", "query": missing, "range": {"max": 1},
                                               "noData": "Pass"}),
        "fail": gate(prometheus.url, {"name": "missing", "query": missing, "range": {"max": 1}, "noData": "Fail"}),
        "many": gate(prometheus.url, {"name": "pod-errors", "query": 'e2e_pod_errors{namespace="{{.namespace}}"}',
                                      "range": {"max": 1}}),
        "hold": gate(prometheus.url, ratio(), onFailure="Hold"),
    }  # fmt: skip
    repo.commit(app("v1"))
    daemon = start_daemon(f"--namespace={ops}")
    manifests = []
    for name, spec in specs.items():
        manifest = environment(name, ops, repo.file_url, target=apps[name], branch="main")
        manifest["spec"]["verification"] = spec
        manifests.append(manifest)
    apply_objects(cluster, *manifests)

    skip = wait_gate(cluster, ops, "skip", "Inconclusive", timeout=30)
    assert skip["reason"] == "DeadlineExceeded" and skip["metrics"][0]["noData"] >= 2
    assert skip["metrics"][0]["passed"] == 0 and "neither promoted nor rolled back" in skip["message"]
    verified = condition(env_object(cluster, ops, "skip"), "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "DeadlineExceeded")

    passed = wait_gate(cluster, ops, "pass", "Passed")
    assert [(m["phase"], m["passed"]) for m in passed["metrics"]] == [("Passed", 3), ("Passed", 3)]
    assert passed["metrics"][1]["noData"] == 3

    failed = wait_gate(cluster, ops, "fail", "Failed")
    assert failed["metrics"][0]["failed"] == 1 and failed["action"] == "held: no verified release to roll back to"

    many = wait_gate(cluster, ops, "many", "Inconclusive")
    assert many["reason"] == "InvalidQuery" and many["metrics"][0]["phase"] == "Invalid"
    assert "2 series" in many["metrics"][0]["message"] and 'pod="web-a"' in many["metrics"][0]["message"]

    hold = wait_gate(cluster, ops, "hold", "Failed")
    assert hold["action"] == "held (onFailure: Hold): kept, not verified"

    reconciles = daemon.metric("gitopsd_reconcile_total", environment=f"{ops}.many")
    wait_for("more reconciles", lambda: daemon.metric(
        "gitopsd_reconcile_total", environment=f"{ops}.many") >= reconciles + 3, timeout=30)  # fmt: skip
    assert len(events(cluster, ops, "VerificationInconclusive", "many")) == 1  # a configuration error, told once
    assert len(verification(cluster, ops, "many")["metrics"][0]["samples"]) == 1  # and not asked again
    assert {n: verdicts(cluster, ops, n) for n in specs} == {
        "skip": {1: "Inconclusive"}, "pass": {1: "Passed"}, "fail": {1: "Failed"}, "many": {1: "Inconclusive"},
        "hold": {1: "Failed"},
    }  # fmt: skip
    assert all(results(cluster, ops, n) == {1: "Healthy"} for n in specs)  # nothing rolled back or held
    assert daemon.metric("gitopsd_verification_total", result="Inconclusive") == 2
    assert daemon.metric("gitopsd_rollbacks_total") == 0

    # `gitopsd verify --dry-run` of the failing one: the verdict printed and recorded as a dry run, exit 1.
    out = gitopsd_cli(cluster, "verify", "hold", "-n", ops, "--dry-run", "--timeout", "30s")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "  error-ratio  0.5  Fail" in out.stdout and "✗" in out.stdout and "dry run" in out.stdout
    notes = records(cluster, ops, "hold")[1]["metadata"]["annotations"]
    assert notes["release.gitopsd.dev/verification-enforced"] == "false"


def test_promotion_takes_only_commits_staging_ran_healthy_and_verified(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    prometheus: services.Prometheus,
    exporter: Exporter,
) -> None:
    """A tag on a commit staging verified deploys; one on a commit staging never ran waits, then deploys."""
    cluster = gitopsd_crd
    ops, stage_ns, prod_ns = namespaces("ops"), namespaces("stage"), namespaces("prod")
    exporter.set("e2e_error_ratio", {"namespace": stage_ns}, 0.001)
    scraped(prometheus, f'e2e_error_ratio{{namespace="{stage_ns}"}}')
    c1 = repo.commit(app("v1"))
    start_daemon(f"--namespace={ops}")
    staging = environment("staging", ops, repo.file_url, target=stage_ns, branch="main")
    staging["spec"]["verification"] = gate(prometheus.url, ratio(), samples=2)
    prod = environment("prod", ops, repo.file_url, target=prod_ns, semver=">=1.0.0",
                       promotion={"requireHealthyIn": [{"name": "staging"}]})  # fmt: skip
    apply_objects(cluster, staging, prod)
    wait_gate(cluster, ops, "staging", "Passed", release=1)
    repo.tag("v1.0.0", ref=c1)
    wait_ready(cluster, ops, "prod", revision=f"v1.0.0@sha1:{c1}")

    # v1.1.0 tags a hotfix commit that never went through main: prod waits, and says why.
    repo.branch("hotfix")
    c2 = repo.commit(app("v2"))
    repo.tag("v1.1.0")
    ready = wait_reason(cluster, ops, "prod", "AwaitingPromotion", timeout=30)
    assert f"v1.1.0@sha1:{c2} waits for promotion: staging never deployed commit {c2[:7]}" in ready["message"]
    assert f"it runs release 1, main@sha1:{c1}" in ready["message"]
    assert env_object(cluster, ops, "prod")["status"]["release"] == 1
    assert get_json(cluster, "configmap", "app", "-n", prod_ns)["data"]["release"] == "v1"
    time.sleep(4)  # two more intervals: still waiting, told once
    assert len(events(cluster, ops, "AwaitingPromotion", "prod")) == 1
    assert env_object(cluster, ops, "prod")["status"]["release"] == 1

    # main takes the hotfix (fast-forward): staging deploys and verifies c2, then prod deploys v1.1.0.
    repo.switch("main")
    repo.git("merge", "--quiet", "--ff-only", "hotfix")
    repo.git("push", "--quiet", "origin", "main")
    wait_ready(cluster, ops, "prod", revision=f"v1.1.0@sha1:{c2}")
    staged = records(cluster, ops, "staging")[2]["metadata"]["annotations"]
    assert staged["release.gitopsd.dev/verification"] == "Passed"  # prod deployed only after that verdict
    assert get_json(cluster, "configmap", "app", "-n", prod_ns)["data"]["release"] == "v2"
    assert results(cluster, ops, "prod") == {1: "Healthy", 2: "Healthy"}


def test_bad_gates_are_refused_and_nothing_is_deployed(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    prometheus: services.Prometheus,
    tmp_path: Path,
) -> None:
    """Bad specs are refused at admission naming the field; a bad query, source or cycle stalls before any apply."""
    cluster = gitopsd_crd
    ops = namespaces("ops")
    good = ratio(window="2m")
    refused = [
        ({**good, "range": {"min": 2, "max": 1}}, {}, "spec.verification.metrics[0].range", "min is greater than max"),
        (good, {"samples": 0}, "spec.verification.samples", "greater than or equal to 1"),
        ({**good, "query": 'x{a="{{.app}}"}'}, {}, "spec.verification.metrics", "unknown template variable"),
    ]
    for metric, extra, field, words in refused:
        manifest = environment("bad", ops, repo.file_url, target=ops, branch="main")
        manifest["spec"]["verification"] = gate(prometheus.url, metric, **extra)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(manifest))
        out = kubectl(cluster, "apply", "-f", str(path))
        assert out.returncode != 0 and f"{field}:" in out.stderr and words in out.stderr, out.stderr
    itself = environment("bad", ops, repo.file_url, target=ops, branch="main",
                         promotion={"requireHealthyIn": [{"name": "bad"}]})  # fmt: skip
    path.write_text(json.dumps(itself))
    out = kubectl(cluster, "apply", "-f", str(path))
    assert out.returncode != 0 and "spec.promotion.requireHealthyIn: Invalid value" in out.stderr, out.stderr
    assert kubectl(cluster, "get", "env", "bad", "-n", ops).returncode != 0

    # What only the daemon can tell: each Environment Stalled, the field named, nothing applied, no record.
    apps = {name: namespaces(name) for name in ("promql", "orphan", "ping", "pong", "nosecret")}
    repo.commit(app("v1"))
    start_daemon(f"--namespace={ops}")
    promql = environment("promql", ops, repo.file_url, target=apps["promql"], branch="main")
    promql["spec"]["verification"] = gate(prometheus.url, ratio(), {"name": "latency", "query": "sum(rate(x[1m])",
                                                                    "range": {"max": 1}})  # fmt: skip
    orphan = environment("orphan", ops, repo.file_url, target=apps["orphan"], branch="main",
                         promotion={"requireHealthyIn": [{"name": "stagin"}]})  # fmt: skip
    ping = environment("ping", ops, repo.file_url, target=apps["ping"], branch="main",
                       promotion={"requireHealthyIn": [{"name": "pong"}]})  # fmt: skip
    pong = environment("pong", ops, repo.file_url, target=apps["pong"], branch="main",
                       promotion={"requireHealthyIn": [{"name": "ping"}]})  # fmt: skip
    nosecret = environment("nosecret", ops, repo.file_url, target=apps["nosecret"], branch="main")
    nosecret["spec"]["verification"] = gate(prometheus.url, ratio())
    nosecret["spec"]["verification"]["prometheus"]["secretRef"] = {"name": "prom-auth"}
    apply_objects(cluster, promql, orphan, ping, pong, nosecret)

    expected = {
        "promql": ("InvalidVerificationQuery", ["spec.verification.metrics[1] (latency)", "parse error",
                                                "was not deployed"]),
        "orphan": ("PromotionSourceNotFound", [f"spec.promotion.requireHealthyIn[0].name: Environment {ops}/stagin "
                                               "does not exist"]),
        "ping": ("PromotionCycle", ["a cycle (ping → pong → ping)"]),
        "pong": ("PromotionCycle", ["a cycle (pong → ping → pong)"]),
        "nosecret": ("SecretNotFound", [f"spec.verification.prometheus.secretRef: Secret {ops}/prom-auth not found"]),
    }  # fmt: skip
    out = gitopsd_cli(cluster, "verify", "orphan", "-n", ops)
    assert out.returncode == 1 and "has no spec.verification: there is no gate to run" in out.stderr, out.stderr
    out = gitopsd_cli(cluster, "verify", "promql", "-n", ops)
    assert out.returncode == 1 and "has no release deployed yet" in out.stderr, out.stderr
    for name, (reason, needles) in expected.items():
        ready = wait_reason(cluster, ops, name, reason, timeout=30)
        assert all(n in ready["message"] for n in needles), ready["message"]
        assert condition(env_object(cluster, ops, name), "Stalled").get("status") == "True"
        assert records(cluster, ops, name) == {}
        assert kubectl(cluster, "get", "configmap", "app", "-n", apps[name]).returncode != 0
