"""Is a server dry-run's answer the live object as it is? And if not, which fields differ?

A dry-run returns the object as it would be after the apply. When that equals the live object,
apart from what changes on every read or is never ours (``resourceVersion``, the timestamps
in ``managedFields``, ``status``), the apply would be a no-op and is not sent. ``managedFields``
stay in the comparison otherwise: an apply that only takes ownership of fields is a real write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_VOLATILE_METADATA = ("resourceVersion", "creationTimestamp", "selfLink")


def comparable(obj: Mapping[str, Any], *, managed_fields: bool = True) -> dict[str, Any]:
    """``obj`` without what a no-op apply may still change; without ``managedFields`` if asked."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    if managed_fields and meta.get("managedFields"):
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"}
            for entry in meta["managedFields"]
            if isinstance(entry, Mapping)
        ]
    else:
        meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def same_state(preview: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    return comparable(preview) == comparable(live)


def changed_paths(before: Any, after: Any, path: str = "", limit: int = 20) -> list[str]:
    """Paths (``.spec.replicas``, ``.spec.template.spec.containers[name=app].image``) that differ.

    ``metadata.managedFields``, ``metadata.generation`` and ``status`` are left out: they follow
    from the other changes. Lists of objects with a ``name`` are matched by name.
    """
    out: list[str] = []
    _walk(before, after, path, out, limit)
    return out


def _walk(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}"
            if sub in (".metadata.managedFields", ".metadata.generation", ".metadata.resourceVersion", ".status"):
                continue
            _walk(a.get(key), b.get(key), sub, out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        if _named(a) and _named(b):
            by_a = {item["name"]: item for item in a}
            by_b = {item["name"]: item for item in b}
            for name in sorted(set(by_a) | set(by_b)):
                _walk(by_a.get(name), by_b.get(name), f"{path}[name={name}]", out, limit)
            return
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                _walk(x, y, f"{path}[{i}]", out, limit)
            return
    out.append(path or ".")


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items)


def metadata_differs(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Labels and annotations we set whose live value differs (these do not move ``generation``)."""
    out: list[str] = []
    want, have = desired.get("metadata") or {}, live.get("metadata") or {}
    for section in ("labels", "annotations"):
        live_values = have.get(section) or {}
        for key, value in (want.get(section) or {}).items():
            if live_values.get(key) != value:
                out.append(f".metadata.{section}.{key}")
    return out
