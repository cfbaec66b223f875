"""Wire formats (Quantity, metav1.Time, the three list types, Status), path decoding and request attributes."""

from __future__ import annotations

import pytest

from metrics_adapter import api
from metrics_adapter.auth import RequestHeaderConfig, attributes_for
from metrics_adapter.errors import BadRequest, redact_url
from metrics_adapter.kube.mapper import Mapper, builtin, from_aggregated
from metrics_adapter.server import _segments


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.5, "500m"),
        (2, "2"),
        (1500, "1500"),
        (3000, "3k"),
        (2.5e6, "2500k"),
        (1e9, "1G"),
        (-0.25, "-250m"),
        (0.0004, "0"),
        (12.3456, "12345m"),
        (1e19, "10E"),
    ],
)
def test_quantity_matches_new_milli_quantity(value: float, text: str) -> None:
    """Values print as resource.NewMilliQuantity(v*1000, DecimalSI).String() does."""
    assert api.quantity(value) == text


def test_quantity_refuses_non_finite() -> None:
    """NaN and infinities have no Quantity form."""
    with pytest.raises(ValueError):
        api.quantity(float("nan"))


def test_custom_list_shapes_differ_by_version() -> None:
    """v1beta1: metricName, selector (null when unset), window; v1beta2: metric{name,selector}, windowSeconds."""
    ref = api.object_reference("Pod", "shop", "web-1", "v1")
    item = api.CustomItem(ref, "rps", 1_700_000_000.9, 0.5, None, window_seconds=60)
    v1 = api.custom_list("v1beta1", [item])
    assert v1["apiVersion"] == "custom.metrics.k8s.io/v1beta1" and v1["kind"] == "MetricValueList"
    assert v1["items"][0] == {
        "describedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "apiVersion": "v1"},
        "metricName": "rps",
        "timestamp": "2023-11-14T22:13:20Z",
        "window": 60,
        "value": "500m",
        "selector": None,
    }
    v2 = api.custom_list("v1beta2", [item])
    assert v2["items"][0]["metric"] == {"name": "rps", "selector": None}
    assert v2["items"][0]["windowSeconds"] == 60 and "window" not in v2["items"][0]
    assert "metricName" not in v2["items"][0] and "selector" not in v2["items"][0]
    # cluster-scoped objects carry no namespace (omitempty)
    assert api.object_reference("Node", None, "n1", "v1") == {"kind": "Node", "name": "n1", "apiVersion": "v1"}


def test_external_list_shape() -> None:
    """ExternalMetricValue: metricName, metricLabels, timestamp, value; window only when set."""
    body = api.external_list([api.ExternalItem("backlog", {"queue": "orders"}, 0, 42)])
    assert body["kind"] == "ExternalMetricValueList" and body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    assert body["items"] == [
        {
            "metricName": "backlog",
            "metricLabels": {"queue": "orders"},
            "timestamp": "1970-01-01T00:00:00Z",
            "value": "42",
        }
    ]


def test_status_body() -> None:
    """Errors are metav1.Status objects with reason and code."""
    assert api.status(404, "nope") == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "nope",
        "reason": "NotFound",
        "code": 404,
    }


def test_paths_are_percent_decoded_and_traversal_refused() -> None:
    """%2A decodes to *, a segment decoding to .. or holding / is a 400."""
    assert _segments("/apis/custom.metrics.k8s.io/v1beta1/namespaces/a/pods/%2A/rps")[-2] == "*"
    assert _segments("/apis/x/") == ["apis", "x"]
    for bad in ("/apis/../etc", "/apis/%2e%2e/x", "/apis/a%2Fb", "/apis/%ff"):
        with pytest.raises(BadRequest):
            _segments(bad)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/rps",
            ("get", "custom.metrics.k8s.io", "pods", "rps", "*", "ns"),
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/load",
            ("get", "custom.metrics.k8s.io", "nodes", "load", "n1", ""),
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/metrics/rps",
            ("get", "custom.metrics.k8s.io", "metrics", "", "rps", "ns"),
        ),
        (
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/backlog",
            ("list", "external.metrics.k8s.io", "backlog", "", "", "ns"),
        ),
    ],
)
def test_request_attributes_follow_request_info_factory(path: str, expected: tuple[str, ...]) -> None:
    """SubjectAccessReview attributes are derived as kube-apiserver derives them for the same path."""
    a = attributes_for(_segments(path), "GET", path)
    assert (a.verb, a.group, a.resource, a.subresource, a.name, a.namespace) == expected


def test_discovery_paths_are_non_resource_requests() -> None:
    """Group and version documents are authorized as non-resource URLs."""
    a = attributes_for(["apis", "custom.metrics.k8s.io", "v1beta1"], "GET", "/apis/custom.metrics.k8s.io/v1beta1")
    assert not a.is_resource and a.path == "/apis/custom.metrics.k8s.io/v1beta1" and a.verb == "get"


def test_requestheader_config_from_configmap() -> None:
    """The ConfigMap's JSON lists are read; missing keys fall back to kube-apiserver's defaults."""
    cfg = RequestHeaderConfig.from_configmap(
        {
            "requestheader-client-ca-file": "PEM",
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
        }
    )
    assert cfg.ca_pem == "PEM" and cfg.allowed_names == ("front-proxy-client",)
    assert cfg.group_headers == ("X-Remote-Group",) and cfg.extra_prefixes == ("X-Remote-Extra-",)


def test_mapper_resolves_like_a_discovery_rest_mapper() -> None:
    """Plural, singular and group-qualified names resolve; the core group wins an unqualified clash."""
    agg_core = {
        "items": [
            {
                "metadata": {"name": ""},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {
                                "resource": "events",
                                "singularResource": "event",
                                "scope": "Namespaced",
                                "responseKind": {"kind": "Event"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    agg = {
        "items": [
            {
                "metadata": {"name": "events.k8s.io"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {
                                "resource": "events",
                                "singularResource": "event",
                                "scope": "Namespaced",
                                "responseKind": {"kind": "Event"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    m = Mapper(from_aggregated(agg_core, agg))
    assert m.resource_for("", "event").group == ""
    assert m.parse_group_resource("events.events.k8s.io").group == "events.k8s.io"
    assert builtin().parse_group_resource("deployments.apps").kind == "Deployment"
    with pytest.raises(LookupError, match="no resource 'widgets'"):
        builtin().resource_for("", "widgets")


def test_urls_in_messages_carry_no_credentials() -> None:
    """User info and query strings are stripped from upstream URLs shown to users."""
    assert redact_url("http://user:secret@prom:9090/x?token=abc") == "http://prom:9090/x"
    assert redact_url("http://[::1]:9090") == "http://[::1]:9090"
