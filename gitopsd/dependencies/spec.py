"""``spec.dependsOn: [{name, namespace}]`` read into values; every error names its field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitopsd.errors import SpecError
from gitopsd.fields import SPEC as FIELDS

#: More would make every reconcile of this Environment read that many others.
MAX_DEPENDENCIES = 32


@dataclass(frozen=True, slots=True)
class Dependency:
    """One Environment this one waits for; ``namespace`` None: the dependent's own."""

    name: str
    namespace: str | None = None

    def key(self, default_namespace: str) -> str:
        """``namespace/name``, the dependent's namespace when none is given."""
        return f"{self.namespace or default_namespace}/{self.name}"


def parse_depends_on(raw: Any, *, name: str | None = None, namespace: str | None = None) -> tuple[Dependency, ...]:
    """Read ``spec.dependsOn``; an Environment naming itself is refused here (a cycle of one)."""
    items = FIELDS.items(raw, "dependsOn")
    if len(items) > MAX_DEPENDENCIES:
        raise SpecError("dependsOn", f"{len(items)} entries; at most {MAX_DEPENDENCIES}")
    found: list[Dependency] = []
    for index, item in enumerate(items):
        where = f"dependsOn[{index}]"
        entry = FIELDS.mapping(item, where, required=True)
        unknown = sorted(set(entry) - {"name", "namespace"})
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}", "unknown field (dependsOn entries have name and namespace)")
        dep_name = FIELDS.dns_subdomain(entry.get("name"), f"{where}.name", what="an Environment name")
        dep_ns = FIELDS.optional_string(entry.get("namespace"), f"{where}.namespace")
        if dep_ns:
            FIELDS.dns_label(dep_ns, f"{where}.namespace", what="a namespace name")
        dependency = Dependency(dep_name, dep_ns or None)
        if dependency in found:
            raise SpecError(where, f"{dependency.key(namespace or '<this namespace>')} is listed twice")
        if name is not None and dep_name == name and (dep_ns is None or dep_ns == namespace):
            raise SpecError(f"{where}.name", f"an Environment cannot depend on itself ({dep_name})")
        found.append(dependency)
    return tuple(found)
