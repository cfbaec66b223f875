"""e2e/kind/kwok-equivalent.yaml on a real kube-apiserver: the admission policies keep their promises.

No CI machine runs kind, so the policies are checked here instead: one private harness cluster
with MutatingAdmissionPolicy switched on (as the kind configs do), the file applied server-side
as scripts/kind-e2e.sh applies it, and pods created through the API server. The pods land on
kwok nodes, so what is checked is the admitted spec, not a kubelet running it.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import procs
from e2e.binaries import Binaries
from e2e.cluster import NEVER_READY_LABEL, ClusterInfo, LocalCluster, new_cluster_dir
from tests.e2e.kube import deployment, kubectl

POLICIES = Path(__file__).resolve().parents[2] / "e2e" / "kind" / "kwok-equivalent.yaml"
IMAGE = "gitopsd:e2e-policy-test"
SLEEP = ["/usr/bin/tini", "--", "sleep", "infinity"]
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
ALWAYS_FAILS = {"exec": {"command": ["false"]}, "periodSeconds": 2}
# The namespaces the policy promises to leave alone (its namespaceSelector).
UNTOUCHED = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage", "gitopsd-system", "metrics-adapter")
# What the kind configs add to the API server.
APISERVER_ARGS = (
    "--feature-gates=MutatingAdmissionPolicy=true",
    "--runtime-config=admissionregistration.k8s.io/v1alpha1=true",
)


def _pod(name: str, *, never_ready: bool = False) -> dict[str, Any]:
    """A pod with everything the policies touch: args, probes, an init container and a sidecar."""
    probe = {"httpGet": {"path": "/healthz", "port": 8080}}
    labels = {"app": name} | ({NEVER_READY_LABEL: "true"} if never_ready else {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "initContainers": [
                {"name": "init", "image": "registry.invalid/init:1", "args": ["migrate"]},
                {"name": "sidecar", "image": "registry.invalid/proxy:1", "restartPolicy": "Always"},
            ],
            "containers": [
                {
                    "name": "web",
                    "image": "registry.invalid/web:1",
                    "imagePullPolicy": "Always",
                    "args": ["--port=8080"],
                    "livenessProbe": probe,
                    "readinessProbe": probe,
                    "startupProbe": probe,
                },
                {"name": "worker", "image": "registry.invalid/worker:1", "command": ["/bin/worker"]},
            ],
        },
    }


def _json(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    obj: dict[str, Any] = json.loads(out.stdout)
    return obj


def _create(cluster: ClusterInfo, ns: str, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    """Create the object through the API server (optionally a server-side dry run) and return it as admitted."""
    flags = ["--dry-run=server"] if dry_run else []
    return _json(kubectl(cluster, "-n", ns, "create", "-f", "-", "-o", "json", *flags, input=json.dumps(obj)))


def _new_namespace(cluster: ClusterInfo) -> str:
    name = f"kp-{uuid.uuid4().hex[:8]}"
    _create(cluster, "default", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _probe_image(cluster: ClusterInfo) -> str:
    run = ("run", "kind-e2e-probe", "--image=registry.invalid/probe:1", "--restart=Never", "--dry-run=server")
    out = kubectl(cluster, "-n", "default", *run, "-o", "jsonpath={.spec.containers[0].image}")
    return out.stdout if out.returncode == 0 else ""


@pytest.fixture(scope="module")
def policy_cluster(binaries: Binaries) -> Iterator[ClusterInfo]:
    """A private harness cluster with MutatingAdmissionPolicy on and kwok-equivalent.yaml applied."""
    directory = new_cluster_dir("e2e-kind-policies")
    local = LocalCluster(directory, "ipv4", nodes=1, binaries=binaries, apiserver_args=APISERVER_ARGS)
    try:
        cluster = local.start()
        # scripts/kind-e2e.sh: sed 's|"IMAGE"|"<image>"|g' kwok-equivalent.yaml | kubectl apply --server-side -f -
        manifest = POLICIES.read_text().replace('"IMAGE"', f'"{IMAGE}"')
        out = kubectl(cluster, "apply", "--server-side", "-f", "-", input=manifest)
        assert out.returncode == 0, out.stderr
        # Policies take effect a moment after they are created; the script waits the same way.
        procs.wait_until("the policies in effect", lambda: _probe_image(cluster) == IMAGE, timeout=30)
        yield cluster
    finally:
        local.stop(remove=True)


def test_every_image_placeholder_is_replaced() -> None:
    """The script's sed replaces only a quoted "IMAGE": no other spelling may hide in the policies."""
    code = "\n".join(line for line in POLICIES.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert code.count('"IMAGE"') == 2  # containers and init containers
    assert not re.search(r"IMAGE", code.replace('"IMAGE"', ""))


def test_applied_objects_are_the_files(policy_cluster: ClusterInfo) -> None:
    """Both policies and their bindings exist on the server after the apply."""
    for kind in ("mutatingadmissionpolicy", "mutatingadmissionpolicybinding"):
        out = kubectl(policy_cluster, "get", kind, "-o", "name")
        assert out.returncode == 0, out.stderr
        assert sorted(out.stdout.split()) == [
            f"{kind}.admissionregistration.k8s.io/e2e-{n}" for n in ("never-ready", "run-any-image")
        ]


@pytest.mark.parametrize("never_ready", [False, True], ids=["ready", "never-ready"])
def test_test_namespace_pod_runs_the_e2e_image(policy_cluster: ClusterInfo, never_ready: bool) -> None:
    """A test pod's containers run the e2e image's sleep, init containers `true`, own probes gone."""
    ns = _new_namespace(policy_cluster)
    spec = _create(policy_cluster, ns, _pod("web", never_ready=never_ready))["spec"]

    init, sidecar = spec["initContainers"]
    for c in (init, sidecar, *spec["containers"]):
        assert (c["image"], c["imagePullPolicy"]) == (IMAGE, "IfNotPresent"), c["name"]
        assert "args" not in c, c["name"]
    assert init["command"] == ["true"]
    assert sidecar["command"] == SLEEP  # a sidecar that exited would keep the pod from Ready
    for c in spec["containers"]:
        assert c["command"] == SLEEP, c["name"]
        assert "livenessProbe" not in c and "startupProbe" not in c, c["name"]
        if never_ready:
            assert ALWAYS_FAILS.items() <= c["readinessProbe"].items(), c["name"]
        else:
            assert "readinessProbe" not in c, c["name"]


def test_controller_created_pods_are_mutated(policy_cluster: ClusterInfo) -> None:
    """Pods a Deployment's ReplicaSet creates (the suite's usual path) get the image and the failing probe."""
    ns = _new_namespace(policy_cluster)
    _create(policy_cluster, ns, deployment("api", 2, {NEVER_READY_LABEL: "true"}))

    def pods() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = _json(
            kubectl(policy_cluster, "-n", ns, "get", "pods", "-l", "app=api", "-o", "json")
        )["items"]
        return found if len(found) == 2 else []

    for pod in procs.wait_until("2 pods of the Deployment", pods, timeout=60):
        (c,) = pod["spec"]["containers"]
        assert (c["image"], c["command"], c.get("args")) == (IMAGE, SLEEP, None)
        assert ALWAYS_FAILS.items() <= c["readinessProbe"].items()


@pytest.mark.parametrize("ns", UNTOUCHED)
def test_system_and_installed_namespaces_are_untouched(policy_cluster: ClusterInfo, ns: str) -> None:
    """Outside test namespaces a pod keeps its images, commands, args and probes."""
    if kubectl(policy_cluster, "get", "namespace", ns).returncode != 0:
        _create(policy_cluster, "default", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    pod = _pod("real")
    spec = _create(policy_cluster, ns, pod, dry_run=True)["spec"]

    sent_all = pod["spec"]["initContainers"] + pod["spec"]["containers"]
    for sent, got in zip(sent_all, spec["initContainers"] + spec["containers"], strict=True):
        fields = ("image", "command", "args")
        assert {f: got.get(f) for f in fields} == {f: sent.get(f) for f in fields}, got["name"]
        assert {p for p in PROBES if p in got} == {p for p in PROBES if p in sent}, got["name"]
    assert spec["containers"][0]["imagePullPolicy"] == "Always"


def test_never_ready_applies_in_every_namespace(policy_cluster: ClusterInfo) -> None:
    """As kwok's pod-never-ready stage: a labelled kube-system pod gets the failing probe, its image kept."""
    spec = _create(policy_cluster, "kube-system", _pod("stuck", never_ready=True), dry_run=True)["spec"]
    for c in spec["containers"]:
        assert c["image"].startswith("registry.invalid/"), c["name"]
        assert ALWAYS_FAILS.items() <= c["readinessProbe"].items(), c["name"]
