"""resourceRules parsing, metrics.k8s.io quantities and durations, field selectors: pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metrics_adapter.errors import ConfigError
from metrics_adapter.resourcemetrics import fields, wire
from metrics_adapter.resourcemetrics.config import parse_duration
from metrics_adapter.rules import config

FIXTURE = Path(__file__).with_name("resource_metrics_config_map.yaml")

CPU = """
    containerLabel: container
    containerQuery: sum by (<<.GroupBy>>) (rate(c{<<.LabelMatchers>>}[1m]))
    nodeQuery: sum by (<<.GroupBy>>) (rate(n{<<.LabelMatchers>>}[1m]))
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}}
"""


def _config(cpu: str = CPU, memory: str = CPU, window: str = "window: 30s") -> str:
    indent = "\n".join("  " + line for line in window.splitlines())
    return f"resourceRules:\n  cpu:{cpu}\n  memory:{memory}\n{indent}\n"


def test_prometheus_adapters_own_deploy_config_is_accepted_unchanged() -> None:
    """deploy/manifests/config-map.yaml of prometheus-adapter v0.12.0 loads, both parts and the window."""
    cm = yaml.safe_load(FIXTURE.read_text())
    cfg = config.parse(cm["data"]["config.yaml"], "config-map.yaml")
    rr = cfg.resource_rules
    assert rr is not None and not cfg.rules and not cfg.external_rules
    assert rr.window_seconds == 300
    assert rr.cpu.container_label == rr.memory.container_label == "container"
    assert set(rr.cpu.resources.overrides) == {"namespace", "node", "pod"}
    rendered = rr.memory.container_query.render(
        {"Series": "", "LabelMatchers": 'pod=~".+"', "LabelValuesByName": {}, "GroupBy": "pod,container"}
    )
    assert "sum by (pod,container)" in rendered
    assert 'container_memory_working_set_bytes{pod=~".+",container!="",pod!=""}' in rendered


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (_config(window="window: 5 minutes"), "resourceRules.window '5 minutes' is not a positive Prometheus duration"),
        (_config(window="window: 0s"), "resourceRules.window '0s' is not a positive"),
        (_config(window=""), "resourceRules.window is required"),
        ("resourceRules:\n  memory: {}\n  window: 5m\n", "resourceRules.cpu is required"),
        ("resourceRules:\n  cpu: {}\n  window: 5m\n", "resourceRules.memory is required"),
        (_config(memory=CPU.replace("containerLabel: container", "containerLabel: ''")), "memory.containerLabel is"),
        (_config(cpu=CPU.replace("nodeQuery", "nodeQuerry")), "resourceRules.cpu: unknown field 'nodeQuerry'"),
        (_config(cpu=CPU.replace("    nodeQuery:", "    x: 1\n    y:")), "resourceRules.cpu: unknown field 'x'"),
        (_config(cpu="\n    containerLabel: c\n    nodeQuery: n\n"), "resourceRules.cpu.containerQuery is required"),
        (_config(cpu=CPU.replace("<<.GroupBy>>", "<<.Groups>>", 1)), "resourceRules.cpu.containerQuery"),
        (_config(memory=CPU.replace("resources: {", "resources: {bogus: 1, ")), "memory.resources: unknown field"),
        (_config(memory=CPU.split("    resources")[0] + "    resources: {}\n"), "needs 'template' or 'overrides'"),
        ("resourceRules: [cpu]\n", "resourceRules must be a mapping"),
        (_config(window="window: 5m\nwindows: 5m"), "resourceRules: unknown field 'windows'"),
    ],
)
def test_bad_resource_rules_name_the_field(text: str, fragment: str) -> None:
    """Each mistake is refused at load, naming resourceRules and the field."""
    with pytest.raises(ConfigError) as err:
        config.parse(text, "c.yaml")
    assert fragment in str(err.value)
    assert "c.yaml" in str(err.value)


def test_durations_follow_prometheus() -> None:
    """Prometheus durations, units largest first."""
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    for bad in ("", "5", "5 m", "m5", "5s1m", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("cores", "text"),
    [
        (0.0, "0"),
        (-1.0, "0"),
        (0.012345678, "12345678n"),
        (0.25, "250m"),
        (0.000001, "1u"),
        (2.0, "2"),
        (1.5, "1500m"),
        (0.0000000004, "0"),
        (float("nan"), "0"),
    ],
)
def test_cpu_is_printed_in_nanocores_as_metrics_server(cores: float, text: str) -> None:
    """resource.NewScaledQuantity(nanocores, -9) in its canonical DecimalSI form."""
    assert wire.cpu_quantity(cores) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (512, "512"),
        (1024, "1Ki"),
        (268435456, "256Mi"),
        (1536000, "1500Ki"),
        (1025, "1025"),
        (2.0**30, "1Gi"),
    ],
)
def test_memory_is_printed_binary_si_as_metrics_server(size: float, text: str) -> None:
    """resource.NewQuantity(bytes, BinarySI) in its canonical form."""
    assert wire.memory_quantity(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(300, "5m0s"), (30, "30s"), (3600, "1h0m0s"), (90.5, "1m30.5s"), (0.5, "500ms"), (0, "0s")]
)
def test_window_is_a_go_duration(seconds: float, text: str) -> None:
    """metav1.Duration marshals as time.Duration.String()."""
    assert wire.go_duration(seconds) == text


def test_field_selectors_on_metadata() -> None:
    """metadata.name / metadata.namespace with =, ==, !=; other fields are refused by name."""
    sel = fields.parse("metadata.name!=a,metadata.namespace==ns", ("metadata.name", "metadata.namespace"))
    assert sel.matches({"metadata.name": "b", "metadata.namespace": "ns"})
    assert not sel.matches({"metadata.name": "a", "metadata.namespace": "ns"})
    assert not sel.matches({"metadata.name": "b", "metadata.namespace": "other"})
    assert fields.parse("", ("metadata.name",)) is fields.EVERYTHING
    with pytest.raises(fields.FieldSelectorError, match=r"field 'spec\.nodeName' is not supported"):
        fields.parse("spec.nodeName=n1", ("metadata.name",))
    with pytest.raises(fields.FieldSelectorError, match="is not FIELD=VALUE"):
        fields.parse("metadata.name", ("metadata.name",))


def test_pod_and_node_lists_have_metrics_servers_shape() -> None:
    """PodMetricsList / NodeMetricsList field for field as k8s.io/metrics marshals them."""
    pod = wire.PodUsage("ns", "web-1", {"app": "web"}, 1_700_000_000.9, [("app", wire.Usage(0.25, 64 * 2**20))])
    assert wire.pod_list([pod], 300, 1_700_000_001) == {
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metadata": {
                    "name": "web-1",
                    "namespace": "ns",
                    "creationTimestamp": "2023-11-14T22:13:21Z",
                    "labels": {"app": "web"},
                },
                "timestamp": "2023-11-14T22:13:20Z",
                "window": "5m0s",
                "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}],
            }
        ],
    }
    node = wire.NodeUsage("n1", {}, 1_700_000_000, wire.Usage(1.5, 2**31))
    assert wire.single("NodeMetrics", wire.node(node, 30, 1_700_000_000)) == {
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:20Z"},
        "timestamp": "2023-11-14T22:13:20Z",
        "window": "30s",
        "usage": {"cpu": "1500m", "memory": "2Gi"},
    }
