"""``${NAME}`` substitution in rendered objects, after the build (Flux's ``postBuild.substitute``).

Only when asked: an Environment that sets neither ``spec.substitute`` nor ``spec.substituteFrom``
gets its manifests exactly as written, as in Flux, where substitution runs only when
``postBuild`` is configured. Repositories hold plenty of ``${...}`` that is not ours (Grafana
dashboards, shell scripts in ConfigMaps, prometheus-adapter's ``${1}`` templates), and an
opt-out per object would make every such repository fail first.

We substitute inside string values (and mapping keys) of the parsed objects, never in serialised
YAML that is parsed again, which is Flux's way. Consequences, on purpose:

- A value can never change an object's structure or a field's type. In Flux, a value holding
  ``: ``, ``#`` or a newline can add keys, and a numeric-looking value turns a string field into
  a number (``account: ${ACCOUNT_ID}`` → ``71111111117``), which the API server then refuses for
  labels, annotations or env values, with no quoting that survives kustomize's re-serialising
  (fluxcd/flux2#1839). Here a short sha that happens to be all digits stays a string.
- The price: a variable cannot fill a number or boolean field (``replicas: ${N}`` stays the
  string ``"3"`` and the dry-run names the field). Per-environment numbers belong in a
  kustomize overlay's patch, which is typed.

Syntax: ``${NAME}`` with NAME a letter or ``_`` then letters, digits, ``_``; ``$${NAME}`` is a
literal ``${NAME}``. Anything else between ``${`` and ``}`` (``${X:-default}``, ``${a.b}``) is an
error rather than left alone, so shell or template text in a ConfigMap is noticed: escape it, or
annotate the object ``gitopsd.dev/substitute: disabled`` (Flux has the same opt-out). A name with
no value is an error naming the file, the variable and the field, never an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitopsd.model import Revision
from gitopsd.render.errors import InvalidManifest, UnknownVariable

#: Set to ``disabled`` on an object to leave its ``${...}`` text alone.
SUBSTITUTE_ANNOTATION = "gitopsd.dev/substitute"
#: A document whose YAML aliases expand past this many values is refused: aliases cost nothing
#: to parse but every copy is walked, serialised and sent (the "billion laughs" shape).
MAX_VALUES = 1_000_000
#: Deeper than any real object (CRD schemas reach ~40), and well inside Python's recursion limit.
MAX_DEPTH = 200

_REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Variables:
    """The values of one render, and why each built-in that has none is missing."""

    values: Mapping[str, str]
    missing: Mapping[str, str] = field(default_factory=dict)


_NONE = Variables({})


def variables(substitute: Mapping[str, str], environment: str, revision: Revision | None) -> Variables:
    """``spec.substitute`` plus the built-ins; a built-in with a value wins over a user's."""
    builtins: dict[str, str] = {"GITOPSD_ENVIRONMENT": environment}
    missing: dict[str, str] = {}
    if revision is None:
        why = "there is no revision: a local directory is being rendered"
        missing.update(dict.fromkeys(("GITOPSD_REVISION", "GITOPSD_REVISION_SHORT", "GITOPSD_REF"), why))
    else:
        builtins["GITOPSD_REVISION"] = revision.commit
        builtins["GITOPSD_REVISION_SHORT"] = revision.short
        if revision.ref:
            builtins["GITOPSD_REF"] = revision.ref
        else:
            missing["GITOPSD_REF"] = "the source is pinned to a commit, not a branch or tag"
    values = {**substitute, **builtins}
    return Variables(values, {k: v for k, v in missing.items() if k not in values})


def substitute(obj: dict[str, Any], variables: Variables | None, origin: str) -> dict[str, Any]:
    """A copy of ``obj`` with every reference replaced (only copied when ``variables`` is None,
    substitution being off, or when the object opts out).

    The copy also unshares YAML aliases, so each value is substituted exactly once, and it counts
    what the aliases expand to whether or not anything is substituted.
    """
    walker = _Walker(variables or _NONE, origin, enabled=variables is not None and not _opted_out(obj))
    result: dict[str, Any] = walker.walk(obj, [])
    return result


def _opted_out(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return isinstance(annotations, Mapping) and annotations.get(SUBSTITUTE_ANNOTATION) == "disabled"


class _Walker:
    __slots__ = ("count", "enabled", "origin", "variables")

    def __init__(self, variables: Variables, origin: str, *, enabled: bool) -> None:
        self.variables, self.origin, self.enabled = variables, origin, enabled
        self.count = 0

    def walk(self, value: Any, path: list[str | int]) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise InvalidManifest(
                self.origin, f"expands to more than {MAX_VALUES} values (YAML aliases repeating a large block?)"
            )
        if len(path) > MAX_DEPTH:
            raise InvalidManifest(self.origin, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            return self.text(value, path) if self.enabled and "${" in value else value
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                path.append(key)
                new_key = self.text(key, path) if self.enabled and isinstance(key, str) and "${" in key else key
                if new_key in out:
                    raise InvalidManifest(
                        self.origin, f"key {key!r} in {_where(path[:-1])} becomes {new_key!r}, which is already a key"
                    )
                out[new_key] = self.walk(item, path)
                path.pop()
            return out
        if isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                path.append(index)
                items.append(self.walk(item, path))
                path.pop()
            return items
        return value

    def text(self, text: str, path: list[str | int]) -> str:
        def replace(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if not _NAME.fullmatch(name):
                raise UnknownVariable(
                    self.origin,
                    name,
                    f"${{{name}}} in {_where(path)} is not a variable reference: only ${{NAME}} is substituted"
                    f" (no defaults or other shell forms); write $${{{name}}} for a literal ${{{name}}}",
                )
            value = self.variables.values.get(name)
            if value is None:
                why = self.variables.missing.get(name)
                hint = (
                    f" ({why})"
                    if why
                    else f"; define it in spec.substitute or spec.substituteFrom, or write $${{{name}}} for a literal"
                    f" ${{{name}}}"
                )
                raise UnknownVariable(self.origin, name, f"unknown variable ${{{name}}} in {_where(path)}{hint}")
            return value

        return _REFERENCE.sub(replace, text)


def _where(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{str(part)!r}]"
    return text or "the document"
