"""Hook objects: created (POST, so ``generateName`` works), awaited, cleaned up per policy.

A hook is not applied server-side and not inventoried: like a Helm hook or an Argo CD hook it
is created anew on each sync that runs its phase and is never pruned. Each instance carries
the Environment's label and ``gitopsd.dev/hook-id`` (a digest of the hook's kind, namespace and
name or generateName), which is how ``BeforeHookCreation`` finds the earlier instances, named
or generated, and deletes them before the new one is created. A named hook that still exists
is always deleted first (a finished Job cannot be updated), whatever its policy.

Completion is the kind's health rule (``gitopsd.health``): a Job is done once Complete,
failed once Failed; a Pod once Succeeded or Failed; any other kind once Current. A failed
hook's message carries the last lines of its pod's log or, when there is none (pods on fake
nodes have no kubelet), the Job's failure condition and the containers' exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd import health
from gitopsd.errors import truncate
from gitopsd.health.status import Status
from gitopsd.kube import ApiError, KubeAPI, NotFound, Resource, UnknownKind
from gitopsd.model import ENVIRONMENT_LABEL, ObjectRef
from gitopsd.outcome import Aside, stay
from gitopsd.phases.classify import HOOK_LABEL, Hook, Policy

#: Log lines quoted in a failed hook's message.
LOG_LINES = 10
#: How long a deleted earlier instance may take to go before the new one is created anyway.
GONE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class HookRun:
    """One hook instance's end: ``ref`` names the created object; ``message`` says how it ended."""

    hook: Hook
    ref: ObjectRef | None
    succeeded: bool
    message: str

    @property
    def label(self) -> str:
        """``PreSync hook Job shop/migrate-x7k2p``."""
        if self.ref is None:
            return f"{self.hook.phase} hook {self.hook.name}"
        where = f"{self.ref.namespace}/" if self.ref.namespace else ""
        return f"{self.hook.phase} hook {self.ref.kind} {where}{self.ref.name}"


class HookRunner:
    """Runs hooks one after another (Helm's order: weight, then kind and name) as ``owner``."""

    def __init__(
        self,
        kube: KubeAPI,
        owner: str,
        timeout: float,
        *,
        interval: float = 0.5,
        aside: Aside = stay,
    ) -> None:
        """``aside`` wraps the wait for a hook to finish (the daemon frees the worker meanwhile)."""
        self.kube = kube
        self.owner = owner
        self.timeout = timeout
        self.interval = interval
        self.aside = aside

    async def run(self, hook: Hook) -> HookRun:
        """Create one hook, wait for it to finish, delete it if its policy says so."""
        manifest = hook.manifest
        try:
            resource = await self.kube.discovery.resource(manifest.api_version, manifest.kind)
        except UnknownKind:
            return HookRun(hook, None, False, f"the cluster does not serve {manifest.api_version} {manifest.kind}")
        body = copy.deepcopy(manifest.obj)
        meta = body.setdefault("metadata", {})
        meta.setdefault("labels", {}).update({ENVIRONMENT_LABEL: self.owner, HOOK_LABEL: hook.identity(self.owner)})
        namespace = str(meta.get("namespace") or "") if resource.namespaced else None
        await self._delete_earlier(resource, namespace, hook)
        try:
            created = await self.kube.create(resource.path(namespace), body)
        except ApiError as exc:
            return HookRun(hook, None, False, f"not created: {exc}")
        ref = ObjectRef.of(created)
        path = resource.object_path(created)
        async with self.aside():
            done, message = await self._await(path)
        if not done:
            message = await self._why(resource, created, message)
        if (Policy.HOOK_SUCCEEDED if done else Policy.HOOK_FAILED) in hook.policies:
            await self._delete(path)
        return HookRun(hook, ref, done, message)

    async def _await(self, path: str) -> tuple[bool, str]:
        """(True, message) once the object is done, (False, why) once it failed or the time is up."""
        deadline = time.monotonic() + self.timeout
        pause = self.interval
        while True:
            try:
                live = await self.kube.get(path)
            except NotFound:
                return False, "was deleted before it finished"
            verdict = health.assess(live)
            if verdict.status is Status.CURRENT:
                return True, verdict.message
            if verdict.status is Status.FAILED:
                return False, verdict.message
            if time.monotonic() + pause > deadline:
                return False, f"did not finish within {self.timeout:g}s ({verdict.message})"
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 5.0)

    async def _why(self, resource: Resource, obj: Mapping[str, Any], message: str) -> str:
        """The failure message, with the pod's last log lines or, without logs, the Job's condition."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        pods: list[Mapping[str, Any]] = []
        try:
            if resource.kind == "Pod" and not resource.group:
                pods = [await self.kube.get(resource.path(namespace, name))]
            elif resource.kind == "Job" and resource.group == "batch":
                listed = await self.kube.list(
                    f"/api/v1/namespaces/{namespace}/pods", label_selector=f"batch.kubernetes.io/job-name={name}"
                )
                pods = sorted(listed.items, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp")))
        except ApiError:
            pods = []
        if pods:
            pod = pods[-1]
            logs = await self._logs(pod)
            if logs:
                return f"{message}; last log lines of pod {pod['metadata']['name']}: {logs}"
            exits = _exits(pod)
            if exits:
                message += f"; pod {pod['metadata']['name']}: {exits}"
        if resource.kind == "Job":
            try:
                live = await self.kube.get(resource.path(namespace, name))
            except ApiError:
                return message
            for cond in (live.get("status") or {}).get("conditions") or []:
                if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
                    return f"{message}; {cond.get('reason')}: {cond.get('message')}"
        return message

    async def _logs(self, pod: Mapping[str, Any]) -> str:
        meta = pod.get("metadata") or {}
        path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}/log"
        try:
            text = await self.kube.request("GET", path, params={"tailLines": LOG_LINES}, accept="text/plain")
        except (ApiError, ValueError):
            return ""  # no kubelet to ask (fake nodes), or the pod never started
        lines = [line for line in str(text or "").splitlines() if line.strip()][-LOG_LINES:]
        return truncate(" | ".join(lines), 600)

    async def _delete_earlier(self, resource: Resource, namespace: str | None, hook: Hook) -> None:
        """Earlier instances go: all of them under BeforeHookCreation, a same-named one always."""
        paths: list[str] = []
        if Policy.BEFORE_HOOK_CREATION in hook.policies:
            selector = f"{ENVIRONMENT_LABEL}={self.owner},{HOOK_LABEL}={hook.identity(self.owner)}"
            listed = await self.kube.list(resource.path(namespace), label_selector=selector)
            paths = [resource.object_path(item) for item in listed.items]
        name = (hook.manifest.obj.get("metadata") or {}).get("name")
        if name:
            named = resource.path(namespace, str(name))
            if named not in paths:
                paths.append(named)
        for path in paths:
            await self._delete(path)
        deadline = time.monotonic() + GONE_TIMEOUT
        for path in paths:
            while time.monotonic() < deadline:
                try:
                    await self.kube.get(path)
                except NotFound:
                    break
                await asyncio.sleep(self.interval)

    async def _delete(self, path: str) -> None:
        with contextlib.suppress(NotFound):
            await self.kube.delete(path, propagation="Background")


def _exits(pod: Mapping[str, Any]) -> str:
    parts = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        ended = (status.get("state") or {}).get("terminated") or {}
        if ended:
            parts.append(f"container {status.get('name')} exited {ended.get('exitCode')} ({ended.get('reason', '')})")
    return ", ".join(parts)
