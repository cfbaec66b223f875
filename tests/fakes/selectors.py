"""Label and field selectors, matched the way kube-apiserver matches them.

Labels: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, joined
by commas (all must hold). ``k!=v`` and ``notin`` also match objects without the label, as
upstream. Fields: ``path=v``, ``path==v``, ``path!=v`` on any dotted path (the real server
allows only a few per kind, ``metadata.name`` and ``metadata.namespace`` everywhere; the fake
is more permissive and documents it here). A selector that does not parse is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gitopsd.kube.errors import BadRequest

Match = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_EXISTS = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _bad(kind: str, text: str, part: str) -> BadRequest:
    return BadRequest(400, "BadRequest", f"unable to parse {kind} selector {text!r}: requirement {part!r}")


def _requirement(text: str, part: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET.match(part):
        key, inside = m["key"], m["op"] == "in"
        values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
        return lambda labels: (labels.get(key) in values) == inside
    if m := _EQ.match(part):
        key, value, equal = m["key"], m["value"], m["op"] != "!="
        return lambda labels: (labels.get(key) == value) == equal
    if m := _EXISTS.match(part):
        key, present = m["key"], not m["neg"]
        return lambda labels: (key in labels) == present
    raise _bad("label", text, part)


def label_selector(text: str | None) -> Match:
    """A predicate on an object's labels; None or empty matches everything."""
    checks = [_requirement(text or "", part) for part in _split(text or "")]

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def field_selector(text: str | None) -> Match:
    """A predicate on dotted fields of an object; None or empty matches everything."""
    checks: list[tuple[list[str], str, bool]] = []
    for part in _split(text or ""):
        m = _EQ.match(part)
        if not m:
            raise _bad("field", text or "", part)
        checks.append((m["key"].split("."), m["value"], m["op"] != "!="))

    def match(obj: Mapping[str, Any]) -> bool:
        return all((_dig(obj, path) == value) == equal for path, value, equal in checks)

    return match


def _dig(obj: Any, path: list[str]) -> str:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return "" if obj is None else str(obj)
