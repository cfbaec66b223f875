"""OpenAPI documents for ``/openapi/v2`` and ``/openapi/v3``, so kube-apiserver can aggregate them.

kube-apiserver's aggregator downloads every APIService backend's OpenAPI spec; a backend that
answers 404 or garbage gets retried and logged. These documents describe the read-only list
endpoints and the value types, which is all there is, and carry an ETag so the aggregator's
conditional downloads are cheap.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from metrics_adapter import __version__
from metrics_adapter.api import CUSTOM_GROUP, CUSTOM_VERSIONS, EXTERNAL_GROUP
from metrics_adapter.resourcemetrics import openapi as resource_openapi
from metrics_adapter.resourcemetrics.wire import GROUP as RESOURCE_GROUP

_STR = {"type": "string"}
_QTY = {"type": "string", "description": "a Kubernetes resource.Quantity"}
_TIME = {"type": "string", "format": "date-time"}
_OBJREF = {
    "type": "object",
    "properties": {k: _STR for k in ("kind", "namespace", "name", "apiVersion")},
}
_SELECTOR = {"type": "object", "description": "a metav1.LabelSelector", "x-kubernetes-map-type": "atomic"}


def _schemas(ref: str) -> dict[str, Any]:
    def r(name: str) -> dict[str, str]:
        return {"$ref": f"{ref}{name}"}

    cm1 = "io.k8s.metrics.pkg.apis.custom_metrics.v1beta1."
    cm2 = "io.k8s.metrics.pkg.apis.custom_metrics.v1beta2."
    em1 = "io.k8s.metrics.pkg.apis.external_metrics.v1beta1."
    listmeta = {"type": "object"}
    return {
        cm1 + "MetricValue": {
            "type": "object",
            "required": ["describedObject", "metricName", "timestamp", "value"],
            "properties": {
                "describedObject": _OBJREF,
                "metricName": _STR,
                "timestamp": _TIME,
                "window": {"type": "integer", "format": "int64"},
                "value": _QTY,
                "selector": _SELECTOR,
            },
        },
        cm1 + "MetricValueList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": listmeta,
                "items": {"type": "array", "items": r(cm1 + "MetricValue")},
            },
            "x-kubernetes-group-version-kind": [
                {"group": CUSTOM_GROUP, "version": "v1beta1", "kind": "MetricValueList"}
            ],
        },
        cm2 + "MetricIdentifier": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _STR, "selector": _SELECTOR},
        },
        cm2 + "MetricValue": {
            "type": "object",
            "required": ["describedObject", "metric", "timestamp", "value"],
            "properties": {
                "describedObject": _OBJREF,
                "metric": r(cm2 + "MetricIdentifier"),
                "timestamp": _TIME,
                "windowSeconds": {"type": "integer", "format": "int64"},
                "value": _QTY,
            },
        },
        cm2 + "MetricValueList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": listmeta,
                "items": {"type": "array", "items": r(cm2 + "MetricValue")},
            },
            "x-kubernetes-group-version-kind": [
                {"group": CUSTOM_GROUP, "version": "v1beta2", "kind": "MetricValueList"}
            ],
        },
        em1 + "ExternalMetricValue": {
            "type": "object",
            "required": ["metricName", "metricLabels", "timestamp", "value"],
            "properties": {
                "metricName": _STR,
                "metricLabels": {"type": "object", "additionalProperties": _STR},
                "timestamp": _TIME,
                "window": {"type": "integer", "format": "int64"},
                "value": _QTY,
            },
        },
        em1 + "ExternalMetricValueList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "kind": _STR,
                "apiVersion": _STR,
                "metadata": listmeta,
                "items": {"type": "array", "items": r(em1 + "ExternalMetricValue")},
            },
            "x-kubernetes-group-version-kind": [
                {"group": EXTERNAL_GROUP, "version": "v1beta1", "kind": "ExternalMetricValueList"}
            ],
        },
    }


def _paths(group: str, version: str, ref: str, v3: bool) -> dict[str, Any]:
    if group == EXTERNAL_GROUP:
        kind = "io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList"
        templates = ["namespaces/{namespace}/{metric}"]
    else:
        kind = f"io.k8s.metrics.pkg.apis.custom_metrics.{version}.MetricValueList"
        templates = [
            "namespaces/{namespace}/{resource}/{name}/{metric}",
            "{resource}/{name}/{metric}",
            "namespaces/{namespace}/metrics/{metric}",
        ]
    out: dict[str, Any] = {}
    for t in templates:
        params = [
            {"name": p, "in": "path", "required": True, **({"schema": _STR} if v3 else {"type": "string"})}
            for p in _params(t)
        ]
        for q in ("labelSelector", "metricLabelSelector"):
            params.append({"name": q, "in": "query", **({"schema": _STR} if v3 else {"type": "string"})})
        ok: dict[str, Any] = {"description": "OK"}
        if v3:
            ok["content"] = {"application/json": {"schema": {"$ref": f"{ref}{kind}"}}}
        else:
            ok["schema"] = {"$ref": f"{ref}{kind}"}
        out[f"/apis/{group}/{version}/{t}"] = {
            "get": {
                "operationId": f"list{kind.rsplit('.', 1)[-1]}{len(out)}{version}",
                "parameters": params,
                "responses": {"200": ok},
                "tags": [f"{group.split('.')[0]}Metrics_{version}"],
            }
        }
    return out


def _params(template: str) -> list[str]:
    return [p[1:-1] for p in template.split("/") if p.startswith("{")]


def _serialize(doc: dict[str, Any]) -> tuple[bytes, str]:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return data, hashlib.sha256(data).hexdigest()[:32].upper()


def v2() -> tuple[bytes, str]:
    paths: dict[str, Any] = {}
    for v in CUSTOM_VERSIONS:
        paths |= _paths(CUSTOM_GROUP, v, "#/definitions/", False)
    paths |= _paths(EXTERNAL_GROUP, "v1beta1", "#/definitions/", False)
    paths |= resource_openapi.paths("#/definitions/", False)
    doc = {
        "swagger": "2.0",
        "info": {"title": "metrics-adapter", "version": __version__},
        "paths": paths,
        "definitions": _schemas("#/definitions/") | resource_openapi.schemas("#/definitions/"),
    }
    return _serialize(doc)


def v3_groups() -> dict[str, tuple[bytes, str]]:
    """``apis/<group>/<version>`` → document and its hash."""
    out = {}
    for group, version in [*((CUSTOM_GROUP, v) for v in CUSTOM_VERSIONS), (EXTERNAL_GROUP, "v1beta1")]:
        doc = {
            "openapi": "3.0.0",
            "info": {"title": "metrics-adapter", "version": __version__},
            "paths": _paths(group, version, "#/components/schemas/", True),
            "components": {"schemas": _schemas("#/components/schemas/")},
        }
        out[f"apis/{group}/{version}"] = _serialize(doc)
    ref = "#/components/schemas/"
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "metrics-adapter", "version": __version__},
        "paths": resource_openapi.paths(ref, True),
        "components": {"schemas": resource_openapi.schemas(ref)},
    }
    out[f"apis/{RESOURCE_GROUP}/v1beta1"] = _serialize(doc)
    return out


def v3_index(groups: dict[str, tuple[bytes, str]]) -> bytes:
    paths = {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, (_, h) in groups.items()}
    return json.dumps({"paths": paths}, sort_keys=True).encode()
