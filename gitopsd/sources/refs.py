"""From a source's ref (branch, tag, semver range, commit) to the refs to ask for and the answer.

Change detection asks the remote only for the refs in use (``git ls-remote URL PATTERN...``;
with protocol v2 the server filters), which costs one round trip and no pack, however large
the repository. Annotated tags are peeled to the commit they name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gitopsd import semver
from gitopsd.model import Revision
from gitopsd.sources import errors
from gitopsd.spec import SourceSpec

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
HEADS, TAGS = "refs/heads/", "refs/tags/"
_PEELED = "^{}"
_SHOWN = 5  # names listed when a ref is missing


def patterns_for(source: SourceSpec) -> frozenset[str]:
    """The ls-remote patterns that answer for ``source``."""
    if source.ref_kind == "branch":
        return frozenset({HEADS + source.ref})
    if source.ref_kind == "tag":
        # The peeled entry (^{}) is listed only when asked for by name.
        return frozenset({TAGS + source.ref, TAGS + source.ref + _PEELED})
    if source.ref_kind == "semver":
        return frozenset({TAGS + "*"})
    # A pinned commit needs no ref, but asking for HEAD proves the remote and credentials work.
    return frozenset({"HEAD"})


def parse_ls_remote(output: bytes) -> dict[str, str]:
    """``refname -> commit`` from ls-remote output, annotated tags replaced by their commit."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.decode("utf-8", errors="replace").splitlines():
        sha, _, name = line.partition("\t")
        if not name:
            continue
        if name.endswith(_PEELED):
            peeled[name.removesuffix(_PEELED)] = sha
        else:
            refs[name] = sha
    refs.update({name: sha for name, sha in peeled.items() if name in refs})
    return refs


@dataclass(frozen=True, slots=True)
class RemoteRefs:
    """One ls-remote answer: what it asked for, what came back, and when it started (monotonic)."""

    patterns: frozenset[str]
    refs: Mapping[str, str]
    taken_at: float

    def tags(self) -> list[str]:
        return [name.removeprefix(TAGS) for name in self.refs if name.startswith(TAGS)]


def pick(source: SourceSpec, remote: RemoteRefs) -> Revision | None:
    """The revision ``source`` names in ``remote``; None when its ref is missing (see :func:`missing`).

    A short pinned commit cannot be expanded from refs; it comes back as given and is expanded
    against the mirror by the caller.
    """
    kind, ref = source.ref_kind, source.ref
    if kind == "branch":
        sha = remote.refs.get(HEADS + ref)
        return Revision(ref, sha) if sha else None
    if kind == "tag":
        sha = remote.refs.get(TAGS + ref)
        return Revision(ref, sha) if sha else None
    if kind == "semver":
        constraint = semver.parse_constraint(ref)
        tag = semver.newest(remote.tags(), constraint)
        return Revision(tag, remote.refs[TAGS + tag]) if tag else None
    return Revision("", ref)


def missing(source: SourceSpec, where: str, names: Iterable[str]) -> errors.RefNotFound:
    """The error for a ref ``source`` names that ``where`` lacks, listing a few ``names`` that exist."""
    kind, ref = source.ref_kind, source.ref
    listed = list(names)
    if kind == "semver":
        versions = semver.newest_first(listed)
        shown = _few(versions, "tags, newest first") if versions else "the repository has no version tags"
        return errors.RefNotFound(f"{where}: no tag matches semver range {ref!r} ({shown})")
    noun, plural = ("branch", "branches") if kind == "branch" else ("tag", "tags")
    if not listed:
        return errors.RefNotFound(f"{where}: {noun} {ref!r} not found (the repository has no {plural})")
    ordered = semver.newest_first(listed) if kind == "tag" else []
    ordered += sorted(set(listed) - set(ordered))
    return errors.RefNotFound(f"{where}: {noun} {ref!r} not found ({_few(ordered, plural)})")


def _few(names: list[str], label: str) -> str:
    head = ", ".join(names[:_SHOWN])
    more = f", … {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{label}: {head}{more}"


def is_full_sha(text: str) -> bool:
    return bool(_FULL_SHA.match(text))
