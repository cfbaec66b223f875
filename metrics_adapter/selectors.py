"""Kubernetes label selectors: the string syntax the API uses, parsed and matched without a cluster.

The HPA passes selectors as strings (``labelSelector``, ``metricLabelSelector``). They pick
objects from the object index, label matchers for PromQL, and queue entries; all three need
the same parse, so it lives here once. The grammar and validation follow
k8s.io/apimachinery's ``labels.Parse``: equality (``=``, ``==``, ``!=``), set-based (``in``,
``notin``), existence (``key``, ``!key``) and ``gt``/``lt`` on integers; keys and values are
checked as qualified names and label values so a bad selector is a 400 naming the part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

Operator = Literal["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_MAX_SELECTOR = 8192  # longer than any real selector; bounds work on absurd input
# Used with fullmatch: ``match`` with ``$`` would let a trailing newline through.
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT = re.compile(r"-?[0-9]+")
_SPECIAL = set("!=,()<>")


class SelectorError(ValueError):
    """A selector string is malformed; the message names the offending part."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause of a selector: ``key op values``."""

    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "=="):
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or value is None or not _INT.fullmatch(value):
            return False
        if self.op == "gt":
            return int(value) > int(self.values[0])
        return int(value) < int(self.values[0])

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        if self.op == "gt":
            return f"{self.key}>{self.values[0]}"
        if self.op == "lt":
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


class LabelSelectorRequirementJSON(TypedDict, total=False):
    key: str
    operator: str
    values: list[str]


class LabelSelectorJSON(TypedDict, total=False):
    """metav1.LabelSelector as JSON."""

    matchLabels: dict[str, str]
    matchExpressions: list[LabelSelectorRequirementJSON]


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector: requirements sorted by key, as apimachinery keeps them."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def to_label_selector(self) -> LabelSelectorJSON | None:
        """The metav1.LabelSelector form (``None`` when empty), as ``ParseToLabelSelector`` builds it."""
        if self.empty:
            return None
        match_labels: dict[str, str] = {}
        expressions: list[LabelSelectorRequirementJSON] = []
        for r in self.requirements:
            if r.op in ("=", "=="):
                match_labels[r.key] = r.values[0]
            elif r.op == "!=":
                expressions.append({"key": r.key, "operator": "NotIn", "values": [r.values[0]]})
            elif r.op in ("in", "notin"):
                expressions.append(
                    {"key": r.key, "operator": "In" if r.op == "in" else "NotIn", "values": list(r.values)}
                )
            elif r.op == "exists":
                expressions.append({"key": r.key, "operator": "Exists"})
            elif r.op == "!":
                expressions.append({"key": r.key, "operator": "DoesNotExist"})
            else:  # gt / lt have no LabelSelector form; keep the selector's meaning visible
                expressions.append({"key": r.key, "operator": "Gt" if r.op == "gt" else "Lt", "values": list(r.values)})
        out: LabelSelectorJSON = {}
        if match_labels:
            out["matchLabels"] = match_labels
        if expressions:
            out["matchExpressions"] = expressions
        return out


EVERYTHING = Selector()


def _validate_key(key: str, where: str) -> None:
    if not key:
        raise SelectorError(f"{where}: empty label key")
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"{where}: label key {key!r} has an invalid prefix {prefix!r} (a DNS subdomain)")
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(
            f"{where}: invalid label key {key!r}: the name part must be 1-63 characters of [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )


def _validate_value(value: str, key: str, where: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"{where}: invalid value {value!r} for label {key!r}: at most 63 characters of [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )


class _Lexer:
    """Splits a selector into identifiers and operator tokens, as apimachinery's lexer does."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        save = self.pos
        tok = self.next()
        self.pos = save
        return tok

    def next(self) -> str:
        t, n = self.text, len(self.text)
        while self.pos < n and t[self.pos].isspace():
            self.pos += 1
        if self.pos >= n:
            return ""
        c = t[self.pos]
        if c in _SPECIAL:
            two = t[self.pos : self.pos + 2]
            if two in ("==", "!="):
                self.pos += 2
                return two
            self.pos += 1
            return c
        start = self.pos
        while self.pos < n and not t[self.pos].isspace() and t[self.pos] not in _SPECIAL:
            self.pos += 1
        return t[start : self.pos]


def _is_ident(tok: str) -> bool:
    return bool(tok) and tok not in _SPECIAL and tok not in ("==", "!=")


def parse(text: str | None, *, where: str = "labelSelector") -> Selector:
    """Parse a selector string; ``None`` or blank selects everything.

    ``where`` names the parameter in error messages (``labelSelector``, ``metricLabelSelector``).
    """
    if text is None or not text.strip():
        return EVERYTHING
    if len(text) > _MAX_SELECTOR:
        raise SelectorError(f"{where}: selector is {len(text)} characters long; at most {_MAX_SELECTOR} are accepted")
    lex = _Lexer(text)
    reqs: list[Requirement] = []
    while True:
        reqs.append(_requirement(lex, where))
        tok = lex.next()
        if tok == "":
            break
        if tok != ",":
            raise SelectorError(f"{where}: expected ',' or end of selector, found {tok!r} in {text!r}")
    # apimachinery sorts by key (stable), which also makes equal selectors compare equal here.
    reqs.sort(key=lambda r: r.key)
    return Selector(tuple(reqs))


def _requirement(lex: _Lexer, where: str) -> Requirement:
    tok = lex.next()
    if tok == "!":
        key = lex.next()
        if not _is_ident(key):
            raise SelectorError(f"{where}: expected a label key after '!', found {key or 'end of selector'!r}")
        _validate_key(key, where)
        after = lex.peek()
        if after not in ("", ","):
            raise SelectorError(f"{where}: '!{key}' takes no operator, found {after!r}")
        return Requirement(key, "!")
    if not _is_ident(tok):
        raise SelectorError(f"{where}: expected a label key, found {tok or 'end of selector'!r}")
    key = tok
    _validate_key(key, where)
    op_tok = lex.peek()
    if op_tok in ("", ","):
        return Requirement(key, "exists")
    op_tok = lex.next()
    if op_tok in ("=", "==", "!="):
        value = lex.peek()
        if value in ("", ","):
            value = ""  # `key=` selects the empty value, as in apimachinery
        else:
            value = lex.next()
            if not _is_ident(value):
                raise SelectorError(f"{where}: expected a value after '{key}{op_tok}', found {value!r}")
        _validate_value(value, key, where)
        return Requirement(key, op_tok, (value,))  # type: ignore[arg-type]
    if op_tok in (">", "<"):
        value = lex.next()
        if not _INT.fullmatch(value):
            raise SelectorError(f"{where}: '{key}{op_tok}' needs an integer value, found {value or 'nothing'!r}")
        return Requirement(key, "gt" if op_tok == ">" else "lt", (value,))
    if op_tok in ("in", "notin"):
        if lex.next() != "(":
            raise SelectorError(f"{where}: expected '(' after '{key} {op_tok}'")
        values: list[str] = []
        expect_value = True
        while True:
            tok = lex.next()
            if tok == "":
                raise SelectorError(f"{where}: unterminated value list after '{key} {op_tok} ('")
            if expect_value:
                if _is_ident(tok):
                    values.append(tok)
                    expect_value = False
                    continue
                if tok == ")" and not values:
                    raise SelectorError(f"{where}: '{key} {op_tok} ()' needs at least one value")
                if tok not in (",", ")"):
                    raise SelectorError(f"{where}: unexpected {tok!r} in the value list of '{key} {op_tok}'")
                values.append("")  # `(a,)` and `(,a)` hold the empty value, as in apimachinery
                if tok == ")":
                    break
                continue
            if tok == ")":
                break
            if tok != ",":
                raise SelectorError(
                    f"{where}: expected ',' or ')' in the value list of '{key} {op_tok}', found {tok!r}"
                )
            expect_value = True
        for v in values:
            _validate_value(v, key, where)
        return Requirement(key, op_tok, tuple(sorted(set(values))))  # type: ignore[arg-type]
    raise SelectorError(f"{where}: unknown operator {op_tok!r} after label key {key!r}")
