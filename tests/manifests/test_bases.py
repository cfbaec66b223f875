"""The kustomize bases as built by ``kubectl kustomize``: what they hold and how their pods run (no cluster)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitopsd.config import load as load_daemon_config
from metrics_adapter.rules.config import load as load_adapter_config
from tests.manifests import kit

GITOPSD_KINDS = {
    "CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "RoleBinding",
    "ClusterRoleBinding", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy",
}  # fmt: skip
ADAPTER_KINDS = {
    "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding", "ConfigMap",
    "Deployment", "Service", "APIService", "PodDisruptionBudget",
}  # fmt: skip


@pytest.fixture(scope="module")
def gitopsd() -> list[dict[str, Any]]:
    return kit.kustomize(kit.MANIFESTS / "gitopsd")


@pytest.fixture(scope="module")
def adapter() -> list[dict[str, Any]]:
    return kit.kustomize(kit.MANIFESTS / "metrics-adapter")


def _deployments(*bases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for docs in bases for d in kit.by_kind(docs, "Deployment")]


def test_each_base_builds_with_the_expected_kinds(gitopsd: list[dict[str, Any]], adapter: list[dict[str, Any]]) -> None:
    """Both bases build and hold every kind the install needs."""
    assert {d["kind"] for d in gitopsd} == GITOPSD_KINDS
    assert {d["kind"] for d in adapter} == ADAPTER_KINDS
    namespaced = [d for d in gitopsd if d["kind"] not in ("CustomResourceDefinition", "Namespace", "ClusterRole",
                                                          "ClusterRoleBinding")]  # fmt: skip
    assert {d["metadata"]["namespace"] for d in namespaced} == {kit.GITOPSD_NS}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gitopsd" for d in gitopsd + adapter)


@pytest.mark.parametrize("example", ["app", "environments", "team-rbac", "team-deployer"])
def test_examples_build(example: str) -> None:
    """Every example builds."""
    assert kit.kustomize(kit.MANIFESTS / "examples" / example)


def test_namespaced_applier_component_swaps_the_cluster_wide_binding(tmp_path: Path) -> None:
    """With the component, the applier is bound nowhere cluster-wide and a reader without Secrets is."""
    docs = kit.kustomize(
        kit.overlay(
            tmp_path, [kit.MANIFESTS / "gitopsd"], components=[kit.MANIFESTS / "gitopsd/components/namespaced-applier"]
        )
    )
    bindings = {d["metadata"]["name"]: d for d in kit.by_kind(docs, "ClusterRoleBinding")}
    assert set(bindings) == {"gitopsd-reader"}
    reader = kit.one(docs, "ClusterRole", "gitopsd-reader")
    resources = {r for rule in reader["rules"] for r in rule["resources"]}
    assert "secrets" not in resources and "*" not in resources
    assert {v for rule in reader["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}


def test_every_pod_is_locked_down(gitopsd: list[dict[str, Any]], adapter: list[dict[str, Any]]) -> None:
    """Non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp, bounded."""
    for deployment in _deployments(gitopsd, adapter):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 65532, name  # the image's user (Dockerfile)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, f"{name}: {kind}"
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be an emptyDir"
            writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
            for m in writable:  # with a read-only root, every writable path is a bounded emptyDir
                assert volumes[m["name"]]["emptyDir"].get("sizeLimit"), f"{name}: {m['mountPath']}"


def test_both_bases_run_the_published_image(gitopsd: list[dict[str, Any]], adapter: list[dict[str, Any]]) -> None:
    """Every container runs the published image at one release tag (the one the release workflow sets)."""
    images = {c["image"] for d in _deployments(gitopsd, adapter) for c in d["spec"]["template"]["spec"]["containers"]}
    assert len(images) == 1, images
    (image,) = images
    assert re.fullmatch(rf"{re.escape(kit.PUBLISHED_IMAGE)}:v\d+\.\d+\.\d+", image), image


def test_probes_use_the_programs_health_paths(gitopsd: list[dict[str, Any]], adapter: list[dict[str, Any]]) -> None:
    """Liveness on /livez, readiness on /readyz, on a port the container declares."""
    for deployment in _deployments(gitopsd, adapter):
        c = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"] for p in c["ports"]}
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["port"] in ports


def test_gitopsd_runs_two_leader_elected_replicas(gitopsd: list[dict[str, Any]], tmp_path: Path) -> None:
    """Two replicas, --leader-elect, and a DaemonConfig that gitopsd accepts with the Lease in its namespace."""
    deployment = kit.one(gitopsd, "Deployment", "gitopsd")
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["gitopsd", "run"] and "--leader-elect" in args
    assert "--config=/etc/gitopsd/config.yaml" in args
    config = tmp_path / "config.yaml"
    config.write_text(kit.one(gitopsd, "ConfigMap", "gitopsd-config")["data"]["config.yaml"])
    loaded = load_daemon_config(config, pod_namespace=kit.GITOPSD_NS)
    assert loaded.daemon.leader_election.enabled is True
    assert loaded.daemon.leader_election.namespace == kit.GITOPSD_NS
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"POD_NAME", "POD_NAMESPACE", "POD_IP"} <= env


def test_services_pdb_and_network_policy_select_the_daemon(gitopsd: list[dict[str, Any]]) -> None:
    """Services, the PodDisruptionBudget and the NetworkPolicy all select the daemon's pods and ports."""
    deployment = kit.one(gitopsd, "Deployment", "gitopsd")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"http-metrics": 8080, "webhooks": 8081}
    for svc in kit.by_kind(gitopsd, "Service"):
        assert svc["spec"]["selector"].items() <= labels.items()
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])
    pdb = kit.one(gitopsd, "PodDisruptionBudget", "gitopsd")
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = kit.one(gitopsd, "NetworkPolicy", "gitopsd")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {"webhooks", "http-metrics"}


def test_apiservices_prefer_custom_v1beta2(adapter: list[dict[str, Any]]) -> None:
    """custom v1beta2 ranks above v1beta1, external v1beta1 is there, all sent to the adapter's Service."""
    apis = {d["metadata"]["name"]: d["spec"] for d in kit.by_kind(adapter, "APIService")}
    assert set(apis) == {
        "v1beta2.custom.metrics.k8s.io",
        "v1beta1.custom.metrics.k8s.io",
        "v1beta1.external.metrics.k8s.io",
    }
    for name, spec in apis.items():
        assert name == f"{spec['version']}.{spec['group']}"
        assert spec["service"] == {"name": "metrics-adapter", "namespace": kit.ADAPTER_NS, "port": 443}
    assert (
        apis["v1beta2.custom.metrics.k8s.io"]["versionPriority"]
        > apis["v1beta1.custom.metrics.k8s.io"]["versionPriority"]
    )
    svc = kit.one(adapter, "Service", "metrics-adapter")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    args = kit.one(adapter, "Deployment", "metrics-adapter")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "metrics-adapter" and "--secure-port=6443" in args


def test_adapter_example_config_serves_what_the_example_hpa_asks_for(
    adapter: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The example config loads, and the example HPA's two metrics are among the names it serves."""
    path = tmp_path / "config.yaml"
    path.write_text(kit.one(adapter, "ConfigMap", "metrics-adapter-config")["data"]["config.yaml"])
    config = load_adapter_config(path)
    hpa = kit.one(kit.kustomize(kit.MANIFESTS / "examples" / "app"), "HorizontalPodAutoscaler", "web")
    wanted = {(m["type"], (m.get("pods") or m.get("external"))["metric"]["name"]) for m in hpa["spec"]["metrics"]}
    assert wanted == {("Pods", "http_requests_per_second"), ("External", "orders_backlog")}
    assert config.rules[0].namer.metric_name("http_requests_total") == "http_requests_per_second"
    assert [(q.name, q.namespace, q.kind) for q in config.queues] == [("orders_backlog", "shop", "redis")]


def test_example_environments_are_valid_specs(tmp_path: Path) -> None:
    """dev, staging and prod pass gitopsd's own validation, each on its own ref."""
    docs = kit.kustomize(kit.MANIFESTS / "examples" / "environments")
    path = tmp_path / "envs.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    loaded = load_daemon_config(path, pod_namespace=kit.GITOPSD_NS)
    refs = {e["metadata"]["name"]: e["spec"]["source"] for e in loaded.environments}
    assert refs["dev"]["branch"] == "develop" and refs["staging"]["branch"] == "main"
    assert refs["prod"]["semver"].startswith(">=1.0.0")
    assert {e["metadata"]["namespace"] for e in loaded.environments} == {kit.GITOPSD_NS}
