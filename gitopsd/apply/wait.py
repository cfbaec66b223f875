"""Waiting until an Environment's objects are ready: polled lists, kstatus verdicts, a deadline.

Each round reads every kind that still has objects not ready with one list (selected by the
owner label when the owner is known, else one list per namespace), about once a second, and
assesses each object with ``gitopsd.health``. An object that reached Current is not read again.
The wait ends when all are Current (Healthy), as soon as one is Failed (waiting will not help),
or at the deadline (TimedOut), naming the first object not ready and what it lacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gitopsd.apply.inventory import Inventory, InventoryEntry
from gitopsd.apply.live import PAGE_SIZE, owner_selector
from gitopsd.apply.parallel import bounded
from gitopsd.health import ALWAYS_READY, Health, HealthReport, ObjectHealth, Overall, Status, assess, summarize
from gitopsd.kube import Kube, Resource, UnknownKind
from gitopsd.model import ObjectRef

Progress = Callable[[HealthReport], None]


async def resolve(kube: Kube, entry: InventoryEntry) -> Resource | None:
    """The served type of an inventory entry: its own version, else its group's preferred one."""
    try:
        return await kube.discovery.resource(entry.api_version, entry.ref.kind)
    except UnknownKind:
        pass
    try:
        return await kube.discovery.preferred(entry.ref.group, entry.ref.kind)
    except UnknownKind:
        return None


async def wait(
    kube: Kube,
    inventory: Inventory,
    timeout: float,
    *,
    owner: str | None = None,
    interval: float = 1.0,
    concurrency: int = 8,
    on_progress: Progress | None = None,
) -> HealthReport:
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    verdicts: dict[ObjectRef, Health] = {}
    pending: dict[ObjectRef, Resource] = {}
    for entry in inventory:
        if (entry.ref.group, entry.ref.kind) in ALWAYS_READY:
            verdicts[entry.ref] = Health.current("exists")
            continue
        resource = await resolve(kube, entry)
        if resource is None:
            verdicts[entry.ref] = Health(Status.UNKNOWN, "its type is not served by the cluster", "UnknownKind")
        else:
            pending[entry.ref] = resource
    while True:
        for ref, health in (await _poll(kube, pending, owner, concurrency)).items():
            verdicts[ref] = health
            if health.ready:
                del pending[ref]
        now = time.monotonic()
        report = summarize(
            (ObjectHealth(ref, h) for ref, h in verdicts.items()),
            deadline_passed=now >= deadline,
            elapsed=now - started,
        )
        if on_progress is not None:
            on_progress(report)
        if report.overall is not Overall.PROGRESSING:
            return report
        await asyncio.sleep(max(0.0, min(interval, deadline - now)))


async def _poll(
    kube: Kube, pending: dict[ObjectRef, Resource], owner: str | None, concurrency: int
) -> dict[ObjectRef, Health]:
    """Read every pending object: one list per kind (by label) or per kind and namespace."""
    queries: dict[tuple[str, str, str], tuple[Resource, str | None]] = {}
    for ref, resource in pending.items():
        namespace = None if owner or not resource.namespaced else ref.namespace
        queries[(resource.group, resource.kind, namespace or "")] = (resource, namespace)

    async def run(query: tuple[Resource, str | None]) -> list[dict[str, Any]]:
        resource, namespace = query
        selector = owner_selector(owner) if owner else None
        return (await kube.list(resource.path(namespace), label_selector=selector, page_size=PAGE_SIZE)).items

    found: dict[ObjectRef, dict[str, Any]] = {}
    failed: dict[tuple[str, str], str] = {}
    items = list(queries.values())
    for (resource, _), outcome in zip(items, await bounded(items, run, concurrency), strict=True):
        if isinstance(outcome, Exception):
            failed[(resource.group, resource.kind)] = str(outcome)
            continue
        for obj in outcome:
            found[ObjectRef.of(obj)] = obj
    now = time.time()
    verdicts: dict[ObjectRef, Health] = {}
    for ref, resource in pending.items():
        error = failed.get((resource.group, resource.kind))
        if error:
            verdicts[ref] = Health(Status.UNKNOWN, f"cannot be read: {error}", "ReadFailed")
        elif ref in found:
            verdicts[ref] = assess(found[ref], now)
        else:
            verdicts[ref] = Health(Status.NOT_FOUND, "not found", "NotFound")
    return verdicts
