"""From a source's ref to ls-remote patterns and back to a revision, and what a miss says."""

from __future__ import annotations

import pytest

from gitopsd.model import Revision
from gitopsd.sources.refs import RemoteRefs, missing, parse_ls_remote, patterns_for, pick
from gitopsd.spec import SourceSpec

A, B, C, T = "a" * 40, "b" * 40, "c" * 40, "7" * 40
LS_REMOTE = (
    f"{A}\trefs/heads/main\n{B}\trefs/heads/develop\n"
    f"{T}\trefs/tags/v1.0.0\n{A}\trefs/tags/v1.0.0^{{}}\n"  # annotated: tag object, then the commit
    f"{B}\trefs/tags/v1.10.0\n{C}\trefs/tags/v1.9.0\n{C}\trefs/tags/v2.0.0-rc.1\n{A}\trefs/tags/nightly\n"
).encode()
REMOTE = RemoteRefs(frozenset({"refs/heads/*", "refs/tags/*"}), parse_ls_remote(LS_REMOTE), 0.0)


def source(kind: str, ref: str) -> SourceSpec:
    return SourceSpec(url="file:///srv/app.git", ref_kind=kind, ref=ref, path="")  # type: ignore[arg-type]


def test_annotated_tags_are_peeled() -> None:
    """An annotated tag resolves to its commit, not to the tag object."""
    assert REMOTE.refs["refs/tags/v1.0.0"] == A
    assert "refs/tags/v1.0.0^{}" not in REMOTE.refs


@pytest.mark.parametrize(
    ("kind", "ref", "patterns"),
    [
        ("branch", "develop", {"refs/heads/develop"}),
        ("tag", "v1.0.0", {"refs/tags/v1.0.0", "refs/tags/v1.0.0^{}"}),
        ("semver", ">=1.0.0", {"refs/tags/*"}),
        ("commit", A, {"HEAD"}),
    ],
)
def test_only_the_refs_in_use_are_asked_for(kind: str, ref: str, patterns: set[str]) -> None:
    """ls-remote asks for the one branch or tag (with its peeled entry), all tags only for a range."""
    assert patterns_for(source(kind, ref)) == patterns


@pytest.mark.parametrize(
    ("kind", "ref", "expected"),
    [
        ("branch", "main", Revision("main", A)),
        ("branch", "develop", Revision("develop", B)),
        ("tag", "v1.0.0", Revision("v1.0.0", A)),
        ("semver", "*", Revision("v1.10.0", B)),
        ("semver", "~1.9", Revision("v1.9.0", C)),
        ("semver", ">=2.0.0-0", Revision("v2.0.0-rc.1", C)),
        ("commit", C, Revision("", C)),
        ("branch", "gone", None),
        ("tag", "v9.9.9", None),
        ("semver", ">=3", None),
    ],
)
def test_pick(kind: str, ref: str, expected: Revision | None) -> None:
    """Each kind of ref picks its commit from one ls-remote answer (None when missing)."""
    assert pick(source(kind, ref), REMOTE) == expected


def test_missing_branch_lists_some_that_exist() -> None:
    """A missing branch names the URL, the branch and a few branches that do exist."""
    error = missing(source("branch", "prod"), "https://h/app.git", ["main", "develop"])
    assert str(error) == "https://h/app.git: branch 'prod' not found (branches: develop, main)"
    assert error.reason == "RefNotFound"


def test_missing_tag_lists_newest_tags_first_and_counts_the_rest() -> None:
    """A missing tag lists the newest version tags first, at most five, and how many more."""
    tags = [f"v1.{i}.0" for i in range(8)] + ["nightly"]
    error = missing(source("tag", "v9"), "u", tags)
    assert str(error) == "u: tag 'v9' not found (tags: v1.7.0, v1.6.0, v1.5.0, v1.4.0, v1.3.0, … 4 more)"


def test_no_tag_in_range_says_which_tags_exist() -> None:
    """No tag in the range: the message quotes the range and the newest versions there are."""
    error = missing(source("semver", ">=3.0.0"), "u", REMOTE.tags())
    assert str(error) == (
        "u: no tag matches semver range '>=3.0.0' (tags, newest first: v2.0.0-rc.1, v1.10.0, v1.9.0, v1.0.0)"
    )
    assert "no version tags" in str(missing(source("semver", "*"), "u", ["nightly"]))
    assert "has no branches" in str(missing(source("branch", "main"), "u", []))
