"""Stage 0 of a sync: the bundle's CRDs and Namespaces, which other objects may need to exist.

After they are written, ``settle`` waits (bounded) until each CRD is Established (a CRD whose
names clash fails at once) and checks no Namespace is being deleted. ``resolve_deferred`` then
finds, through discovery, the types of the objects that waited for stage 0, so they can be
dry-run before anything else is written (see ``applier`` for why they had to wait).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gitopsd.apply.errors import Rejection
from gitopsd.apply.plan import CRD_KIND, NAMESPACE_KIND, Desired, Plan, Stage
from gitopsd.health import Status, assess
from gitopsd.kube import KubeAPI, UnknownKind
from gitopsd.model import ObjectRef

POLL_SECONDS = 0.2


async def settle(
    kube: KubeAPI, plan: Plan, written: Mapping[ObjectRef, dict[str, Any]], timeout: float
) -> list[Rejection]:
    """Wait for the CRDs written now or needed by deferred objects; what did not become ready, and why."""
    problems = [
        Rejection(ref, "", "NamespaceTerminating", "is being deleted; objects cannot be created in it")
        for ref, obj in written.items()
        if ref.kind == NAMESPACE_KIND and (obj.get("status") or {}).get("phase") == "Terminating"
    ]
    needed = {d.waits_for for d in plan.deferred()}
    pending = {
        d.ref: d
        for d in plan.stage(Stage.FOUNDATION)
        if d.ref.kind == CRD_KIND and (d.ref in written or d.ref in needed) and d.resource is not None
    }
    deadline = time.monotonic() + timeout
    last: dict[ObjectRef, str] = {}
    while pending and time.monotonic() < deadline:
        for ref, d in list(pending.items()):
            assert d.resource is not None
            health = assess(await kube.get(d.resource.path(None, ref.name)))
            if health.ready:
                del pending[ref]
            elif health.status is Status.FAILED:
                problems.append(Rejection(ref, d.origin, health.reason or "NotEstablished", health.message))
                del pending[ref]
            else:
                last[ref] = health.message
        if pending:
            await asyncio.sleep(POLL_SECONDS)
    for ref, d in pending.items():
        message = f"not Established after {timeout:.0f}s ({last.get(ref, 'no status yet')})"
        problems.append(Rejection(ref, d.origin, "NotEstablished", message))
    return problems


async def resolve_deferred(kube: KubeAPI, plan: Plan, timeout: float) -> tuple[list[Desired], list[Rejection]]:
    """The deferred objects with their now-served types; a type still unknown at the deadline is refused."""
    deadline = time.monotonic() + timeout
    resolved: list[Desired] = []
    rejections: list[Rejection] = []
    for d in plan.deferred():
        while True:
            try:
                resource = await kube.discovery.resource(d.api_version, d.ref.kind)
            except UnknownKind as exc:
                if time.monotonic() >= deadline:
                    rejections.append(Rejection(d.ref, d.origin, "UnknownKind", str(exc)))
                    break
                # An Established CRD reaches discovery a moment later.
                await asyncio.sleep(0.5)
                await kube.discovery.refresh()
                continue
            resolved.append(replace(d, resource=resource, waits_for=None))
            break
    return resolved, rejections
