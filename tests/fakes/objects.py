"""The fake cluster's storage: objects, the resourceVersion counter, and the log of changes.

One write path (``_admit``) does what kube-apiserver does for every create, update, patch and
apply: it limits the write to its endpoint (the main resource leaves ``.status`` of a kind with
a status subresource alone; ``/status`` changes nothing else), keeps identity (uid,
creationTimestamp), bumps ``metadata.generation`` when anything outside metadata and status
changes, validates, and stores the result under a new cluster-wide resourceVersion, logging
the change for watches. A write that changes nothing (apart from managedFields timestamps) is
not stored: it returns the object as it was, with its old resourceVersion, as the real server
does. ``dry_run`` computes the same answer without storing it.

Deletion: an object with finalizers gets ``deletionTimestamp`` and stays until an update removes
the last one; a Namespace takes its objects with it; dependents (``ownerReferences``) are deleted
with their owner unless propagation is ``Orphan`` (at once: there is no garbage collector delay).
Creating a CustomResourceDefinition serves its kind at once, Established.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitopsd.kube.errors import BadRequest, Conflict, Invalid, NotFound
from tests.fakes import fields
from tests.fakes.kinds import Kind, Kinds

Key = tuple[str, str, str, str]  # group, plural, namespace ("" for cluster-scoped), name
#: A test's extra admission check: (field, message) pairs for what it refuses.
Validator = Callable[[Kind, Mapping[str, Any]], list[tuple[str, str]]]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_LIMIT = 1024 * 1024


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Change:
    """One stored write, for watches: the object before (None when created) and after."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    kind: Kind
    old: dict[str, Any] | None
    new: dict[str, Any]


def _resource_name(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


class Store:
    def __init__(self, kinds: Kinds, clock: Callable[[], str] = utc_now) -> None:
        self.kinds = kinds
        self.clock = clock
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 1000
        self.compacted = 0
        self.changes: list[Change] = []
        self.validators: list[Validator] = []
        self._waiters: set[asyncio.Event] = set()

    # -- reads -----------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get(self._key(kind, namespace, name))
        if obj is None:
            raise NotFound(404, "NotFound", f'{_resource_name(kind)} "{name}" not found')
        return copy.deepcopy(obj)

    def items(self, kind: Kind, namespace: str | None) -> list[tuple[Key, dict[str, Any]]]:
        """Stored objects of ``kind`` (in ``namespace``, or all), in key order; not copied."""
        return [
            ((group, plural, ns, name), obj)
            for (group, plural, ns, name), obj in sorted(self.objects.items())
            if (group, plural) == (kind.group, kind.plural) and (namespace is None or ns == namespace)
        ]

    # -- writes ----------------------------------------------------------------------------

    def create(
        self, kind: Kind, namespace: str, body: Mapping[str, Any], manager: str, dry_run: bool
    ) -> dict[str, Any]:
        new = copy.deepcopy(dict(body))
        meta = new.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = str(meta.get("name") or "")
        self._check_namespace(kind, namespace, meta)
        if self._key(kind, namespace, name) in self.objects:
            raise Conflict(409, "AlreadyExists", f'{_resource_name(kind)} "{name}" already exists')
        if kind.status:
            new.pop("status", None)
        fields.record_update(None, new, manager=manager, subresource="", api_version=kind.api_version, now=self.clock())
        return self._admit(kind, namespace, name, None, new, dry_run)

    def update(
        self, kind: Kind, namespace: str, name: str, body: Mapping[str, Any], manager: str, sub: str, dry_run: bool
    ) -> dict[str, Any]:
        old = self.get(kind, namespace, name)
        wanted = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise Conflict(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {_resource_name(kind)} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        new = self._limit(kind, old, copy.deepcopy(dict(body)), sub)
        fields.record_update(old, new, manager=manager, subresource=sub, api_version=kind.api_version, now=self.clock())
        return self._admit(kind, namespace, name, old, new, dry_run)

    def apply(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        manager: str,
        force: bool,
        sub: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        if body.get("apiVersion") != kind.api_version or body.get("kind") != kind.kind:
            raise BadRequest(400, "BadRequest", f"apply body is {body.get('apiVersion')}/{body.get('kind')}, "
                             f"the URL is {kind.api_version}/{kind.kind}")  # fmt: skip
        if meta.get("name") != name or (kind.namespaced and meta.get("namespace", namespace) != namespace):
            raise BadRequest(400, "BadRequest", "the name or namespace of the body does not match the URL")
        try:
            old: dict[str, Any] | None = self.get(kind, namespace, name)
        except NotFound:
            if sub:
                raise
            old = None
            self._check_namespace(kind, namespace, meta)
        config: Mapping[str, Any] = body
        if sub:  # a status write owns nothing else, not even labels it sends
            config = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": {"name": name}}
            config = {**config, "status": body["status"]} if "status" in body else config
        if kind.status and not sub:
            config = {k: v for k, v in config.items() if k != "status"}
        new = fields.apply(
            old, config, manager=manager, subresource=sub, api_version=kind.api_version, force=force, now=self.clock()
        )
        if sub and old is not None:  # only the status reaches the object
            new = {**old, "status": new.get("status"), "metadata": {**old["metadata"], **_managed(new)}}
            if new["status"] is None:
                del new["status"]
        new.setdefault("apiVersion", kind.api_version)
        new.setdefault("kind", kind.kind)
        new["metadata"].setdefault("name", name)
        return self._admit(kind, namespace, name, old, new, dry_run)

    def delete(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        meta = obj["metadata"]
        for label, wanted, have in (
            ("UID", uid, meta["uid"]),
            ("ResourceVersion", resource_version, meta["resourceVersion"]),
        ):
            if wanted and wanted != have:
                raise Conflict(409, "Conflict", f"Precondition failed: {label} in precondition: {wanted}, "
                               f"{label} in object meta: {have}")  # fmt: skip
        if dry_run:
            return obj
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(obj)
                new["metadata"].update(deletionTimestamp=self.clock(), deletionGracePeriodSeconds=0)
                return self._store(kind, namespace, name, obj, new)
            return obj
        return self._remove(kind, namespace, name, propagation)

    def set_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any], manager: str
    ) -> dict[str, Any]:
        """What a controller does: replace ``.status`` (an Update of the status subresource)."""
        old = self.get(kind, namespace, name)
        new = {**copy.deepcopy(old), "status": copy.deepcopy(dict(status))}
        fields.record_update(old, new, manager=manager, subresource="status", api_version=kind.api_version,
                             now=self.clock())  # fmt: skip
        return self._admit(kind, namespace, name, old, new, False)

    # -- the one write path ----------------------------------------------------------------

    def _limit(self, kind: Kind, old: dict[str, Any], new: dict[str, Any], sub: str) -> dict[str, Any]:
        """What a write to the main resource or to ``/status`` may change of ``old``."""
        if sub == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            return out
        if kind.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return new

    def _admit(
        self, kind: Kind, namespace: str, name: str, old: dict[str, Any] | None, new: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        meta = new.setdefault("metadata", {})
        meta["name"] = name
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if old is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=self.clock())
            meta.pop("resourceVersion", None)
            if kind.generation:
                meta["generation"] = 1
            if kind.kind == "Namespace":
                new.setdefault("status", {})["phase"] = "Active"
        else:
            for key in ("uid", "creationTimestamp", "resourceVersion", "deletionTimestamp", "generation"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
                else:
                    meta.pop(key, None)
            if kind.generation and _spec_of(old) != _spec_of(new):
                meta["generation"] = int(old["metadata"].get("generation") or 0) + 1
        self._validate(kind, new)
        if old is not None and _same(old, new):
            return copy.deepcopy(old)
        if dry_run:
            return new
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._store(kind, namespace, name, old, new)
            return self._remove(kind, namespace, name, "Background")
        return self._store(kind, namespace, name, old, new)

    def _store(
        self, kind: Kind, namespace: str, name: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> dict[str, Any]:
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        if kind.kind == "CustomResourceDefinition" and old is None:
            self._serve(new)
        self.objects[self._key(kind, namespace, name)] = new
        self._log(Change(self.rv, "ADDED" if old is None else "MODIFIED", kind, old, copy.deepcopy(new)))
        return copy.deepcopy(new)

    def _remove(self, kind: Kind, namespace: str, name: str, propagation: str) -> dict[str, Any]:
        key = self._key(kind, namespace, name)
        obj = self.objects[key]
        if kind.kind == "Namespace":
            for (group, plural, ns, other), _ in list(self.objects.items()):
                inner = self.kinds.by_plural(group, self._version(group, plural), plural)
                if ns == name and inner is not None and inner.namespaced and (group, plural, ns, other) in self.objects:
                    self._remove(inner, ns, other, propagation)
        del self.objects[key]
        self.rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._log(Change(self.rv, "DELETED", kind, copy.deepcopy(obj), gone))
        if kind.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            self.kinds.unregister(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
        if propagation != "Orphan":
            uid = obj["metadata"]["uid"]
            for (group, plural, ns, other), dependent in list(self.objects.items()):
                owners = (dependent.get("metadata") or {}).get("ownerReferences") or []
                inner = self.kinds.by_plural(group, self._version(group, plural), plural)
                if (
                    inner is not None
                    and any(o.get("uid") == uid for o in owners)
                    and (group, plural, ns, other) in self.objects
                ):
                    self.delete(inner, ns, other, propagation=propagation)
        return gone

    def _version(self, group: str, plural: str) -> str:
        return next((k.version for k in self.kinds if (k.group, k.plural) == (group, plural)), "")

    def _serve(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        storage = next((v for v in versions if v.get("storage")), versions[0] if versions else {"name": "v1"})
        subresources = storage.get("subresources") or {}
        self.kinds.register(
            Kind(str(spec.get("group", "")), str(storage.get("name")), str(names.get("kind", "")),
                 str(names.get("plural", "")), spec.get("scope", "Namespaced") == "Namespaced",
                 status="status" in subresources, generation=True)
        )  # fmt: skip
        conditions = [{"type": t, "status": "True", "reason": r} for t, r in
                      (("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted"))]  # fmt: skip
        crd["status"] = {"conditions": conditions, "acceptedNames": names}  # the CRD controller's verdict, at once

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, kind: Kind, namespace: str, name: str) -> Key:
        return (kind.group, kind.plural, namespace if kind.namespaced else "", name)

    def _check_namespace(self, kind: Kind, namespace: str, meta: Mapping[str, Any]) -> None:
        if not kind.namespaced:
            return
        if meta.get("namespace") not in (None, namespace):
            raise BadRequest(400, "BadRequest", "the namespace of the provided object does not match the URL")
        if ("", "namespaces", "", namespace) not in self.objects:
            raise NotFound(404, "NotFound", f'namespaces "{namespace}" not found')

    def _validate(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        name = str(obj["metadata"].get("name") or "")
        problems: list[tuple[str, str]] = []
        if not name or len(name) > 253 or not _SUBDOMAIN.match(name):
            problems.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                             "consist of lower case alphanumeric characters, '-' or '.'"))  # fmt: skip
        if kind.kind == "Secret":
            size = sum(len(base64.b64decode(str(v))) for v in (obj.get("data") or {}).values())
            if size > _SECRET_LIMIT:
                problems.append(("data", f"Too long: may not be more than {_SECRET_LIMIT} bytes"))
        for validator in self.validators:
            problems += validator(kind, obj)
        if problems:
            causes = [{"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in problems]
            detail = ", ".join(f"{f}: {m}" for f, m in problems)
            raise Invalid(422, "Invalid", f'{kind.kind} "{name}" is invalid: {detail}', causes)

    # -- the change log, for watches -------------------------------------------------------

    def _log(self, change: Change) -> None:
        self.changes.append(change)
        for waiter in self._waiters:
            waiter.set()

    def compact(self, rv: int | None = None) -> None:
        """Forget changes up to ``rv`` (default: now); watches from before it get 410 Gone."""
        self.compacted = self.rv if rv is None else rv
        self.changes = [c for c in self.changes if c.rv > self.compacted]

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"managedFields": meta["managedFields"]} if "managedFields" in meta else {}


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = dict(obj.get("metadata") or {})
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []]
        meta.pop("resourceVersion", None)
        return {**obj, "metadata": meta}

    return strip(old) == strip(new)
