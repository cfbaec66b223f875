"""The three patch formats a client can send: JSON merge, strategic merge, JSON patch.

Merge patch is RFC 7386 (``null`` deletes). Strategic merge is simplified to a merge patch in
which lists of objects that all carry ``name`` are merged by name (the merge key of containers,
env, volumes and ports in the built-in types); other lists are replaced. JSON patch is RFC 6902
with ``add``, ``remove``, ``replace`` and ``test``: a failed ``test`` or a missing path is a 422,
as kube-apiserver answers.
"""

from __future__ import annotations

import copy
from typing import Any

from gitopsd.kube.errors import BadRequest, Invalid


def merge_patch(target: Any, patch: Any, *, by_name: bool = False) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif (
            by_name and named_list(value) and isinstance(out.get(key), list) and named_list(out[key], allow_empty=True)
        ):
            out[key] = _merge_named(out[key], value)
        else:
            out[key] = merge_patch(out.get(key), value, by_name=by_name)
    return out


def named_list(value: Any, *, allow_empty: bool = False) -> bool:
    """A list of objects that all have a string ``name``: merged by it, not replaced."""
    if not isinstance(value, list) or (not value and not allow_empty):
        return False
    return all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)


def _merge_named(current: list[Any], patch: list[Any]) -> list[Any]:
    out = [copy.deepcopy(i) for i in current]
    index = {item["name"]: n for n, item in enumerate(out)}
    for item in patch:
        if item["name"] in index:
            out[index[item["name"]]] = merge_patch(out[index[item["name"]]], item, by_name=True)
        else:
            out.append(copy.deepcopy(item))
    return out


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise BadRequest(400, "BadRequest", "a JSON patch must be a list of operations")
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(400, "BadRequest", f"not a JSON patch operation: {op!r}")
        name, tokens = op["op"], _pointer(str(op["path"]))
        if name == "test":
            found, value = _read(doc, tokens)
            if not found or value != op.get("value"):
                raise Invalid(422, "Invalid", f"the server rejected our request: testing value {op['path']} failed")
        elif name == "remove":
            doc = _write(doc, tokens, None, remove=True)
        elif name in ("add", "replace"):
            if name == "replace" and not _read(doc, tokens)[0]:
                raise Invalid(422, "Invalid", f"replace operation does not apply: doc is missing path: {op['path']}")
            doc = _write(doc, tokens, copy.deepcopy(op.get("value")), insert=name == "add")
        else:
            raise BadRequest(400, "BadRequest", f"JSON patch operation {name!r} is not supported by the fake")
    result: dict[str, Any] = doc
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(400, "BadRequest", f"not a JSON pointer: {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _read(doc: Any, tokens: list[str]) -> tuple[bool, Any]:
    for token in tokens:
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return False, None
    return True, doc


def _write(doc: Any, tokens: list[str], value: Any, *, remove: bool = False, insert: bool = False) -> Any:
    if not tokens:
        return value
    found, parent = _read(doc, tokens[:-1])
    last = tokens[-1]
    missing = Invalid(422, "Invalid", f"the server rejected our request: missing path /{'/'.join(tokens)}")
    if not found:
        raise missing
    if isinstance(parent, dict):
        if remove:
            if last not in parent:
                raise missing
            del parent[last]
        else:
            parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if index < 0 or index > len(parent) or (index == len(parent) and not insert):
            raise missing
        if remove:
            del parent[index]
        elif insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    else:
        raise missing
    return doc
