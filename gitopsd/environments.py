"""The Environment objects in the cluster: read, list, watch, annotate, and write status.

The rest of gitopsd works with parsed ``spec.Environment`` values; this module is where the
raw objects come and go. Status is written with server-side apply on the status subresource
under the field manager ``gitopsd``: only the fields gitopsd owns are sent, so another
writer's fields are never overwritten, and an unchanged status is not sent at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from gitopsd.kube import KubeAPI, Resource, WatchEvent
from gitopsd.kube.client import ListResult
from gitopsd.model import FIELD_MANAGER
from gitopsd.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION

RESOURCE = Resource(GROUP, VERSION, KIND, PLURAL, namespaced=True)
#: Set by ``gitopsd sync`` (any new value): reconcile now, fetching afresh.
REQUESTED_AT = "gitopsd.dev/requestedAt"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def get(kube: KubeAPI, namespace: str, name: str) -> dict[str, Any]:
    return await kube.get(RESOURCE.path(namespace, name))


async def list_all(kube: KubeAPI, namespace: str | None = None, label_selector: str | None = None) -> ListResult:
    return await kube.list(RESOURCE.path(namespace), label_selector=label_selector)


def watch(
    kube: KubeAPI, resource_version: str, namespace: str | None = None, label_selector: str | None = None
) -> AsyncIterator[WatchEvent]:
    return kube.watch(RESOURCE.path(namespace), resource_version=resource_version, label_selector=label_selector)


async def write_status(
    kube: KubeAPI, namespace: str, name: str, status: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER
) -> dict[str, Any]:
    """Apply ``status`` (every field gitopsd owns) to the status subresource."""
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "status": dict(status),
    }
    return await kube.apply(RESOURCE.path(namespace, name, "status"), body, field_manager=field_manager, force=True)


async def annotate(kube: KubeAPI, namespace: str, name: str, annotations: Mapping[str, str | None]) -> dict[str, Any]:
    """Set (or remove, with None) annotations with a merge patch."""
    return await kube.patch(
        RESOURCE.path(namespace, name), {"metadata": {"annotations": dict(annotations)}}, field_manager="gitopsd-cli"
    )


async def patch_spec(kube: KubeAPI, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return await kube.patch(RESOURCE.path(namespace, name), {"spec": dict(spec)}, field_manager="gitopsd-cli")
