"""The resource types a ``FakeKube`` serves, and the discovery documents that describe them.

The defaults are the built-in kinds the engine meets plus gitopsd's own Environment; a test
registers more with ``Kinds.register`` (or by creating a CustomResourceDefinition, see
``objects``). Discovery is served in the aggregated form (``APIGroupDiscoveryList``) that
``gitopsd.kube.discovery`` asks for first, and as the older per-version ``APIResourceList``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gitopsd.spec import GROUP, KIND, PLURAL, VERSION

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True, slots=True)
class Kind:
    """One served type. ``status``: it has a status subresource (main-resource writes leave
    ``.status`` alone, ``/status`` writes change nothing else); ``generation``: the server keeps
    ``metadata.generation``, bumped when anything outside metadata and status changes."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    status: bool = False
    generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _core(kind: str, plural: str, namespaced: bool = True, **flags: bool) -> Kind:
    return Kind("", "v1", kind, plural, namespaced, **flags)


def _workload(group: str, kind: str, plural: str) -> Kind:
    return Kind(group, "v1", kind, plural, True, status=True, generation=True)


DEFAULT_KINDS: tuple[Kind, ...] = (
    _core("Namespace", "namespaces", namespaced=False, status=True),
    _core("ConfigMap", "configmaps"),
    _core("Secret", "secrets"),
    _core("Service", "services", status=True),
    _core("ServiceAccount", "serviceaccounts"),
    _core("Pod", "pods", status=True),
    _core("Event", "events"),
    _workload("apps", "Deployment", "deployments"),
    _workload("apps", "StatefulSet", "statefulsets"),
    _workload("apps", "DaemonSet", "daemonsets"),
    _workload("apps", "ReplicaSet", "replicasets"),
    _workload("batch", "Job", "jobs"),
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True),
    Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, status=True),
    Kind(GROUP, VERSION, KIND, PLURAL, True, status=True, generation=True),
)


class Kinds:
    """The served types, by (group, plural) for routing and by (group, version, kind) for lookups."""

    def __init__(self, kinds: tuple[Kind, ...] = DEFAULT_KINDS) -> None:
        self._by_plural: dict[tuple[str, str], Kind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: Kind) -> None:
        self._by_plural[(kind.group, kind.plural)] = kind

    def unregister(self, group: str, plural: str) -> None:
        self._by_plural.pop((group, plural), None)

    def by_plural(self, group: str, version: str, plural: str) -> Kind | None:
        kind = self._by_plural.get((group, plural))
        return kind if kind is not None and kind.version == version else None

    def by_kind(self, group: str, kind: str) -> Kind | None:
        return next((k for k in self if k.group == group and k.kind == kind), None)

    def __iter__(self) -> Iterator[Kind]:
        return iter(sorted(self._by_plural.values(), key=lambda k: (k.group, k.version, k.plural)))

    def versions(self, group: str) -> list[str]:
        return sorted({k.version for k in self if k.group == group})

    # -- discovery documents ---------------------------------------------------------------

    def aggregated(self, core: bool) -> dict[str, Any]:
        """``/api`` (``core``) or ``/apis`` as an ``APIGroupDiscoveryList``."""
        groups = [""] if core else sorted({k.group for k in self if k.group})
        items = []
        for group in groups:
            versions = [
                {
                    "version": v,
                    "resources": [_aggregated_resource(k) for k in self if (k.group, k.version) == (group, v)],
                }
                for v in self.versions(group)
            ]
            items.append({"metadata": {"name": group}, "versions": versions})
        return {"apiVersion": "apidiscovery.k8s.io/v2", "kind": "APIGroupDiscoveryList", "items": items}

    def legacy_root(self, core: bool) -> dict[str, Any]:
        """``/api`` as ``APIVersions`` or ``/apis`` as ``APIGroupList``."""
        if core:
            return {"kind": "APIVersions", "versions": ["v1"]}
        groups = []
        for group in sorted({k.group for k in self if k.group}):
            versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.versions(group)]
            groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        """``/api/v1`` or ``/apis/<group>/<version>`` as an ``APIResourceList``; None if not served."""
        kinds = [k for k in self if (k.group, k.version) == (group, version)]
        if not kinds:
            return None
        resources = []
        for k in kinds:
            resources.append({"name": k.plural, "namespaced": k.namespaced, "kind": k.kind, "verbs": _VERBS})
            if k.status:
                resources.append({"name": f"{k.plural}/status", "namespaced": k.namespaced, "kind": k.kind,
                                  "verbs": ["get", "patch", "update"]})  # fmt: skip
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _aggregated_resource(kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": kind.plural,
        "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "verbs": _VERBS,
    }
    if kind.status:
        out["subresources"] = [
            {
                "subresource": "status",
                "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
                "verbs": ["get", "patch", "update"],
            }
        ]
    return out
