"""Checks and fix-ups on rendered objects: identity, namespace, one definition per object.

The namespace step asks whether a kind is namespaced (the cluster's discovery, or the built-in
types offline, plus the CRDs of the same render) instead of keeping a list of kinds, so custom
resources are handled like built-in ones and a kind nobody defines is caught here, with its
file, rather than at apply time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gitopsd.model import Manifest, ObjectRef, Scopes
from gitopsd.phases.classify import BadAnnotation, classify, is_hook
from gitopsd.render.errors import DuplicateObject, InvalidManifest, MissingNamespace, UnknownKind
from gitopsd.render.scopes import OfflineScopes

_KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
#: What every kind's name must be, since it is a segment of the object's URL (the API server's
#: path-segment rule); each kind may want more (most: a DNS subdomain), which the dry-run checks.
_BAD_NAME_PARTS = ("/", "%")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def require_mapping(obj: Any, origin: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        what = "list" if isinstance(obj, list) else type(obj).__name__
        raise InvalidManifest(origin, f"is a {what}, not a Kubernetes object (apiVersion, kind, metadata)")
    return obj


def check_identity(obj: dict[str, Any], origin: str) -> None:
    """apiVersion, kind and metadata.name are there and are strings; metadata.namespace too, if given."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidManifest(origin, "metadata must be a mapping")
    meta = meta or {}
    missing = [key for key in ("apiVersion", "kind") if not _text(obj.get(key))]
    if not missing:
        try:  # ordering annotations (gitopsd.phases) are checked here, so a bad one is a render error
            classify([Manifest(obj, origin)])
        except BadAnnotation as exc:
            raise InvalidManifest(origin, exc.message) from None
    generated = _text(meta.get("generateName")) and not missing and is_hook(obj)
    if not _text(meta.get("name")) and not generated:  # a hook is created (POST): its name may be generated
        if _text(meta.get("generateName")) and not missing:
            raise InvalidManifest(
                origin,
                "has metadata.generateName but no metadata.name: gitopsd applies objects by name"
                " (only hooks, e.g. argocd.argoproj.io/hook: PreSync, may use generateName)",
            )
        missing.append("metadata.name")
    if missing:
        raise InvalidManifest(
            origin, f"has no {', '.join(missing)}: every object needs apiVersion, kind and metadata.name"
        )
    name = meta.get("name") or meta["generateName"]
    if name in (".", "..") or any(part in name for part in _BAD_NAME_PARTS):
        raise InvalidManifest(origin, f"metadata.name {name!r} may not be '.' or '..' nor contain '/' or '%'")
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidManifest(origin, f"metadata.namespace must be a string (got {namespace!r})")
    if namespace and not _NAMESPACE.fullmatch(namespace):
        raise InvalidManifest(
            origin,
            f"metadata.namespace {namespace!r} is not a namespace name (lowercase letters, digits and '-',"
            " starting and ending with a letter or digit, at most 63 characters)",
        )


def place_namespace(
    obj: dict[str, Any],
    origin: str,
    scopes: Scopes,
    render_crds: Mapping[tuple[str, str], bool],
    target_namespace: str | None,
) -> None:
    """Give a namespaced object without a namespace the target one; strip it from a cluster-scoped one."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    namespaced = render_crds.get((api_version, kind))
    if namespaced is None:
        namespaced = scopes.is_namespaced(api_version, kind)
    if namespaced is None:
        hint = ""
        if api_version.startswith(f"{_KUSTOMIZE_GROUP}/"):
            hint = "; a kustomization is only built when it sits directly in spec.source.path"
        raise UnknownKind(origin, api_version, kind, offline=isinstance(scopes, OfflineScopes), hint=hint)
    meta = obj["metadata"]
    if not namespaced:
        meta.pop("namespace", None)
    elif not meta.get("namespace"):
        if target_namespace is None:
            raise MissingNamespace(origin, f"{kind} {meta.get('name') or meta.get('generateName')}")
        meta["namespace"] = target_namespace


def reject_duplicates(manifests: list[Manifest]) -> None:
    seen: dict[ObjectRef, str] = {}
    for manifest in manifests:
        ref = manifest.ref
        if not ref.name:  # a hook with generateName: every instance gets its own name
            continue
        if ref in seen:
            raise DuplicateObject(str(ref), seen[ref], manifest.origin)
        seen[ref] = manifest.origin


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
