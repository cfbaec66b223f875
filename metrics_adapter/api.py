"""Wire types of custom.metrics.k8s.io (v1beta1, v1beta2) and external.metrics.k8s.io (v1beta1).

The shapes follow the Go types in k8s.io/metrics, field for field, because the HPA controller
and ``kubectl`` decode them with those types:

- custom v1beta1 ``MetricValue``: ``describedObject``, ``metricName``, ``timestamp``,
  ``window`` (omitted when unset), ``value``, ``selector`` (always present, ``null`` when unset).
- custom v1beta2 ``MetricValue``: ``describedObject``, ``metric: {name, selector}``,
  ``timestamp``, ``windowSeconds`` (omitted when unset), ``value``.
- external v1beta1 ``ExternalMetricValue``: ``metricName``, ``metricLabels``, ``timestamp``,
  ``window`` (omitted when unset), ``value``.

Values are resource.Quantity strings built the way ``NewMilliQuantity(v*1000, DecimalSI)``
prints them; timestamps are RFC 3339 in UTC to the second, as metav1.Time marshals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from metrics_adapter.selectors import LabelSelectorJSON

CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_GROUP = "external.metrics.k8s.io"
CUSTOM_VERSIONS = ("v1beta1", "v1beta2")  # v1beta2 is preferred, as upstream
EXTERNAL_VERSIONS = ("v1beta1",)

CustomVersion = Literal["v1beta1", "v1beta2"]


class ObjectReference(TypedDict, total=False):
    """core/v1 ObjectReference; empty fields are omitted, as Go's omitempty does."""

    kind: str
    namespace: str
    name: str
    apiVersion: str


def object_reference(kind: str, namespace: str | None, name: str, api_version: str) -> ObjectReference:
    ref: ObjectReference = {"kind": kind}
    if namespace:
        ref["namespace"] = namespace
    ref["name"] = name
    ref["apiVersion"] = api_version
    return ref


class APIResource(TypedDict):
    name: str
    singularName: str
    namespaced: bool
    kind: str
    verbs: list[str]


@dataclass(frozen=True, slots=True)
class CustomItem:
    """One object's value of a custom metric, before it is put in a given API version's shape."""

    described: ObjectReference
    metric: str
    timestamp: float  # unix seconds of the sample
    value: float
    selector: LabelSelectorJSON | None = None
    window_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalItem:
    """One series of an external metric."""

    metric: str
    labels: Mapping[str, str]
    timestamp: float
    value: float
    window_seconds: int | None = None


_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


def quantity(value: float) -> str:
    """A Quantity string for ``value`` with milli precision (DecimalSI canonical form).

    Like ``resource.NewMilliQuantity(int64(v*1000), DecimalSI).String()``: ``0.5`` → ``500m``,
    ``2`` → ``2``, ``1500`` → ``1500``, ``3000`` → ``3k``. Python integers do not overflow,
    so values beyond int64 milli-units still print exactly instead of wrapping around.
    """
    if not math.isfinite(value):
        raise ValueError(f"{value} has no Quantity form")
    # Truncation towards zero, as the Go conversion does; past 2**53 a float has no fraction,
    # and multiplying first would print float noise in the low digits.
    milli = int(value) * 1000 if abs(value) >= 2.0**53 else int(value * 1000)
    if milli == 0:
        return "0"
    sign = "-" if milli < 0 else ""
    mantissa, exp = abs(milli), -3
    while exp < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exp += 3
    return f"{sign}{mantissa}{_SUFFIXES[exp]}"


def rfc3339(ts: float) -> str:
    """metav1.Time's JSON form: UTC, whole seconds."""
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_entry(name: str, namespaced: bool, kind: str) -> APIResource:
    return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get"]}


def resource_list(group: str, version: str, resources: Sequence[APIResource]) -> dict[str, Any]:
    """The discovery document of one group/version (``APIResourceList``)."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": list(resources),
    }


def api_group(group: str, versions: Sequence[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[-1]}


def api_group_list(groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(g, v) for g, v in groups.items()]}


def custom_list(version: CustomVersion, items: Sequence[CustomItem]) -> dict[str, Any]:
    """A ``MetricValueList`` in the shape of ``version``."""
    out: list[dict[str, Any]] = []
    for it in items:
        entry: dict[str, Any] = {"describedObject": it.described}
        if version == "v1beta1":
            entry["metricName"] = it.metric
        else:
            entry["metric"] = {"name": it.metric, "selector": it.selector}
        entry["timestamp"] = rfc3339(it.timestamp)
        if it.window_seconds is not None:
            entry["window" if version == "v1beta1" else "windowSeconds"] = it.window_seconds
        entry["value"] = quantity(it.value)
        if version == "v1beta1":
            entry["selector"] = it.selector
        out.append(entry)
    return {"kind": "MetricValueList", "apiVersion": f"{CUSTOM_GROUP}/{version}", "metadata": {}, "items": out}


def external_list(items: Sequence[ExternalItem]) -> dict[str, Any]:
    """An ``ExternalMetricValueList``."""
    out: list[dict[str, Any]] = []
    for it in items:
        entry: dict[str, Any] = {
            "metricName": it.metric,
            "metricLabels": dict(it.labels),
            "timestamp": rfc3339(it.timestamp),
        }
        if it.window_seconds is not None:
            entry["window"] = it.window_seconds
        entry["value"] = quantity(it.value)
        out.append(entry)
    return {"kind": "ExternalMetricValueList", "apiVersion": f"{EXTERNAL_GROUP}/v1beta1", "metadata": {}, "items": out}


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    414: "RequestURITooLong",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def status(code: int, message: str, *, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A metav1.Status failure, the body every API error carries."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body
