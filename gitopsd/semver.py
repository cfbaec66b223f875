"""Version ranges over release tags, read the way Flux reads ``spec.source.semver``.

Flux hands the range to Masterminds/semver (v3), so users write ranges in that dialect and
expect its answers; this module implements the same grammar and rules so a range moved from
Flux picks the same tag here:

- terms ``=``, ``!=``, ``>``, ``<``, ``>=``, ``<=`` (also ``=>``, ``=<``), ``~`` / ``~>``
  (patch level: ``~1.2.3`` is ``>=1.2.3 <1.3.0``; ``~1`` is ``>=1 <2``), ``^`` (the leftmost
  non-zero part is fixed: ``^1.2`` is ``>=1.2.0 <2``, ``^0.2.3`` is ``>=0.2.3 <0.3.0``);
- wildcards ``x``, ``X``, ``*`` and missing parts (``1.x``, ``1.2.*``, ``1.2``, ``*``); a bare
  or ``=`` version with a wildcard means the range it spans, without one it means exactly it;
- hyphen ranges ``1.2 - 1.4.5`` (``>=1.2 <=1.4.5``);
- terms joined by spaces or commas must all hold; ``||`` separates alternatives;
- a tag with a prerelease (``v1.3.0-rc.1``) only matches an alternative that itself names a
  prerelease (``>=1.3.0-0``), as in npm and Cargo;
- tags may carry a leading ``v`` and omit parts (``v1.2`` is 1.2.0); tags that are not versions
  are ignored, never an error.

Precedence (``v1.10.0`` > ``v1.9.0``, ``1.0.0-alpha.10`` > ``1.0.0-alpha.9``, build metadata
ignored) comes from the ``semver`` library; only the range grammar is ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semver import Version

__all__ = ["Constraint", "Version", "newest", "newest_first", "parse_constraint", "parse_version"]

_IDENTS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(rf"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-({_IDENTS}))?(?:\+({_IDENTS}))?$")
_PART = r"\d+|[xX*]"
_TERM_VERSION = rf"v?(?:{_PART})(?:\.(?:{_PART}))?(?:\.(?:{_PART}))?(?:-{_IDENTS})?(?:\+{_IDENTS})?"
_TERM = re.compile(
    rf"(?P<op>!=|>=|=>|<=|=<|~>|\^|~|=|>|<)?\s*"
    rf"v?(?P<major>{_PART})(?:\.(?P<minor>{_PART}))?(?:\.(?P<patch>{_PART}))?"
    rf"(?:-(?P<pre>{_IDENTS}))?(?:\+{_IDENTS})?"
)
# Spaces around the dash tell a range from a prerelease ("1.2.3-rc").
_HYPHEN = re.compile(rf"(?P<low>{_TERM_VERSION})\s+-\s+(?P<high>{_TERM_VERSION})")
_WILDCARD = frozenset({"x", "X", "*"})


def parse_version(text: str) -> Version | None:
    """The version a tag names (``v1.2.3``, ``1.2``, ``v2.0.0-rc.1+build``), or None."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    major, minor, patch, pre, build = match.groups()
    if pre and any(part.isdigit() and len(part) > 1 and part[0] == "0" for part in pre.split(".")):
        return None  # numeric prerelease identifiers may not have leading zeros (semver.org item 9)
    return Version(int(major), int(minor or 0), int(patch or 0), pre, build)


@dataclass(frozen=True, slots=True)
class _Term:
    """One comparison, e.g. ``>=1.2`` or ``~1.x``, with which parts were wildcards."""

    op: str
    con: Version
    dirty: bool  # some part was a wildcard or missing
    minor_dirty: bool  # the minor (and so the patch) part was
    patch_dirty: bool  # only the patch part was
    any_major: bool  # the major part itself was a wildcard ("*", "^*")

    def holds(self, v: Version) -> bool:
        return _CHECKS[self.op](self, v)


def _same_range(t: _Term, v: Version) -> bool:
    """Whether ``v`` lies in the span a wildcard term names (``1.x``: 1.*.*, ``1.2.x``: 1.2.*)."""
    if t.any_major:
        return True
    if v.major != t.con.major:
        return False
    return t.minor_dirty or v.minor == t.con.minor


def _tilde(t: _Term, v: Version) -> bool:
    if v < t.con:
        return False
    if t.any_major or (t.con.major == t.con.minor == t.con.patch == 0 and not (t.minor_dirty or t.patch_dirty)):
        return True
    return _same_range(t, v)


def _caret(t: _Term, v: Version) -> bool:
    if t.any_major:
        return True
    if v < t.con:
        return False
    if t.con.major > 0 or t.minor_dirty:
        return v.major == t.con.major
    if v.major > 0:
        return False
    if t.con.minor > 0 or t.patch_dirty:
        return v.minor == t.con.minor
    return v.minor == 0 and v.patch == t.con.patch


def _equal(t: _Term, v: Version) -> bool:
    return _tilde(t, v) if t.dirty else v.compare(t.con) == 0


def _not_equal(t: _Term, v: Version) -> bool:
    return not _same_range(t, v) if t.dirty else v.compare(t.con) != 0


def _greater(t: _Term, v: Version) -> bool:
    if not (t.minor_dirty or t.patch_dirty):
        return v > t.con
    if v.major != t.con.major:
        return v.major > t.con.major
    # ">1" needs 2.0.0 or more; ">1.2" needs 1.3.0 or more.
    return not t.minor_dirty and v.minor > t.con.minor


def _less_equal(t: _Term, v: Version) -> bool:
    if not t.dirty:
        return v <= t.con
    if t.any_major:
        return True
    # "<=1" takes all of 1.x.x; "<=1.2" all of 1.2.x.
    if v.major != t.con.major:
        return v.major < t.con.major
    return t.minor_dirty or v.minor <= t.con.minor


_CHECKS: dict[str, Callable[[_Term, Version], bool]] = {
    "": _equal,
    "=": _equal,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda t, v: v < t.con,
    ">=": lambda t, v: v >= t.con,
    "=>": lambda t, v: v >= t.con,
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


@dataclass(frozen=True, slots=True)
class _Group:
    """Terms that must all hold; prereleases count only when one of the terms names one."""

    terms: tuple[_Term, ...]
    prereleases: bool

    def holds(self, v: Version) -> bool:
        if v.prerelease and not self.prereleases:
            return False
        return all(term.holds(v) for term in self.terms)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A parsed range: alternatives (``||``) of groups of terms."""

    text: str
    groups: tuple[_Group, ...]

    def allows(self, version: str) -> bool:
        """Whether the tag or version text ``version`` is in the range (False when not a version)."""
        parsed = parse_version(version)
        return parsed is not None and self.allows_version(parsed)

    def allows_version(self, version: Version) -> bool:
        return any(group.holds(version) for group in self.groups)

    def __str__(self) -> str:
        return self.text


def parse_constraint(text: str) -> Constraint:
    """Read a range; raise ``ValueError`` saying what could not be read."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the range is empty (use '*' for any release)")
    groups = []
    for number, alternative in enumerate(text.split("||"), start=1):
        if not alternative.strip():
            raise ValueError(f"alternative {number} (between '||') is empty")
        expanded = _HYPHEN.sub(lambda m: f">={m['low']}, <={m['high']}", alternative)
        terms = _parse_terms(expanded.strip(), alternative.strip())
        groups.append(_Group(terms, prereleases=any(t.con.prerelease for t in terms)))
    return Constraint(text.strip(), tuple(groups))


def _parse_terms(text: str, original: str) -> tuple[_Term, ...]:
    terms: list[_Term] = []
    pos = 0
    while True:
        match = _TERM.match(text, pos)
        if match is None or match.end() == match.start():
            raise ValueError(
                f"cannot read {text[pos:]!r} in {original!r}: expected a version such as 1.2.3, ^1.2, ~1.2 or 1.x"
            )
        terms.append(_term(match))
        pos = match.end()
        sep = re.compile(r"\s*,\s*|\s+").match(text, pos)
        if pos == len(text):
            return tuple(terms)
        if sep is None:
            raise ValueError(f"cannot read {text[pos:]!r} in {original!r}: separate terms with a space or a comma")
        pos = sep.end()
        if pos == len(text):
            raise ValueError(f"{original!r} ends with a separator; a version is missing")


def _term(match: re.Match[str]) -> _Term:
    major, minor, patch = match["major"], match["minor"], match["patch"]
    pre = match["pre"]
    any_major = major in _WILDCARD
    minor_dirty = not any_major and (minor is None or minor in _WILDCARD)
    patch_dirty = not any_major and not minor_dirty and (patch is None or patch in _WILDCARD)
    con = Version(
        0 if any_major else int(major),
        0 if any_major or minor_dirty else int(minor),
        0 if any_major or minor_dirty or patch_dirty else int(patch),
        pre,
    )
    return _Term(
        op=match["op"] or "",
        con=con,
        dirty=any_major or minor_dirty or patch_dirty,
        minor_dirty=minor_dirty,
        patch_dirty=patch_dirty,
        any_major=any_major,
    )


def newest(tags: Iterable[str], constraint: Constraint) -> str | None:
    """The tag naming the highest version in the range; None when none does.

    Two tags naming one version (``v1.0.0`` and ``1.0.0``, or different build metadata) are
    told apart by name, so the choice never depends on the order the remote listed them in.
    """
    best: tuple[Version, str] | None = None
    for tag in tags:
        version = parse_version(tag)
        if version is None or not constraint.allows_version(version):
            continue
        if best is None or version > best[0] or (version.compare(best[0]) == 0 and tag > best[1]):
            best = (version, tag)
    return best[1] if best else None


def newest_first(tags: Iterable[str]) -> list[str]:
    """The version tags among ``tags``, highest version first (for messages listing what exists)."""
    versions = [(v, t) for t in tags if (v := parse_version(t)) is not None]
    versions.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)
    return [tag for _, tag in versions]
