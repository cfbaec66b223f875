"""Field selectors for metrics.k8s.io lists: the metadata fields metrics-server filters on.

metrics-server lists pods and nodes as metadata only, so its ``fieldSelector`` can only test
``metadata.name`` and (pods) ``metadata.namespace``, with ``=``, ``==`` and ``!=`` joined by
commas. Any other field is a 400 naming it, rather than a filter silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TERM = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*([^,]*?)\s*$")


class FieldSelectorError(ValueError):
    """The selector is malformed or tests a field that cannot be served."""


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(f, "") == v) == eq for f, eq, v in self.terms)

    def __str__(self) -> str:
        return ",".join(f"{f}{'=' if eq else '!='}{v}" for f, eq, v in self.terms)


EVERYTHING = FieldSelector()


def parse(text: str, supported: tuple[str, ...]) -> FieldSelector:
    if not text.strip():
        return EVERYTHING
    terms = []
    for raw in text.split(","):
        m = _TERM.match(raw)
        if m is None:
            raise FieldSelectorError(f"fieldSelector: {raw.strip()!r} is not FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE")
        field, op, value = m.groups()
        if field not in supported:
            raise FieldSelectorError(
                f"fieldSelector: field {field!r} is not supported here (supported: {', '.join(supported)})"
            )
        terms.append((field, op != "!=", value))
    return FieldSelector(tuple(sorted(terms)))
