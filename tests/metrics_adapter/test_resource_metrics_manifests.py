"""The optional kustomize component that registers metrics.k8s.io: it builds over the base (no cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml

from metrics_adapter.rules.config import parse
from tests.manifests import kit

COMPONENT = kit.MANIFESTS / "metrics-adapter" / "components" / "resource-metrics"


def test_component_builds_and_registers_the_resource_metrics_api(tmp_path: Path) -> None:
    """APIService v1beta1.metrics.k8s.io, the aggregated reader role, and a config with resourceRules."""
    docs = kit.kustomize(kit.overlay(tmp_path, [kit.MANIFESTS / "metrics-adapter"], components=[COMPONENT]))
    apisvc = kit.one(docs, "APIService", "v1beta1.metrics.k8s.io")
    assert apisvc["spec"]["group"] == "metrics.k8s.io" and apisvc["spec"]["version"] == "v1beta1"
    service = kit.one(docs, "Service", apisvc["spec"]["service"]["name"])
    assert service["metadata"]["namespace"] == apisvc["spec"]["service"]["namespace"]

    reader = kit.one(docs, "ClusterRole", "system:aggregated-metrics-reader")
    assert reader["rules"] == [
        {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}
    ]
    labels = reader["metadata"]["labels"]
    for role in ("view", "edit", "admin"):
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{role}"] == "true"
    binding = kit.one(docs, "ClusterRoleBinding", "metrics-adapter-hpa-resource-metrics")
    assert binding["subjects"][0]["name"] == "horizontal-pod-autoscaler"

    # The ConfigMap is the base's example config with resourceRules added, and it loads.
    base = yaml.safe_load((kit.MANIFESTS / "metrics-adapter" / "config.yaml").read_text())["data"]["config.yaml"]
    text = kit.one(docs, "ConfigMap", "metrics-adapter-config")["data"]["config.yaml"]
    assert text.startswith(base), "the component's config.yaml must start with the base's config.yaml unchanged"
    cfg = parse(text, "component config.yaml")
    assert cfg.resource_rules is not None and cfg.resource_rules.window_seconds == 300
    assert len(cfg.rules) == len(parse(base, "base").rules)
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gitopsd" for d in docs)
