"""Which Kubernetes resources exist: plural/singular/kind names, group, scope (a RESTMapper).

Rules name resources loosely (``pod``, ``deployment``, ``apps/deployments``) and URLs carry
group-qualified plurals (``deployments.apps``); both are resolved against the cluster's
discovery, the way client-go's discovery RESTMapper does: a name matches a plural or singular
resource name, case-insensitively, and with no group given the first group in discovery order
wins (the core group first). A small built-in table stands in when no cluster is reachable
(``metrics-adapter check`` without a kubeconfig).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One API resource, as discovery describes it."""

    group: str
    version: str
    resource: str  # plural, lower case
    singular: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` / ``pods``: the form URLs and discovery names use."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


class UnknownResource(LookupError):
    """No resource of that name in the cluster's discovery."""


class Mapper:
    """Resolve resource names against a discovery snapshot."""

    def __init__(self, resources: Iterable[ResourceInfo], *, source: str = "discovery") -> None:
        self.resources = tuple(resources)
        self.source = source
        self._by_key: dict[tuple[str, str], ResourceInfo] = {}
        self._any_group: dict[str, ResourceInfo] = {}
        for info in self.resources:  # first in discovery order wins, as client-go's priority mapper
            for name in {info.resource, info.singular, info.kind.lower()}:
                if not name:
                    continue
                self._by_key.setdefault((info.group, name), info)
                self._any_group.setdefault(name, info)

    def resource_for(self, group: str, resource: str) -> ResourceInfo:
        """Normalise ``resource`` (plural, singular or kind) in ``group`` ("" = any group)."""
        name = resource.lower()
        info = self._by_key.get((group, name)) if group else self._any_group.get(name)
        if info is None:
            where = f" in group {group!r}" if group else ""
            raise UnknownResource(f"no resource {resource!r}{where} in the cluster ({self.source})")
        return info

    def parse_group_resource(self, text: str) -> ResourceInfo:
        """``deployments.apps`` → apps/deployments; ``pods`` → core pods (schema.ParseGroupResource)."""
        resource, _, group = text.partition(".")
        return self.resource_for(group, resource)


def from_aggregated(core: Mapping[str, Any] | None, groups: Mapping[str, Any]) -> list[ResourceInfo]:
    """Resources from aggregated discovery (``APIGroupDiscoveryList`` v2) of /api and /apis."""
    out: list[ResourceInfo] = []
    for doc in (core, groups):
        for item in (doc or {}).get("items") or []:
            group = (item.get("metadata") or {}).get("name", "")
            versions = item.get("versions") or []
            if not versions:
                continue
            ver = versions[0]  # the preferred version comes first
            for r in ver.get("resources") or []:
                kind = (r.get("responseKind") or {}).get("kind", "")
                out.append(
                    ResourceInfo(
                        group=group,
                        version=ver.get("version", ""),
                        resource=r.get("resource", ""),
                        singular=r.get("singularResource", "") or kind.lower(),
                        kind=kind,
                        namespaced=r.get("scope") == "Namespaced",
                    )
                )
    return out


def from_resource_list(group: str, version: str, doc: Mapping[str, Any]) -> list[ResourceInfo]:
    """Resources from one legacy ``APIResourceList`` (subresources skipped)."""
    out = []
    for r in doc.get("resources") or []:
        name = r.get("name", "")
        if "/" in name:
            continue
        kind = r.get("kind", "")
        out.append(
            ResourceInfo(group, version, name, r.get("singularName") or kind.lower(), kind, bool(r.get("namespaced")))
        )
    return out


_BUILTIN = [
    ("", "v1", "pods", "pod", "Pod", True),
    ("", "v1", "services", "service", "Service", True),
    ("", "v1", "namespaces", "namespace", "Namespace", False),
    ("", "v1", "nodes", "node", "Node", False),
    ("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", True),
    ("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", True),
    ("", "v1", "endpoints", "endpoints", "Endpoints", True),
    ("apps", "v1", "deployments", "deployment", "Deployment", True),
    ("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True),
    ("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True),
    ("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True),
    ("batch", "v1", "jobs", "job", "Job", True),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", True),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True),
]


def builtin() -> Mapper:
    """The built-in resources only, for when no cluster is reachable."""
    return Mapper((ResourceInfo(*row) for row in _BUILTIN), source="built-in resource table, no cluster")
