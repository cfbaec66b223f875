"""Which Environments a push concerns: same repository (by identity) and a ref they follow.

- a branch push triggers the Environments on that branch;
- a tag push triggers those on that exact tag and the semver ones whose range holds the tag's
  version (a tag outside the range cannot change their choice);
- a deleted ref triggers the same set: their next reconcile resolves the ref afresh and
  reports at once that it is gone (or, for a range, picks the newest tag still there), which is
  what the next poll would do, only sooner. The pushed commit is never deployed as such: a
  triggered reconcile always asks the remote (``ls-remote``) what the ref names now;
- pinned commits never move, and other refs (``refs/pull/...``, notes) concern nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitopsd import semver
from gitopsd.spec import SourceSpec
from gitopsd.webhooks.payloads import Push
from gitopsd.webhooks.repourl import repository_identity


@dataclass(frozen=True, slots=True)
class Match:
    triggered: tuple[str, ...]  # Environment keys (namespace/name)
    repository_known: bool  # some Environment reads this repository, whatever its ref


def follows(source: SourceSpec, push: Push) -> bool:
    """Whether a push of ``push.ref`` can change what ``source`` deploys."""
    if push.branch is not None:
        return source.ref_kind == "branch" and source.ref == push.branch
    tag = push.tag
    if tag is None:
        return False
    if source.ref_kind == "tag":
        return source.ref == tag
    if source.ref_kind == "semver":
        try:
            return semver.parse_constraint(source.ref).allows(tag)
        except ValueError:
            return False
    return False


def match(push: Push, environments: Iterable[tuple[str, SourceSpec]]) -> Match:
    """The Environments (``key``, ``source``) a push should trigger."""
    wanted = {ident for url in push.repositories if (ident := repository_identity(url))}
    triggered: list[str] = []
    known = False
    for key, source in environments:
        if repository_identity(source.url) not in wanted:
            continue
        known = True
        if follows(source, push):
            triggered.append(key)
    return Match(tuple(sorted(triggered)), known)
