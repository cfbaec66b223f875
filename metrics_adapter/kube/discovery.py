"""Fetch the cluster's resource list for the mapper: aggregated discovery, legacy as a fallback.

Kubernetes ≥ 1.30 answers ``/api`` and ``/apis`` with every group's resources in two requests
(aggregated discovery, ``apidiscovery.k8s.io/v2``); older servers get the legacy walk over
each group's preferred version. The metrics groups themselves are skipped: they are ours,
and asking the aggregator about them would call back into this process.
"""

from __future__ import annotations

import structlog

from metrics_adapter.kube.client import KubeClient, KubeError
from metrics_adapter.kube.mapper import Mapper, ResourceInfo, from_aggregated, from_resource_list

log = structlog.get_logger("metrics_adapter.discovery")

_AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
SKIPPED_GROUPS = frozenset({"custom.metrics.k8s.io", "external.metrics.k8s.io", "metrics.k8s.io"})


async def discover(client: KubeClient) -> Mapper:
    """A mapper over every resource the API server lists (raises KubeError when unreachable)."""
    core = await client.get("/api", accept=_AGGREGATED)
    groups = await client.get("/apis", accept=_AGGREGATED)
    infos: list[ResourceInfo]
    if (core or {}).get("kind") == "APIGroupDiscoveryList" and (groups or {}).get("kind") == "APIGroupDiscoveryList":
        infos = from_aggregated(core, groups)
    else:
        infos = from_resource_list("", "v1", await client.get("/api/v1"))
        for g in (groups or {}).get("groups") or []:
            name = g.get("name", "")
            version = (g.get("preferredVersion") or {}).get("version")
            if not version or name in SKIPPED_GROUPS:
                continue
            try:
                infos += from_resource_list(name, version, await client.get(f"/apis/{name}/{version}"))
            except KubeError as exc:  # one broken aggregated API must not hide the others
                log.warning("skipping an API group whose discovery failed", group=name, error=exc.message)
    infos = [i for i in infos if i.group not in SKIPPED_GROUPS]
    return Mapper(infos, source=f"discovery of {client.source}")
