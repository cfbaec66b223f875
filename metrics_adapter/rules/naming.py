"""Series names to API metric names: ``name: {matches, as}`` and ``seriesFilters``, as Go does them.

prometheus-adapter compiles these with Go's RE2 and expands ``as`` with ``Regexp.ExpandString``.
A config must give the same names here, so the two Go behaviours that differ from Python are
reproduced: ``$name`` takes the longest run of letters, digits and underscores (``$1_total`` is
the group named ``1_total``, which is empty; ``${1}_total`` is what people mean), and regexes
are searched, not anchored. Go-only regex spellings (``\\z``, POSIX classes) are translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\t\n\v\f\r ",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
    "punct": r"!-/:-@\[-`{-~",
}
_EXPAND = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


class NamingError(ValueError):
    """A regex or ``as`` template cannot be used; the message says why."""


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern as Python ``re`` (raises NamingError with the regex named)."""
    translated = pattern.replace(r"\z", r"\Z")
    for cls, chars in _POSIX.items():
        translated = translated.replace(f"[:{cls}:]", chars)
    if re.search(r"\(\?[=!<]|\(\?<[=!]", translated) and not re.search(r"\(\?P?<[A-Za-z_]", translated):
        raise NamingError(f"regex {pattern!r} uses look-around, which Go's RE2 (and prometheus-adapter) rejects")
    try:
        return re.compile(translated)
    except re.error as exc:
        raise NamingError(f"invalid regex {pattern!r}: {exc}") from exc


def expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; unknown → ``""``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(3)
        if name.isdigit():
            idx = int(name)
            if idx > (match.re.groups or 0):
                return ""
            return match.group(idx) or ""
        if name in match.re.groupindex:
            return match.group(name) or ""
        return ""

    return _EXPAND.sub(sub, template)


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """``is`` (keep matching names) or ``isNot`` (drop them)."""

    regex: re.Pattern[str]
    positive: bool

    def keeps(self, name: str) -> bool:
        return bool(self.regex.search(name)) == self.positive


@dataclass(frozen=True, slots=True)
class Namer:
    """Filters series names and turns them into API metric names."""

    filters: tuple[SeriesFilter, ...]
    matches: re.Pattern[str]
    as_template: str

    def keeps(self, series_name: str) -> bool:
        return all(f.keeps(series_name) for f in self.filters)

    def metric_name(self, series_name: str) -> str | None:
        m = self.matches.search(series_name)
        if m is None:
            return None
        return expand(self.as_template, m)


def build_namer(matches: str | None, as_template: str | None, filters: list[tuple[bool, str]]) -> Namer:
    """Compile a rule's naming; ``filters`` holds ``(positive, regex)`` pairs in config order."""
    compiled = [SeriesFilter(compile_go_regex(rx), positive) for positive, rx in filters]
    if matches:
        regex = compile_go_regex(matches)
        compiled.append(SeriesFilter(regex, True))  # name.matches is also an implicit filter
    else:
        regex = re.compile(".*")
    if not as_template:
        if regex.groups == 0:
            as_template = "$0"
        elif regex.groups == 1:
            as_template = "$1"
        else:
            raise NamingError(f"'matches' {matches!r} has {regex.groups} capture groups: 'as' must say which to use")
    return Namer(tuple(compiled), regex, as_template)
