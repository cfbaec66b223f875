"""metrics.k8s.io/v1beta1 wire types, as metrics-server v0.8 writes them.

``kubectl top`` and the HPA controller decode these with k8s.io/metrics' Go types:

- ``PodMetrics``: ``metadata`` (name, namespace, creationTimestamp, labels), ``timestamp``,
  ``window`` (a Go duration string, ``5m0s``), ``containers: [{name, usage: {cpu, memory}}]``.
- ``NodeMetrics``: ``metadata`` (name, creationTimestamp, labels), ``timestamp``, ``window``,
  ``usage: {cpu, memory}``.

Quantities are printed as metrics-server prints them: cpu as a ``DecimalSI`` quantity of
nanocores (``resource.NewScaledQuantity(n, -9)``: ``12345678n``, ``250m``, ``2``), memory as a
``BinarySI`` quantity of whole bytes (``262144Ki``, ``1Gi``; below 1024 or not a multiple of
1024, plain bytes, as Go's canonical form does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metrics_adapter.api import APIResource, rfc3339

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

_DECIMAL = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def cpu_quantity(cores: float) -> str:
    """Cores as metrics-server prints them: nanocores, canonical DecimalSI (truncated, never negative)."""
    if not math.isfinite(cores) or cores <= 0:
        return "0"
    nano = int(cores * 1e9) if cores < 2.0**53 / 1e9 else int(cores) * 1_000_000_000
    if nano == 0:
        return "0"
    exp = -9
    while exp < 18 and nano % 1000 == 0:
        nano //= 1000
        exp += 3
    return f"{nano}{_DECIMAL[exp]}"


def memory_quantity(size: float) -> str:
    """Bytes as metrics-server prints them: whole bytes, canonical BinarySI."""
    if not math.isfinite(size) or size < 1:
        return "0"
    n = int(size)
    if n < 1024:
        return str(n)
    i = 0
    while i < len(_BINARY) - 1 and n % 1024 == 0:
        n //= 1024
        i += 1
    return f"{n}{_BINARY[i]}"


def go_duration(seconds: float) -> str:
    """metav1.Duration's JSON form (Go's time.Duration.String): ``30s``, ``5m0s``, ``1h0m0s``, ``1.5s``."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"  # Go prints sub-second durations in the smaller unit
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    sec = f"{s}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(s)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


@dataclass(frozen=True, slots=True)
class Usage:
    cpu: float  # cores
    memory: float  # bytes

    def json(self) -> dict[str, str]:
        return {"cpu": cpu_quantity(self.cpu), "memory": memory_quantity(self.memory)}


@dataclass(frozen=True, slots=True)
class PodUsage:
    namespace: str
    name: str
    labels: Mapping[str, str]
    timestamp: float
    containers: Sequence[tuple[str, Usage]]


@dataclass(frozen=True, slots=True)
class NodeUsage:
    name: str
    labels: Mapping[str, str]
    timestamp: float
    usage: Usage


def resources() -> list[APIResource]:
    """The APIResourceList entries metrics-server serves."""
    return [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ]


def _meta(name: str, namespace: str | None, labels: Mapping[str, str], now: float) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = rfc3339(now)
    if labels:
        meta["labels"] = dict(labels)
    return meta


def pod(p: PodUsage, window: float, now: float) -> dict[str, Any]:
    return {
        "metadata": _meta(p.name, p.namespace, p.labels, now),
        "timestamp": rfc3339(p.timestamp),
        "window": go_duration(window),
        "containers": [{"name": c, "usage": u.json()} for c, u in p.containers],
    }


def node(n: NodeUsage, window: float, now: float) -> dict[str, Any]:
    return {
        "metadata": _meta(n.name, None, n.labels, now),
        "timestamp": rfc3339(n.timestamp),
        "window": go_duration(window),
        "usage": n.usage.json(),
    }


def pod_list(items: Sequence[PodUsage], window: float, now: float) -> dict[str, Any]:
    return {
        "kind": "PodMetricsList",
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": [pod(p, window, now) for p in items],
    }


def node_list(items: Sequence[NodeUsage], window: float, now: float) -> dict[str, Any]:
    return {
        "kind": "NodeMetricsList",
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": [node(n, window, now) for n in items],
    }


def single(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """One object, as a GET by name answers it (with its kind and apiVersion)."""
    return {"kind": kind, "apiVersion": API_VERSION, **item}
