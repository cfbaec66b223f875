"""OpenAPI parts for metrics.k8s.io/v1beta1: the NodeMetrics / PodMetrics schemas and their paths.

Merged into the adapter's ``/openapi/v2`` and ``/openapi/v3`` documents (``metrics_adapter.openapi``)
so the aggregator's download of them succeeds and ``kubectl explain``-style clients see the types.
"""

from __future__ import annotations

from typing import Any

from metrics_adapter.resourcemetrics.wire import GROUP, VERSION

_PREFIX = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
_STR = {"type": "string"}
_QTY = {"type": "string", "description": "a Kubernetes resource.Quantity"}
_TIME = {"type": "string", "format": "date-time"}
_USAGE = {"type": "object", "additionalProperties": _QTY}
_META = {"type": "object", "description": "metav1.ObjectMeta"}


def schemas(ref: str) -> dict[str, Any]:
    def r(name: str) -> dict[str, str]:
        return {"$ref": f"{ref}{_PREFIX}{name}"}

    def listing(kind: str) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["items"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": {"type": "object"},
                "items": {"type": "array", "items": r(kind)},
            },
            "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION, "kind": f"{kind}List"}],
        }

    def gvk(kind: str) -> list[dict[str, str]]:
        return [{"group": GROUP, "version": VERSION, "kind": kind}]

    return {
        _PREFIX + "ContainerMetrics": {
            "type": "object",
            "required": ["name", "usage"],
            "properties": {"name": _STR, "usage": _USAGE},
        },
        _PREFIX + "PodMetrics": {
            "type": "object",
            "required": ["timestamp", "window", "containers"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": _META,
                "timestamp": _TIME,
                "window": _STR,
                "containers": {"type": "array", "items": r("ContainerMetrics")},
            },
            "x-kubernetes-group-version-kind": gvk("PodMetrics"),
        },
        _PREFIX + "NodeMetrics": {
            "type": "object",
            "required": ["timestamp", "window", "usage"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": _META,
                "timestamp": _TIME,
                "window": _STR,
                "usage": _USAGE,
            },
            "x-kubernetes-group-version-kind": gvk("NodeMetrics"),
        },
        _PREFIX + "PodMetricsList": listing("PodMetrics"),
        _PREFIX + "NodeMetricsList": listing("NodeMetrics"),
    }


_PATHS = (
    ("nodes", "NodeMetricsList", "listMetricsV1beta1NodeMetrics"),
    ("nodes/{name}", "NodeMetrics", "readMetricsV1beta1NodeMetrics"),
    ("pods", "PodMetricsList", "listMetricsV1beta1PodMetricsForAllNamespaces"),
    ("namespaces/{namespace}/pods", "PodMetricsList", "listMetricsV1beta1NamespacedPodMetrics"),
    ("namespaces/{namespace}/pods/{name}", "PodMetrics", "readMetricsV1beta1NamespacedPodMetrics"),
)


def paths(ref: str, v3: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    typ: dict[str, Any] = {"schema": _STR} if v3 else {"type": "string"}
    for template, kind, op in _PATHS:
        params = [{"name": p[1:-1], "in": "path", "required": True, **typ} for p in template.split("/") if p[0] == "{"]
        if not template.endswith("{name}"):
            params += [{"name": q, "in": "query", **typ} for q in ("labelSelector", "fieldSelector")]
        target = {"$ref": f"{ref}{_PREFIX}{kind}"}
        ok: dict[str, Any] = {"description": "OK"}
        if v3:
            ok["content"] = {"application/json": {"schema": target}}
        else:
            ok["schema"] = target
        out[f"/apis/{GROUP}/{VERSION}/{template}"] = {
            "get": {"operationId": op, "parameters": params, "responses": {"200": ok}, "tags": [f"metrics_{VERSION}"]}
        }
    return out
