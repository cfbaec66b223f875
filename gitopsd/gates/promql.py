"""Which series a PromQL query reads: its vector selectors, picked out of its text.

Verification must know how old the data behind a value is (:mod:`gitopsd.gates.prometheus`
explains why), and only ``timestamp()`` of a bare vector selector tells that. Prometheus has no
API that parses a query into its parts before 3.0, so this is a small lexer that follows just
enough PromQL to find the selectors and whether ``offset`` or ``@`` moves them back in time.
It is pure text in, text out: no I/O, nothing of the HTTP client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Selectors:
    """A query's vector selectors, as written: ``current`` ones and ``historical`` ones (offset, @ t)."""

    current: tuple[str, ...] = ()
    historical: tuple[str, ...] = ()


_TOKENS = re.compile(
    r"""(?P<skip>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)[a-zA-Z0-9]*)
    |(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>=~|!~|!=|==|>=|<=|[-(){}\[\],=<>+*/%^@:])""",
    re.VERBOSE,
)
# Followed by a parenthesised list of label names, not of expressions.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Words that are never a metric name where they stand (aggregations are also followed by "by").
_WORDS = {
    *_LABEL_LISTS,
    *("sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"),
    *("count_values", "limitk", "limit_ratio", "and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"),
    *("smoothed", "anchored"),  # range modifiers of Prometheus 3
}
_CLOSE = {"(": ")", "{": "}", "[": "]"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def selectors(promql: str) -> Selectors:
    """The vector selectors in ``promql`` (``rate(x{a="b"}[5m])`` → ``x{a="b"}``), in order, once each.

    Raises ``ValueError`` for text it does not follow (the query was parsed by Prometheus
    already, so that is a gap here), and for an ``offset`` or ``@`` that moves a whole subquery:
    then which data the value comes from is not known from the selectors alone.
    """
    tokens = _tokenize(promql)
    current: list[str] = []
    historical: list[str] = []
    attached: set[int] = set()  # the offset / @ tokens that belong to a selector
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        after = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if tok.kind == "name" and tok.text.lower() in _LABEL_LISTS and after == "(":
            i = _closing(tokens, i + 1) + 1
        elif tok.kind == "name" and (after == "(" or tok.text.lower() in _WORDS):
            i += 1
        elif tok.kind == "name" or tok.text == "{":
            end = i if tok.text != "{" and after != "{" else _closing(tokens, i if tok.text == "{" else i + 1)
            text = promql[tok.start : tokens[end].end]
            moved, used = _modifiers(tokens, end + 1)
            attached.update(used)
            target = historical if moved else current
            if text not in target:
                target.append(text)
            i = end + 1
        elif tok.text == "[":
            i = _closing(tokens, i) + 1  # a range or subquery window: durations only
        else:
            i += 1
    loose = [t for n, t in enumerate(tokens) if (t.text == "@" or t.text.lower() == "offset") and n not in attached]
    if loose:
        raise ValueError(f"'{loose[0].text}' at character {loose[0].start} moves a subquery, not one selector")
    return Selectors(tuple(current), tuple(historical))


def freshness_query(chosen: tuple[str, ...]) -> str:
    """An instant query for the newest raw sample of any of the selectors (Unix seconds)."""
    parts = [f'label_replace(max(timestamp({s})), "gitopsd_selector", "{n}", "", "")' for n, s in enumerate(chosen)]
    return "max(" + " or ".join(parts) + ")"


def _tokenize(promql: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(promql):
        match = _TOKENS.match(promql, at)
        if match is None or match.lastgroup is None:
            raise ValueError(f"unexpected {promql[at]!r} at character {at}")
        if match.lastgroup != "skip":
            tokens.append(_Token(match.lastgroup, match.group(), match.start(), match.end()))
        at = match.end()
    return tokens


def _closing(tokens: list[_Token], opening: int) -> int:
    """The index of the bracket closing the one at ``opening``."""
    want = _CLOSE.get(tokens[opening].text)
    if want is None:
        raise ValueError(f"expected a bracket at character {tokens[opening].start}")
    depth = 0
    for n in range(opening, len(tokens)):
        if tokens[n].kind == "op" and tokens[n].text in _CLOSE:
            depth += 1
        elif tokens[n].kind == "op" and tokens[n].text in _CLOSE.values():
            depth -= 1
            if depth == 0:
                return n
    raise ValueError(f"'{tokens[opening].text}' at character {tokens[opening].start} is never closed")


def _modifiers(tokens: list[_Token], n: int) -> tuple[bool, list[int]]:
    """After a selector: its range, then ``offset d`` and ``@ t`` in either order; whether they move it back."""
    if n < len(tokens) and tokens[n].text == "[":
        n = _closing(tokens, n) + 1
    moved, used = False, []
    while n < len(tokens) and (tokens[n].text == "@" or tokens[n].text.lower() == "offset"):
        used.append(n)
        word, n = tokens[n].text, n + 1
        if n < len(tokens) and tokens[n].text in ("-", "+"):
            n += 1
        if word == "@" and n + 1 < len(tokens) and tokens[n].text in ("start", "end") and tokens[n + 1].text == "(":
            n = _closing(tokens, n + 1) + 1  # start() and end() are an instant query's evaluation time
            continue
        moved = True
        n = _closing(tokens, n) + 1 if n < len(tokens) and tokens[n].text == "(" else n + 1
    return moved, used
