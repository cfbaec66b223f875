"""The project's image installed as the README tells a user, running as Pods on the real node.

The image (``python -m e2e.image build``) is loaded into the node's containerd, and
manifests/gitopsd and manifests/metrics-adapter are applied with ``kubectl apply -k`` through an
overlay that sets the image and pins the Deployments to the real node (kwok nodes would only
pretend to run them). Their namespaces enforce Pod Security "restricted"; every Pod must become
Running and Ready, the adapter's APIServices Available through its Service, gitopsd's two
replicas elect a leader that syncs an Environment from a Git server on the pod network,
deleting the leader hands over to the other replica, the webhook Service receives a signed
push, and an HPA scales a real Deployment on a queue length the installed adapter serves, then on
a Prometheus rate and a queue length together (a private Prometheus on the node's link).
"""

from __future__ import annotations

import functools
import http.server
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import image, procs
from e2e.exporter import Exporter
from e2e.gitrepo import WorkRepo
from e2e.realnode.images import HTTPD_IMAGE
from e2e.realnode.layout import NODE_LABEL, NODE_NAME
from e2e.realnode.node import pod_manifest
from e2e.services import Prometheus, start_prometheus
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, environment, get_json, wait_for, wait_ready
from tests.realnode.conftest import RealCluster
from tests.realnode.traffic import Traffic

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = ("gitopsd-system", "metrics-adapter")


WEBHOOK_SECRET = secrets.token_hex(16)
SHOP = "rn-shop"
MIXED = "rn-mixed"  # the namespace of the HPA on a Prometheus rate and a queue length


def _overlay(directory: Path, base: str, redis_url: str, prometheus_url: str) -> Path:
    """The base with the image set and the Deployments pinned to the real node; for gitopsd also
    the generic webhook receiver on, with its Secret (as manifests/gitopsd/config.yaml says)."""
    directory.mkdir(parents=True)
    rel = os.path.relpath(ROOT / "manifests" / base, directory)
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [rel],
        "images": [{"name": "ghcr.io/gitopsd/gitopsd", "newName": "localhost/gitopsd", "newTag": "dev"}],
        "patches": [
            {
                "target": {"kind": "Deployment"},
                "patch": yaml.safe_dump(
                    [{"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {NODE_LABEL: "true"}}]
                ),
            }
        ],
    }
    if base == "gitopsd":
        config = yaml.safe_load((ROOT / "manifests" / "gitopsd" / "config.yaml").read_text())
        daemon = yaml.safe_load(config["data"]["config.yaml"])
        daemon["webhooks"] = {"generic": {"secretRef": {"name": "gitopsd-webhooks", "key": "generic"}}}
        config["data"]["config.yaml"] = yaml.safe_dump(daemon)
        doc["patches"].append({"patch": yaml.safe_dump(config)})
        doc["secretGenerator"] = [
            {
                "name": "gitopsd-webhooks",
                "namespace": "gitopsd-system",
                "literals": [f"generic={WEBHOOK_SECRET}"],
                "options": {"disableNameSuffixHash": True},
            }
        ]
    if base == "metrics-adapter":
        # The backlog an HPA scales on: a Redis list on this machine, read by the adapter's Pods.
        config = yaml.safe_load((ROOT / "manifests" / "metrics-adapter" / "config.yaml").read_text())
        adapter = yaml.safe_load(config["data"]["config.yaml"])
        queue = {"name": "orders_backlog", "namespace": SHOP, "redis": {"url": redis_url, "list": "orders"}}
        jobs = {"name": "jobs_backlog", "namespace": MIXED, "redis": {"url": redis_url, "list": "jobs"}}
        adapter["queues"] = [queue, jobs]
        # A prometheus-adapter style rule for the rate HPA: a 10 s window, so a counter that
        # starts now reads its full rate within seconds (over the shipped rule's 2m a new series'
        # increase is divided by 120 s: it would take two minutes to reach the target).
        adapter["rules"].append(
            {
                "seriesQuery": '{__name__="rn_requests_total",namespace!="",pod!=""}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"},
                "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[10s])) by (<<.GroupBy>>)",
            }
        )
        config["data"]["config.yaml"] = yaml.safe_dump(adapter)
        doc["patches"].append({"patch": yaml.safe_dump(config)})
        # The private Prometheus on the node's link; series that appear after the start are
        # discovered within seconds, not the default 10 minutes.
        deployment = yaml.safe_load((ROOT / "manifests" / "metrics-adapter" / "deployment.yaml").read_text())
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        args = [a for a in args if not a.startswith("--prometheus-url=")]
        args += [f"--prometheus-url={prometheus_url}", "--metrics-relist-interval=2s"]
        op = {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}
        doc["patches"].append({"target": {"kind": "Deployment"}, "patch": yaml.safe_dump([op])})
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


class _DumbGitServer:
    """Bare repositories over Git's "dumb" HTTP protocol, on the host's end of the node's link
    (where pods reach the host), so the in-cluster gitopsd can fetch from it."""

    def __init__(self, root: Path, host: str) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer((host, 0), handler)
        self.host = f"[{host}]" if ":" in host else host
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def repo(self, name: str, work: Path) -> tuple[WorkRepo, str]:
        bare = self.root / f"{name}.git"
        repo = WorkRepo.create(bare, work)
        hook = bare / "hooks" / "post-update"
        hook.write_text("#!/bin/sh\nexec git update-server-info\n")
        hook.chmod(0o755)
        subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
        return repo, f"http://{self.host}:{self.server.server_address[1]}/{name}.git"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def redis_on_pod_network(real_cluster_ipv4: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on the host's end of the node's link (pods reach it); its address."""
    lay = real_cluster_ipv4.node.layout
    assert lay is not None
    port = procs.free_port(lay.host_ip)
    work = tmp_path_factory.mktemp("redis")
    # Bound to the private link only; protected mode would refuse every non-loopback client.
    argv = ["redis-server", "--bind", lay.host_ip, "--port", str(port), "--protected-mode", "no", "--save", ""]
    proc = procs.start("redis", [*argv, "--dir", str(work)], work)
    try:
        procs.wait_until("redis-server", lambda: _redis("PING", host=lay.host_ip, port=port) == "PONG", timeout=30)
        yield f"{lay.host_ip}:{port}"
    finally:
        procs.kill_group(proc.pid)


def _redis(*args: str, host: str, port: int) -> str:
    out = subprocess.run(["redis-cli", "-h", host, "-p", str(port), *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def prometheus_on_pod_network(real_cluster_ipv4: RealCluster) -> Iterator[Prometheus]:
    """A private Prometheus (1 s scrapes) on the host's end of the node's link, where Pods reach it."""
    lay = real_cluster_ipv4.node.layout
    assert lay is not None
    prom = start_prometheus(host=lay.host_ip)
    try:
        yield prom
    finally:
        prom.stop()


@pytest.fixture(scope="module")
def installed(
    real_cluster_ipv4: RealCluster,
    redis_on_pod_network: str,
    prometheus_on_pod_network: Prometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealCluster]:
    """gitopsd and metrics-adapter installed from manifests/ on the real node, every Pod Ready."""
    rc = real_cluster_ipv4
    built = image.build()
    rc.node.load_image(built.archive)
    work = tmp_path_factory.mktemp("install")
    host, _, port = redis_on_pod_network.rpartition(":")
    redis_url = f"redis://{f'[{host}]' if ':' in host else host}:{port}/0"
    for base in ("gitopsd", "metrics-adapter"):
        overlay = _overlay(work / base, base, redis_url, prometheus_on_pod_network.url)
        out = kubectl(rc.info, "apply", "--server-side", "-k", str(overlay), timeout=120)
        assert out.returncode == 0, out.stderr
    try:
        for ns in NAMESPACES:
            wait_for(f"every Pod of {ns} Running and Ready", lambda ns=ns: _all_ready(rc, ns), timeout=180)
        yield rc
    finally:
        for base in ("metrics-adapter", "gitopsd"):
            kubectl(rc.info, "delete", "-k", str(work / base), "--wait=false", "--ignore-not-found", timeout=120)


def _pods(rc: RealCluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(rc.info, "pods", "-n", ns)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _all_ready(rc: RealCluster, ns: str) -> bool:
    pods = _pods(rc, ns)
    return len(pods) == 2 and all(
        p["status"].get("phase") == "Running" and condition(p, "Ready").get("status") == "True" for p in pods
    )


def _configmap(value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hello}}\ndata: {{v: {value}}}\n"


def _holder(rc: RealCluster) -> str:
    lease = get_json(rc.info, "lease", "gitopsd", "-n", "gitopsd-system")
    return str(lease["spec"].get("holderIdentity") or "")


def test_the_installed_stack_runs_ready_on_the_real_node_under_restricted_pod_security(installed: RealCluster) -> None:
    """Both namespaces enforce "restricted"; 2+2 Pods Running and Ready on the real node; APIServices Available."""
    rc = installed
    for ns in NAMESPACES:
        labels = get_json(rc.info, "namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        pods = _pods(rc, ns)
        assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
        assert all(p["spec"]["containers"][0]["image"] == "localhost/gitopsd:dev" for p in pods)
    out = kubectl(rc.info, "get", "pods", "-A", "-o", "wide")
    print(out.stdout)

    def available() -> bool:
        items = get_json(rc.info, "apiservices")["items"]
        mine = [a for a in items if a["spec"].get("service", {}).get("namespace") == "metrics-adapter"]
        return len(mine) >= 2 and all(condition(a, "Available").get("status") == "True" for a in mine)

    wait_for("the adapter's APIServices Available", available, timeout=90)
    out = kubectl(rc.info, "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1")
    assert out.returncode == 0 and "APIResourceList" in out.stdout, out.stderr


def test_the_leader_syncs_from_git_on_the_pod_network_and_hands_over_when_deleted(
    installed: RealCluster, tmp_path: Path
) -> None:
    """One replica holds the Lease and syncs an Environment over HTTP from the host; deleting it elects the other."""
    rc = installed
    lay = rc.node.layout
    assert lay is not None
    server = _DumbGitServer(tmp_path / "srv", lay.host_ip)
    target = f"rn-app-{hex(time.monotonic_ns())[-6:]}"
    try:
        assert kubectl(rc.info, "create", "namespace", target).returncode == 0
        repo, url = server.repo("app", tmp_path / "work")
        first = repo.commit({"deploy/cm.yaml": _configmap("one")})
        leader = wait_for("a gitopsd leader", lambda: _holder(rc), timeout=60)
        pods = {p["metadata"]["name"] for p in _pods(rc, "gitopsd-system")}
        assert leader in pods

        apply_objects(rc.info, environment("app", "gitopsd-system", url, target=target, branch="main"))
        wait_ready(rc.info, "gitopsd-system", "app", revision=f"main@sha1:{first}")
        assert get_json(rc.info, "configmap", "hello", "-n", target)["data"] == {"v": "one"}

        out = kubectl(rc.info, "delete", "pod", leader, "-n", "gitopsd-system", "--wait=false")
        assert out.returncode == 0, out.stderr
        new = wait_for("another replica to take the Lease", lambda: (h := _holder(rc)) != leader and h, timeout=90)
        assert new.startswith("gitopsd-")
        second = repo.commit({"deploy/cm.yaml": _configmap("two")})
        wait_ready(rc.info, "gitopsd-system", "app", revision=f"main@sha1:{second}")
        assert get_json(rc.info, "configmap", "hello", "-n", target)["data"] == {"v": "two"}
        wait_for("both gitopsd replicas Ready again", lambda: _all_ready(rc, "gitopsd-system"), timeout=180)
    finally:
        kubectl(rc.info, "delete", "environments.gitopsd.dev", "app", "-n", "gitopsd-system", "--ignore-not-found")
        kubectl(rc.info, "delete", "namespace", target, "--wait=false")
        server.stop()


def test_the_webhook_service_takes_a_signed_push_and_the_leader_deploys_it(
    installed: RealCluster, tmp_path: Path
) -> None:
    """Interval 1h: only the signed push sent to the gitopsd-webhooks Service (any replica) deploys the new commit."""
    rc = installed
    lay = rc.node.layout
    assert lay is not None
    server = _DumbGitServer(tmp_path / "srv", lay.host_ip)
    target = f"rn-hook-{hex(time.monotonic_ns())[-6:]}"
    try:
        assert kubectl(rc.info, "create", "namespace", target).returncode == 0
        repo, url = server.repo("hooked", tmp_path / "work")
        first = repo.commit({"deploy/cm.yaml": _configmap("one")})
        env = environment("hooked", "gitopsd-system", url, target=target, branch="main", interval="1h")
        apply_objects(rc.info, env)
        wait_ready(rc.info, "gitopsd-system", "hooked", revision=f"main@sha1:{first}")
        second = repo.commit({"deploy/cm.yaml": _configmap("two")})

        svc = get_json(rc.info, "service", "gitopsd-webhooks", "-n", "gitopsd-system")["spec"]["clusterIP"]
        receiver = f"http://{f'[{svc}]' if ':' in svc else svc}:8081"
        secret_file = tmp_path / "secret"
        secret_file.write_text(WEBHOOK_SECRET)
        notify = [sys.executable, "-m", "gitopsd", "notify", "--url", url, "--ref", "refs/heads/main"]
        notify += ["--after", second, "--receiver", receiver, "--secret-file", str(secret_file)]
        out = subprocess.run(notify, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "triggered" in out.stdout + out.stderr, out.stdout + out.stderr
        wait_ready(rc.info, "gitopsd-system", "hooked", revision=f"main@sha1:{second}")
        assert get_json(rc.info, "configmap", "hello", "-n", target)["data"] == {"v": "two"}

        # A wrong secret is refused (401) and deploys nothing.
        secret_file.write_text("not-the-secret")
        out = subprocess.run(notify, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode != 0 and "401" in out.stdout + out.stderr, out.stdout + out.stderr
    finally:
        kubectl(rc.info, "delete", "environments.gitopsd.dev", "hooked", "-n", "gitopsd-system", "--ignore-not-found")
        kubectl(rc.info, "delete", "namespace", target, "--wait=false")
        server.stop()


def test_the_hpa_scales_a_real_deployment_on_a_queue_length_and_its_new_pods_become_ready(
    installed: RealCluster, redis_on_pod_network: str
) -> None:
    """30 items in the Redis list, 10 per Pod wanted: the HPA (via the installed adapter) scales 1 → 3, all Ready."""
    rc = installed
    host, _, port = redis_on_pod_network.rpartition(":")
    _redis("DEL", "orders", host=host, port=int(port))
    kubectl(rc.info, "create", "namespace", SHOP)
    try:
        worker = _worker(SHOP)
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "worker", "namespace": SHOP},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": "orders_backlog"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    }
                ],
            },
        }
        apply_objects(rc.info, worker, hpa)
        wait_for("worker Ready", lambda: _ready_replicas(rc) == 1, timeout=90)
        _redis("RPUSH", "orders", *[f"order-{i}" for i in range(30)], host=host, port=int(port))
        wait_for("the HPA to scale worker to 3 Ready Pods", lambda: _ready_replicas(rc) == 3, timeout=120)
        pods = get_json(rc.info, "pods", "-n", SHOP, "-l", "app=worker")["items"]
        ready = [p for p in pods if condition(p, "Ready").get("status") == "True"]
        assert len(ready) == 3 and {p["spec"]["nodeName"] for p in ready} == {NODE_NAME}
        status = get_json(rc.info, "hpa", "worker", "-n", SHOP)["status"]
        assert status["desiredReplicas"] == 3
        assert status["currentMetrics"][0]["external"]["metric"]["name"] == "orders_backlog", status
        path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{SHOP}/orders_backlog"
        raw = kubectl(rc.info, "get", "--raw", path)
        assert raw.returncode == 0 and '"value":"30"' in raw.stdout.replace(" ", ""), raw.stdout + raw.stderr
    finally:
        kubectl(rc.info, "delete", "namespace", SHOP, "--wait=false")


def _worker(namespace: str) -> dict[str, Any]:
    """A one-replica Deployment of the tests' HTTP server on the real node, Ready once /ready answers."""
    spec = pod_manifest("x", HTTPD_IMAGE, readiness_path="/ready")["spec"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {k: v for k, v in spec.items() if k != "automountServiceAccountToken"},
            },
        },
    }


def _ready_replicas(rc: RealCluster, namespace: str = SHOP) -> int:
    dep = get_json(rc.info, "deployment", "worker", "-n", namespace)
    return int(dep.get("status", {}).get("readyReplicas") or 0)


def _ready_pods(rc: RealCluster, namespace: str) -> list[str]:
    pods = get_json(rc.info, "pods", "-n", namespace, "-l", "app=worker")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return [p["metadata"]["name"] for p in live if condition(p, "Ready").get("status") == "True"]


def test_the_hpa_scales_a_real_deployment_on_a_prometheus_rate_and_a_queue_length(
    installed: RealCluster, redis_on_pod_network: str, prometheus_on_pod_network: Prometheus
) -> None:
    """One HPA, two metrics: a Pods metric (rn_requests_per_second, a rate from the private
    Prometheus through a rule added to the installed adapter's config) and an External queue
    length (Redis). 12 requests/s shared by the Ready Pods, 10 wanted per Pod: 1 -> 2 on the rate
    alone (queue empty); then 30 jobs, 10 per Pod: 3. Each new Pod really Ready (HTTP probe);
    2 Pods keep the rate below target (6/s each)."""
    rc = installed
    host, _, port = redis_on_pod_network.rpartition(":")
    _redis("DEL", "jobs", host=host, port=int(port))
    prom = prometheus_on_pod_network
    exporter = Exporter().start()
    traffic = Traffic(exporter, MIXED, "rn_requests_total")
    job = f"rn-traffic-{hex(time.monotonic_ns())[-6:]}"
    prom.add_target(job, exporter.address)
    kubectl(rc.info, "create", "namespace", MIXED)
    try:
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "worker", "namespace": MIXED},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "rn_requests_per_second"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    },
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": "jobs_backlog"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        },
                    },
                ],
            },
        }
        apply_objects(rc.info, _worker(MIXED), hpa)

        def ready(n: int) -> bool:
            traffic.ready(_ready_pods(rc, MIXED))  # traffic goes to the Pods that are Ready
            return _ready_replicas(rc, MIXED) == n

        wait_for("worker Ready", lambda: ready(1), timeout=90)
        traffic.set_rate(12.0)
        wait_for("the HPA to scale worker to 2 Ready Pods on the request rate", lambda: ready(2), timeout=120)
        status = get_json(rc.info, "hpa", "worker", "-n", MIXED)["status"]
        assert status["desiredReplicas"] == 2, status
        rates = prom.query(f'sum(rate(rn_requests_total{{namespace="{MIXED}"}}[1m]))')
        assert rates and float(rates[0]["value"][1]) > 0, rates

        _redis("RPUSH", "jobs", *[f"job-{i}" for i in range(30)], host=host, port=int(port))
        wait_for("the HPA to scale worker to 3 Ready Pods on the queue", lambda: ready(3), timeout=120)
        pods = get_json(rc.info, "pods", "-n", MIXED, "-l", "app=worker")["items"]
        ready_pods = [p for p in pods if condition(p, "Ready").get("status") == "True"]
        assert len(ready_pods) == 3 and {p["spec"]["nodeName"] for p in ready_pods} == {NODE_NAME}

        def both_metrics() -> dict[str, Any] | None:
            current = get_json(rc.info, "hpa", "worker", "-n", MIXED)["status"].get("currentMetrics") or []
            by_type = {m["type"]: m for m in current}
            external = by_type.get("External", {}).get("external", {})
            return by_type if "Pods" in by_type and external.get("current", {}).get("averageValue") == "10" else None

        # 30 jobs over 3 Pods; the rate's value is whatever Prometheus computed, named by the rule.
        metrics = wait_for("the HPA to report both metrics at 3 replicas", both_metrics, timeout=60)
        assert metrics["Pods"]["pods"]["metric"]["name"] == "rn_requests_per_second", metrics
        path = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{MIXED}/pods/*/rn_requests_per_second"
        raw = kubectl(rc.info, "get", "--raw", f"{path}?labelSelector=app%3Dworker")
        assert raw.returncode == 0 and "rn_requests_per_second" in raw.stdout, raw.stdout + raw.stderr
    finally:
        kubectl(rc.info, "delete", "namespace", MIXED, "--wait=false")
        exporter.stop()
