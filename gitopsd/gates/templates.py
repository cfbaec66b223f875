"""Variables in verification queries: ``{{.namespace}}``, ``{{.window}}``, ``{{.REGISTRY}}``...

A query is PromQL with Go-template-style references, and nothing else of Go templates (no
pipelines, no ``range``): a query is one expression, and a reference that is not a plain
variable is more likely a typo than a feature. Every reference is checked when the spec is
read, so an unknown variable is an error naming it, never a silent empty string in a query
that then matches nothing (and would pass as NoData).

Built-ins (they win over a ``spec.substitute`` key of the same name):

- ``.namespace``: ``spec.targetNamespace``, else the Environment's namespace;
- ``.environment``: the Environment's name;
- ``.revision``: the full commit sha of the release being verified;
- ``.window``: the metric's ``window`` (a PromQL duration such as ``2m``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

BUILTINS = ("namespace", "environment", "revision", "window")

_REFERENCE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VARIABLE = re.compile(r"^\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


class TemplateError(ValueError):
    """A query whose references cannot be resolved; the message names the reference."""


def variables(template: str) -> list[str]:
    """The variable names ``template`` refers to, in order (repeats kept)."""
    names: list[str] = []
    pos = 0
    for match in _REFERENCE.finditer(template):
        _check_literal(template[pos : match.start()])
        inner = _VARIABLE.match(match.group(1))
        if inner is None:
            raise TemplateError(
                f"{{{{{match.group(1)}}}}} is not a variable reference: write {{{{.name}}}} "
                f"(one of .{', .'.join(BUILTINS)} or a spec.substitute key)"
            )
        names.append(inner.group(1))
        pos = match.end()
    _check_literal(template[pos:])
    return names


def check(template: str, known: Iterable[str]) -> list[str]:
    """Raise ``TemplateError`` naming the first unknown variable; return the names used."""
    allowed = set(known)
    names = variables(template)
    for name in names:
        if name not in allowed:
            builtins = [k for k in BUILTINS if k in allowed]
            choices = ", ".join(f".{k}" for k in [*builtins, *sorted(allowed - set(builtins))])
            raise TemplateError(f"unknown template variable .{name} (known: {choices})")
    return names


def resolve(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every reference replaced; raises ``TemplateError`` for an unknown one."""
    check(template, values)
    return _REFERENCE.sub(lambda m: values[_VARIABLE.match(m.group(1)).group(1)], template)  # type: ignore[union-attr]


def _check_literal(text: str) -> None:
    if "{{" in text or "}}" in text:
        raise TemplateError("has an unbalanced '{{' or '}}'")
