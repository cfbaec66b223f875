"""prometheus-adapter's rule language: templates, naming, config validation, queries and the registry."""

from __future__ import annotations

import pytest

from metrics_adapter.errors import ConfigError
from metrics_adapter.kube.mapper import builtin
from metrics_adapter.rules import gotemplate
from metrics_adapter.rules.config import Rule, parse
from metrics_adapter.rules.naming import build_namer
from metrics_adapter.rules.query import QueryError, custom_query, external_query
from metrics_adapter.rules.registry import build
from metrics_adapter.rules.resources import ResourceConverter
from metrics_adapter.selectors import EVERYTHING
from metrics_adapter.selectors import parse as sel

POD_RULE = """
rules:
- seriesQuery: '{__name__=~"^container_.*",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^container_.*_seconds_total$"
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^container_(.*)_total$"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[2m])) by (<<.GroupBy>>)
"""


def _rule(text: str, kind: str = "rules") -> Rule:
    cfg = parse(text)
    return (cfg.rules if kind == "rules" else cfg.external_rules)[0]


def test_template_renders_fields_map_keys_and_index_like_go() -> None:
    """Fields, map lookups, index, trim markers and comments render as Go's text/template does."""
    t = gotemplate.parse(
        'a <<- /* note */ ->> b <<.Series>> <<.LabelValuesByName.pod>> <<index .LabelValuesByName "ns">>'
        ' <<.LabelValuesByName.missing>>|<<index .LabelValuesByName "missing">>| <<.GroupBySlice>>',
        ["Series", "LabelValuesByName", "GroupBySlice"],
    )
    out = t.render({"Series": "up", "LabelValuesByName": {"pod": "p1|p2", "ns": "shop"}, "GroupBySlice": ["pod", "x"]})
    assert out == "ab up p1|p2 shop <no value>|| [pod x]"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("<<if .Series>>x<<end>>", "'if' action is not supported"),
        ("<<range .GroupBySlice>>x<<end>>", "'range' action"),
        ('<<.Series | printf "%s">>', "pipelines"),
        ("<<$x := .Series>>", "variables"),
        ("<<.Serie>>", "unknown field .Serie"),
        ("<<.Series", "unclosed action"),
        ('<<printf "%s" .Series>>', "unsupported action"),
    ],
)
def test_template_rejects_what_it_cannot_render_faithfully(source: str, fragment: str) -> None:
    """Unsupported template syntax is refused at load time, naming the construct."""
    with pytest.raises(gotemplate.TemplateError, match=fragment):
        gotemplate.parse(source, ["Series", "GroupBySlice"], what="rules[0].metricsQuery")


def test_naming_follows_go_expand_and_defaults() -> None:
    """`as` expands like Go's ExpandString; defaults are $0 / $1; `matches` is also a filter."""
    n = build_namer("^(.*)_total$", "${1}_per_second", [])
    assert n.metric_name("http_requests_total") == "http_requests_per_second"
    assert n.keeps("http_requests_total") and not n.keeps("http_requests")
    # Go reads `$1_per_second` as the group named "1_per_second", which does not exist.
    assert build_namer("^(.*)_total$", "$1_per_second", []).metric_name("x_total") == ""
    assert build_namer("^(.*)_total$", None, []).metric_name("x_total") == "x"
    assert build_namer(None, None, []).metric_name("anything") == "anything"
    assert build_namer("^(?P<base>.*)_seconds$", "${base}_s", []).metric_name("cpu_seconds") == "cpu_s"


def test_series_filters_keep_and_drop() -> None:
    """is / isNot filters apply in addition to the name pattern."""
    rule = _rule(POD_RULE)
    assert rule.namer.keeps("container_network_receive_bytes_total")
    assert not rule.namer.keeps("container_cpu_usage_seconds_total")  # isNot
    assert not rule.namer.keeps("container_memory_usage_bytes")  # name.matches


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("resourceRules: {}", "resourceRules.cpu is required"),
        ("rulez: []", "unknown top-level key 'rulez'"),
        ("rules: {default: true}", "looks like Helm chart values"),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}, label: x}]",
            "rules[0]: unknown field 'label'",
        ),
        ("rules: [{metricsQuery: up, resources: {template: <<.Resource>>}}]", "rules[0].seriesQuery is required"),
        ("rules: [{seriesQuery: up, resources: {template: <<.Resource>>}}]", "rules[0].metricsQuery is required"),
        ("rules: [{seriesQuery: up, metricsQuery: up}]", "needs 'template' or 'overrides'"),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: x_<<.Group>>}}]",
            "must contain <<.Resource>>",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>},"
            " seriesFilters: [{is: a, isNot: b}]}]",
            "seriesFilters[0] must have exactly one",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}, name: {matches: '(a'}}]",
            "invalid regex '(a'",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>},"
            " name: {matches: '(a)(b)'}}]",
            "'as' must say which",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: '<<.Nope>>', resources: {template: <<.Resource>>}}]",
            "rules[0].metricsQuery: unknown field .Nope",
        ),
        (
            "externalRules: [{seriesQuery: up, metricsQuery: up, resources: {namespaced: maybe}}]",
            "namespaced must be true",
        ),
        ("rules: [", "invalid YAML"),
        ("", "nothing would be served"),
        ("queues: {}", "'queues' must be a list"),
    ],
)
def test_bad_configs_are_refused_naming_rule_and_field(text: str, fragment: str) -> None:
    """A config prometheus-adapter would read differently (or silently ignore) is refused by name."""
    with pytest.raises(ConfigError) as err:
        parse(text, "adapter.yaml")
    assert "adapter.yaml" in str(err.value)
    assert fragment in str(err.value)


def test_dangling_group_reference_is_warned_about() -> None:
    """`as: $1_x` loads (as upstream) but carries a warning that it expands to nothing."""
    cfg = parse(
        "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>},"
        " name: {matches: '^(.*)_total$', as: '$1_per_second'}}]"
    )
    assert cfg.warnings and "${N}" in cfg.warnings[0]


def _converter(rule: Rule) -> ResourceConverter:
    m = builtin()
    return ResourceConverter(rule.resources, lambda: m, rule.where)


def test_custom_query_builds_prometheus_adapter_matchers() -> None:
    """Selector matchers first (sorted), then namespace, then the resource label; GroupBy is the resource label."""
    rule = _rule(POD_RULE)
    conv = _converter(rule)
    pods = builtin().resource_for("", "pods")
    q = custom_query(
        rule,
        "container_network_receive_bytes_total",
        resource_label=conv.label_for(pods),
        namespace_label=conv.namespace_label(),
        namespace="shop",
        metric_selector=sel("z in (b,a),iface!=lo,up,!down"),
        names=["web-1", "web-2"],
    )
    assert q == (
        'sum(rate(container_network_receive_bytes_total{down="",iface!="lo",up!="",z=~"a|b",'
        'namespace="shop",pod=~"web-1|web-2",container!="POD"}[2m])) by (pod)'
    )
    everything = custom_query(
        rule, "s", resource_label="pod", namespace_label="namespace", namespace="shop", metric_selector=EVERYTHING
    )
    assert 'namespace="shop",pod=~".+"' in everything
    with pytest.raises(QueryError, match="cannot be turned into a Prometheus label matcher"):
        custom_query(
            rule, "s", resource_label="pod", namespace_label="namespace", namespace="x", metric_selector=sel("n>1")
        )


def test_template_based_resources_map_labels_both_ways() -> None:
    """A `kube_<<.Group>>_<<.Resource>>` template recognises labels and writes them back with sanitised groups."""
    rule = _rule("rules: [{seriesQuery: up, metricsQuery: up, resources: {template: 'kube_<<.Group>>_<<.Resource>>'}}]")
    conv = _converter(rule)
    found, namespaced = conv.resources_for_series(["kube_apps_deployment", "kube_x_nothing", "job"])
    assert [r.group_resource for r in found] == ["deployments.apps"]
    assert not namespaced
    ing = builtin().resource_for("networking.k8s.io", "ingresses")
    assert conv.label_for(ing) == "kube_networking_k8s_io_ingress"


def test_external_query_adds_namespace_unless_not_namespaced() -> None:
    """externalRules match the HPA's namespace through the namespace label; namespaced: false skips it."""
    ns_rule = _rule(
        "externalRules: [{seriesQuery: q, metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)',"
        " resources: {overrides: {kubernetes_namespace: {resource: namespace}}}}]",
        "externalRules",
    )
    conv = _converter(ns_rule)
    q = external_query(
        ns_rule, "q", namespace_label=conv.namespace_label(), namespace="shop", metric_selector=sel("queue=a")
    )
    assert q == 'sum(q{queue="a",kubernetes_namespace="shop"}) by (queue)'
    free = _rule(
        "externalRules: [{seriesQuery: q, metricsQuery: '<<.Series>>{<<.LabelMatchers>>}',"
        " resources: {namespaced: false}}]",
        "externalRules",
    )
    assert external_query(free, "q", namespace_label=None, namespace="shop", metric_selector=EVERYTHING) == "q{}"


def test_registry_attaches_series_to_resources_like_upstream() -> None:
    """Series become metrics per resource; namespaces and nodes are never namespaced; later rules win."""
    cfg = parse(
        POD_RULE
        + """
- seriesQuery: 'node_load1'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__=~"queue_.*"}'
  name: {matches: "^queue_(.*)$", as: "backlog_${1}"}
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>)
"""
    )
    m = builtin()
    rules = [(r, ResourceConverter(r.resources, lambda: m, r.where)) for r in cfg.rules]
    series = {
        cfg.rules[0].series_query: [
            {"__name__": "container_network_receive_bytes_total", "namespace": "a", "pod": "p", "container": "c"},
            {"__name__": "container_cpu_usage_seconds_total", "namespace": "a", "pod": "p"},
        ],
        "node_load1": [{"__name__": "node_load1", "node": "n1", "instance": "x"}],
        cfg.external_rules[0].series_query: [{"__name__": "queue_orders"}, {"__name__": "queue_jobs"}],
    }
    snap = build(rules, cfg.external_rules, series)
    assert snap.custom_names() == [
        ("namespaces/network_receive_bytes", False),
        ("nodes/node_load1", False),
        ("pods/network_receive_bytes", True),
    ]
    assert sorted(snap.external) == ["backlog_jobs", "backlog_orders"]
    assert snap.external["backlog_jobs"].series == "queue_jobs"
