"""Is a server dry-run's answer the live object as it is? And if not, which fields differ?

A dry-run returns the object as it would be after the apply. When that equals the live object,
apart from what changes on every read or is never ours (``resourceVersion``, the timestamps
in ``managedFields``, ``status``), the apply would be a no-op and is not sent. ``managedFields``
stay in the comparison otherwise: an apply that only takes ownership of fields is a real write.

The live object a sync holds comes from a list made a moment before the dry-run; a controller
may have written the object in between (the Deployment controller's revision annotation, say).
The dry-run then answers about a newer object (its ``resourceVersion`` tells) and a whole-object
comparison would see the controller's change as ours. ``owned_unchanged`` answers the precise
question instead: would the apply change our field set, or any value inside it?
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gitopsd.kube.reflector import strip

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


def same_state(preview: Mapping[str, Any], live: Mapping[str, Any], manager: str | None = None) -> bool:
    """``comparable`` equality; with ``manager``, both sides first stripped as the watch cache
    stores objects (``reflector.strip``: others' field sets and the last-applied annotation go),
    so a cached live object compares like a fresh GET. Our own field set still counts: an apply
    that only takes fields over changes it."""
    if manager is None:
        return comparable(preview) == comparable(live)
    return comparable(strip(preview, manager)) == comparable(strip(live, manager))


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


def owned_unchanged(preview: Mapping[str, Any], live: Mapping[str, Any], manager: str) -> bool:
    """True when applying changes nothing ``manager`` owns: same field set, same values in it.

    ``preview`` is the dry-run's answer, ``live`` an older read of the object. Anything the
    walk over ``fieldsV1`` does not understand counts as a change (a write too many is safe).
    """
    ours_now, ours_before = _apply_entry(preview, manager), _apply_entry(live, manager)
    if ours_now is None or ours_before is None:
        return False
    if {k: v for k, v in ours_now.items() if k != "time"} != {k: v for k, v in ours_before.items() if k != "time"}:
        return False
    fields = ours_now.get("fieldsV1")
    return isinstance(fields, Mapping) and _same_within(fields, preview, live)


def _apply_entry(obj: Mapping[str, Any], manager: str) -> Mapping[str, Any] | None:
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (
            isinstance(entry, Mapping)
            and entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            return entry
    return None


def agree_within(fields: Mapping[str, Any], a: Any, b: Any) -> bool:
    """Do ``a`` and ``b`` agree on every field of the ``fieldsV1`` set ``fields``?"""
    return _same_within(fields, a, b)


def apply_fields(obj: Mapping[str, Any], manager: str) -> Mapping[str, Any] | None:
    """The ``fieldsV1`` set ``manager`` applied on ``obj``, or None when it applied none."""
    entry = _apply_entry(obj, manager)
    fields = entry.get("fieldsV1") if entry is not None else None
    return fields if isinstance(fields, Mapping) else None


def _same_within(fields: Mapping[str, Any], a: Any, b: Any) -> bool:
    """Do ``a`` and ``b`` agree on every field of the ``fieldsV1`` set ``fields``?"""
    for key, sub in fields.items():
        if key == ".":
            continue  # the node's own existence, checked by the caller
        children = isinstance(sub, Mapping) and any(k != "." for k in sub)
        if key.startswith("f:"):
            if not isinstance(a, Mapping) or not isinstance(b, Mapping):
                return False
            name = key[2:]
            if (name in a) != (name in b):
                return False
            if name in a and not (_same_within(sub, a[name], b[name]) if children else a[name] == b[name]):
                return False
        elif key.startswith(("k:", "v:", "i:")):
            if not isinstance(a, list) or not isinstance(b, list):
                return False
            try:
                x, y = _item(key, a), _item(key, b)
            except ValueError:
                return False
            if (x is None) != (y is None):
                return False
            if x is not None and not (_same_within(sub, x[0], y[0]) if children and y is not None else x == y):
                return False
        else:
            return False
    return True


def _item(key: str, items: list[Any]) -> tuple[Any] | None:
    """The list element a ``k:``/``v:``/``i:`` key names, wrapped so a None element is found too."""
    kind, raw = key[:2], key[2:]
    if kind == "i:":
        index = int(raw)
        return (items[index],) if 0 <= index < len(items) else None
    wanted = json.loads(raw)
    for item in items:
        if kind == "v:" and item == wanted:
            return (item,)
        if kind == "k:" and isinstance(item, Mapping) and all(item.get(k) == v for k, v in wanted.items()):
            return (item,)
    return None
