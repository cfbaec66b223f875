"""Kubernetes Events on Environment objects, the way ``kubectl describe`` users expect them.

Events are aggregated per object, type and reason: a repeated one updates the count, time and
message of the first instead of adding another (client-go's recorder does the same for equal
messages, and combines similar ones after ten). A failure whose wording changes between
retries (a health message naming another Pod) is then one Event whose message is the latest,
not one Event per retry. Posting an event never fails a
reconcile: a cluster that refuses Events costs a log line, nothing more.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

import structlog

from gitopsd.errors import truncate
from gitopsd.kube import KubeAPI, KubeError, NotFound
from gitopsd.kube.discovery import Resource

EVENTS = Resource("", "v1", "Event", "events", namespaced=True)
EventType = Literal["Normal", "Warning"]
_MAX_REMEMBERED = 4096

log = structlog.get_logger("gitopsd.events")


class EventRecorder:
    def __init__(self, kube: KubeAPI, component: str = "gitopsd") -> None:
        self._kube = kube
        self._component = component
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()
        # (uid, type, reason) → (event name, namespace, count, message)
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, str, int, str]] = OrderedDict()

    async def record(self, involved: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        message = truncate(message, 1024)
        key = (str(meta.get("uid", "")), type_, reason)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if key in self._seen:
            name, ns, count, said = self._seen[key]
            change: dict[str, Any] = {"count": count + 1, "lastTimestamp": now}
            if message != said:
                change["message"] = message
            try:
                await self._kube.patch(EVENTS.path(ns, name), change)
                self._seen[key] = (name, ns, count + 1, message)
                self._seen.move_to_end(key)
                return
            except NotFound:  # expired (the API server keeps Events an hour): post a new one
                self._seen.pop(key, None)
            except KubeError as exc:
                log.warning("event not recorded", reason=reason, error=str(exc))
                return
        try:
            name = f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}"
            await self._kube.create(
                EVENTS.path(namespace),
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": {
                        "apiVersion": involved.get("apiVersion"),
                        "kind": involved.get("kind"),
                        "name": meta.get("name"),
                        "namespace": namespace,
                        "uid": meta.get("uid"),
                        "resourceVersion": meta.get("resourceVersion"),
                    },
                    "type": type_,
                    "reason": reason,
                    "message": message,
                    "count": 1,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "source": {"component": self._component},
                    "reportingComponent": self._component,
                    "reportingInstance": self._instance,
                },
            )
            self._seen[key] = (name, namespace, 1, message)
            while len(self._seen) > _MAX_REMEMBERED:
                self._seen.popitem(last=False)
        except KubeError as exc:
            self._seen.pop(key, None)
            log.warning("event not recorded", reason=reason, error=str(exc))
