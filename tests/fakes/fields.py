"""Field ownership for the fake: ``managedFields`` and a simplified server-side apply.

What it keeps of kube-apiserver's model (structured-merge-diff):

* Every write records who set which fields in ``metadata.managedFields`` (``FieldsV1``): one
  entry per (manager, operation, subresource). Create, update and patch are ``Update``
  operations: the manager takes the fields whose value it changed, from everyone else. Apply is
  an ``Apply`` operation: the manager's set becomes exactly the fields it sent.
* Apply conflicts: a field the applied config sets to a *different* value than the live one,
  owned by another manager, is a 409 naming each manager the way the real server does
  (``conflict with "kubectl" with subresource "scale" using apps/v1`` for an Update manager,
  ``conflict with "helm"`` for an Apply manager). ``force`` takes the fields over. The same
  value is shared ownership, not a conflict.
* Fields the manager applied before and no longer sends are removed, unless another manager
  owns them too.

What it simplifies: without schemas, lists of objects that all have a ``name`` are associative
(keyed by ``name``, as containers, env and volumes are), every other list is atomic (owned and
replaced whole); maps are always merged; a field is owned as a leaf, so ownership of a parent
and of its children never conflicts with each other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitopsd.kube.errors import Conflict
from tests.fakes.patches import named_list

Path = tuple[str, ...]  # FieldsV1 keys: ("f:spec", "f:template", ...), ("f:containers", 'k:{"name":"app"}')

#: Metadata no manager owns: identity and what only the server writes.
UNOWNED_METADATA = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
     "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}
)  # fmt: skip


@dataclass(slots=True)
class Manager:
    name: str
    operation: str  # Apply | Update
    subresource: str
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.operation, self.subresource)

    def entry(self) -> dict[str, Any]:
        out = {
            "manager": self.name,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def owned_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without apiVersion, kind and the metadata nobody owns."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in UNOWNED_METADATA}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out


def leaves(obj: Mapping[str, Any]) -> set[Path]:
    out: set[Path] = set()
    for key, value in owned_view(obj).items():
        _collect(value, (f"f:{key}",), out)
    return out


def _collect(value: Any, path: Path, out: set[Path]) -> None:
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            _collect(sub, (*path, f"f:{key}"), out)
    elif named_list(value):
        for item in value:
            item_path = (*path, _item_key(item))
            out.add(item_path)
            for key, sub in item.items():
                _collect(sub, (*item_path, f"f:{key}"), out)
    else:
        out.add(path)


def _item_key(item: Mapping[str, Any]) -> str:
    return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(key, {})
    for path in paths:  # a member that also has children (a list item) is marked "."
        node = tree
        for key in path:
            node = node[key]
        if any(k != "." for k in node):
            node["."] = {}
    return tree


def from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            out.add(prefix)
        elif isinstance(sub, Mapping) and sub:
            out |= from_fields_v1(sub, (*prefix, key))
        else:
            out.add((*prefix, key))
    return out


def managers_of(obj: Mapping[str, Any] | None) -> list[Manager]:
    out = []
    for e in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        out.append(
            Manager(
                str(e.get("manager", "")),
                str(e.get("operation", "")),
                str(e.get("subresource", "")),
                str(e.get("apiVersion", "")),
                str(e.get("time", "")),
                from_fields_v1(e.get("fieldsV1") or {}),
            )
        )
    return out


def read(obj: Any, path: Path) -> tuple[bool, Any]:
    for key in path:
        if key.startswith("f:") and isinstance(obj, Mapping) and key[2:] in obj:
            obj = obj[key[2:]]
        elif key.startswith("k:") and isinstance(obj, list):
            name = json.loads(key[2:])["name"]
            found = [i for i in obj if isinstance(i, Mapping) and i.get("name") == name]
            if not found:
                return False, None
            obj = found[0]
        else:
            return False, None
    return True, obj


def remove(obj: dict[str, Any], path: Path) -> None:
    """Delete ``path`` from ``obj``, and the maps and list items left empty by it."""
    parent_found, parent = read(obj, path[:-1])
    if not parent_found:
        return
    key = path[-1]
    if key.startswith("f:") and isinstance(parent, dict):
        parent.pop(key[2:], None)
    elif key.startswith("k:") and isinstance(parent, list):
        name = json.loads(key[2:])["name"]
        parent[:] = [i for i in parent if not (isinstance(i, Mapping) and i.get("name") == name)]
    if len(path) > 1 and not parent:
        remove(obj, path[:-1])


def merge(live: Any, config: Any) -> Any:
    """``config`` merged into ``live``: maps recursively, named lists by name, the rest replaced."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            out[key] = merge(live.get(key), value)
        return out
    if named_list(config) and named_list(live, allow_empty=True):
        out_list = [copy.deepcopy(i) for i in live]
        index = {item["name"]: n for n, item in enumerate(out_list)}
        for item in config:
            if item["name"] in index:
                out_list[index[item["name"]]] = merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(config)


def dotted(path: Path) -> str:
    """A field path as the API server prints it in conflicts: ``.spec.containers[name="app"].image``."""
    out = ""
    for key in path:
        if key.startswith("f:"):
            out += "." + key[2:]
        else:
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(key[2:]).items()) + "]"
    return out


def _owner_text(m: Manager) -> str:
    text = f'conflict with "{m.name}"'
    if m.operation == "Update":
        if m.subresource:
            text += f' with subresource "{m.subresource}"'
        text += f" using {m.api_version}"
    return text


def apply(
    live: dict[str, Any] | None,
    config: Mapping[str, Any],
    *,
    manager: str,
    subresource: str,
    api_version: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` (already limited to what this endpoint
    writes); raises ``Conflict`` as described in the module docstring."""
    current = copy.deepcopy(live) if live is not None else {}
    managers = managers_of(live)
    key = (manager, "Apply", subresource)
    mine = next((m for m in managers if m.key == key), None)
    if mine is None:
        mine = Manager(manager, "Apply", subresource, api_version, now)
        managers.append(mine)
    wanted = leaves(config)
    conflicts: list[tuple[Path, Manager]] = []
    for other in managers:
        if other is mine:
            continue
        for path in sorted(wanted & other.fields):
            if read(current, path) != read(config, path):
                conflicts.append((path, other))
    if conflicts and not force:
        raise _conflict(conflicts)
    for path, other in conflicts:
        other.fields.discard(path)
    others = [m for m in managers if m is not mine]
    for path in sorted(mine.fields - wanted, key=len, reverse=True):
        if not any(q[: len(path)] == path for m in others for q in m.fields):
            remove(current, path)
    result: dict[str, Any] = merge(current, owned_view(config))
    mine.fields, mine.time, mine.api_version = wanted, now, api_version
    _store(result, managers)
    return result


def record_update(
    old: Mapping[str, Any] | None, new: dict[str, Any], *, manager: str, subresource: str, api_version: str, now: str
) -> None:
    """Give ``manager`` (an Update) the fields it changed from ``old`` to ``new``; in place."""
    before, after = (leaves(old) if old is not None else set()), leaves(new)
    changed = {p for p in after if p not in before or read(old, p) != read(new, p)}
    gone = before - after
    managers = managers_of(old)
    key = (manager, "Update", subresource)
    mine = next((m for m in managers if m.key == key), None)
    if mine is None and changed:
        mine = Manager(manager, "Update", subresource, api_version, now)
        managers.append(mine)
    for m in managers:
        m.fields -= gone
        if m is not mine:
            m.fields -= changed
    if mine is not None and changed:
        mine.fields |= changed
        mine.time, mine.api_version = now, api_version
    _store(new, managers)


def _store(obj: dict[str, Any], managers: list[Manager]) -> None:
    meta = obj.setdefault("metadata", {})
    entries = [m.entry() for m in managers if m.fields]
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _conflict(conflicts: list[tuple[Path, Manager]]) -> Conflict:
    causes = [{"reason": "FieldManagerConflict", "message": _owner_text(m), "field": dotted(p)} for p, m in conflicts]
    lines = "\n".join(f"{c['message']}: {c['field']}" for c in causes)
    plural = "conflict" if len(causes) == 1 else "conflicts"
    return Conflict(409, "Conflict", f"Apply failed with {len(causes)} {plural}: {lines}", causes)
