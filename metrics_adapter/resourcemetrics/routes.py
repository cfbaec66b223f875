"""The metrics.k8s.io/v1beta1 paths, below ``/apis/metrics.k8s.io/v1beta1``.

``nodes``, ``nodes/NAME``, ``pods`` (every namespace), ``namespaces/NS/pods``,
``namespaces/NS/pods/NAME``; ``labelSelector`` and ``fieldSelector`` on lists. The server has
already authenticated and authorized the request (a SubjectAccessReview on ``pods`` or
``nodes`` in ``metrics.k8s.io``, as kube-apiserver would ask for metrics-server).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from metrics_adapter.errors import BadRequest, NotFound
from metrics_adapter.resourcemetrics import fields
from metrics_adapter.resourcemetrics.provider import ResourceMetrics
from metrics_adapter.selectors import Selector

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME = re.compile(r"[^\s\x00-\x1f\x7f/]{1,253}")
_POD_FIELDS = ("metadata.name", "metadata.namespace")
_NODE_FIELDS = ("metadata.name",)


def _field_selector(text: str, supported: tuple[str, ...]) -> fields.FieldSelector:
    try:
        return fields.parse(text, supported)
    except fields.FieldSelectorError as exc:
        raise BadRequest(str(exc)) from exc


def _name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise BadRequest(f"invalid {what} name {name[:80]!r}: at most 253 characters, no whitespace or '/'")
    return name


async def handle(
    rm: ResourceMetrics, rest: Sequence[str], params: dict[str, str], selector: Callable[[str, str], Selector]
) -> bytes:
    labels = selector(params.get("labelSelector", ""), "labelSelector")
    fs = params.get("fieldSelector", "")
    if rest[0] == "nodes" and len(rest) <= 2:
        name = _name(rest[1], "node") if len(rest) == 2 else None
        return await rm.nodes(name, labels, _field_selector(fs, _NODE_FIELDS))
    if rest[0] == "pods" and len(rest) == 1:
        return await rm.pods(None, None, labels, _field_selector(fs, _POD_FIELDS))
    if rest[0] == "namespaces" and len(rest) in (3, 4) and rest[2] == "pods":
        ns = rest[1]
        if not _DNS_LABEL.fullmatch(ns):
            raise BadRequest(
                f"invalid namespace {ns[:80]!r}: a DNS label (lower-case alphanumerics and '-', at most 63)"
            )
        name = _name(rest[3], "pod") if len(rest) == 4 else None
        return await rm.pods(ns, name, labels, _field_selector(fs, _POD_FIELDS))
    raise NotFound(
        "the server could not find the requested resource: resource metrics are at .../nodes[/NAME], .../pods, "
        ".../namespaces/NS/pods[/NAME]"
    )
