"""The subset of Go's text/template that prometheus-adapter configs use, with ``<<`` ``>>`` delimiters.

Configs in the wild print fields (``<<.Series>>``, ``<<.LabelMatchers>>``, ``<<.GroupBy>>``),
look up a map key (``<<.LabelValuesByName.namespace>>`` or ``<<index .LabelValuesByName "pod">>``),
trim whitespace (``<<-`` / ``->>``) and carry comments. That is what this module renders, with
Go's output for each (a missing map key prints ``<no value>`` by field access and nothing by
``index``; a slice prints as ``[a b]``). Anything else (``if``, ``range``, pipes, functions,
variables) is rejected when the config is loaded, naming the construct, rather than rendered
differently from prometheus-adapter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Value = str | Sequence[str] | Mapping[str, str]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD = re.compile(rf"^\.({_IDENT})(?:\.({_IDENT}))?$")
_INDEX = re.compile(rf'^index\s+\.({_IDENT})\s+"((?:[^"\\]|\\.)*)"$')
_KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue")


class TemplateError(ValueError):
    """A template uses syntax or fields outside the supported subset."""


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    key: str | None  # map key for `.Field.key` / `index .Field "key"`
    by_index: bool = False


_Node = _Text | _Field


def _go_string(v: Value) -> str:
    """How Go's fmt prints the template's values."""
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{v[k]}" for k in sorted(v)) + "]"
    return "[" + " ".join(v) + "]"


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; ``render`` fills it in."""

    source: str
    nodes: tuple[_Node, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(n.name for n in self.nodes if isinstance(n, _Field))

    def render(self, data: Mapping[str, Value]) -> str:
        out: list[str] = []
        for node in self.nodes:
            if isinstance(node, _Text):
                out.append(node.text)
                continue
            value = data.get(node.name, "")
            if node.key is None:
                out.append(_go_string(value))
            elif isinstance(value, Mapping):
                if node.key in value:
                    out.append(value[node.key])
                elif not node.by_index:
                    out.append("<no value>")
            else:
                raise TemplateError(f"{node.name} is not a map; cannot look up {node.key!r}")
        return "".join(out)


def parse(source: str, allowed: Sequence[str], *, what: str = "template") -> Template:
    """Parse ``source``; fields outside ``allowed`` and unsupported actions raise ``TemplateError``."""
    nodes: list[_Node] = []
    pos = 0
    pending_trim_left = False
    while True:
        start = source.find("<<", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if pending_trim_left:
            text = text.lstrip()
        if start >= 0 and source.startswith("<<-", start) and source[start + 3 : start + 4] in (" ", "\t", "\n", "\r"):
            text = text.rstrip()
        if text:
            nodes.append(_Text(text))
        if start < 0:
            break
        end = _find_close(source, start + 2, what)
        body = source[start + 2 : end]
        pending_trim_left = False
        if body.startswith("- ") or body.startswith("-\t") or body.startswith("-\n"):
            body = body[1:]
        if body.endswith(" -") or body.endswith("\t-") or body.endswith("\n-"):
            body = body[:-1]
            pending_trim_left = True
        node = _action(body.strip(), allowed, what)
        if node is not None:
            nodes.append(node)
        pos = end + 2
    return Template(source, tuple(nodes))


def _find_close(source: str, pos: int, what: str) -> int:
    in_string = False
    i = pos
    while i < len(source):
        c = source[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif source.startswith(">>", i):
            return i
        i += 1
    raise TemplateError(f"{what}: unclosed action starting at character {pos - 2} (missing '>>')")


def _action(body: str, allowed: Sequence[str], what: str) -> _Node | None:
    if body.startswith("/*") and body.endswith("*/"):
        return None  # a comment
    m = _FIELD.match(body)
    if m:
        name, key = m.group(1), m.group(2)
        _check_field(name, allowed, what)
        return _Field(name, key)
    m = _INDEX.match(body)
    if m:
        name = m.group(1)
        _check_field(name, allowed, what)
        key = bytes(m.group(2), "utf-8").decode("unicode_escape")
        return _Field(name, key, by_index=True)
    word = body.split(None, 1)[0] if body.split() else ""
    if word in _KEYWORDS:
        raise TemplateError(f"{what}: the {word!r} action is not supported (only field references and 'index')")
    if "|" in body:
        raise TemplateError(f"{what}: pipelines ({body!r}) are not supported (only field references and 'index')")
    if body.startswith("$"):
        raise TemplateError(f"{what}: template variables ({body!r}) are not supported")
    if not body:
        raise TemplateError(f"{what}: empty action '<<>>'")
    raise TemplateError(
        f'{what}: unsupported action <<{body}>>: only <<.Field>>, <<.Field.key>> and <<index .Field "key">> '
        f"are supported, with fields {', '.join(allowed)}"
    )


def _check_field(name: str, allowed: Sequence[str], what: str) -> None:
    if name not in allowed:
        raise TemplateError(f"{what}: unknown field .{name}; available: {', '.join('.' + a for a in allowed)}")
