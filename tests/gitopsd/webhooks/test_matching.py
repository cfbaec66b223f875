"""Which Environments a push triggers: repository identity plus branch, exact tag or semver range."""

from __future__ import annotations

from gitopsd.spec import SourceSpec
from gitopsd.webhooks.matching import follows, match
from gitopsd.webhooks.payloads import Push

REPO = "https://git.example.com/org/shop.git"
ENVS = [
    ("ops/dev", SourceSpec("git@git.example.com:org/shop.git", "branch", "develop", "deploy")),
    ("ops/staging", SourceSpec(REPO, "branch", "main", "deploy")),
    ("ops/prod", SourceSpec("ssh://git@git.example.com:2222/org/shop", "semver", ">=1.0.0 <2.0.0", "")),
    ("ops/pinned-tag", SourceSpec(REPO, "tag", "v1.2.0", "")),
    ("ops/pinned", SourceSpec(REPO, "commit", "3f2c9a1", "")),
    ("other/staging", SourceSpec("https://git.example.com/org/other.git", "branch", "main", "")),
]


def _push(ref: str, *, deleted: bool = False, url: str = "https://git.example.com/org/shop") -> Push:
    return Push((url,), ref, None if deleted else "a" * 40, deleted)


def test_branch_push_triggers_that_branch_in_that_repository_only() -> None:
    """main of shop: staging of shop, not other's main, not dev or prod."""
    assert match(_push("refs/heads/main"), ENVS).triggered == ("ops/staging",)
    assert match(_push("refs/heads/develop", url="git@git.example.com:org/shop"), ENVS).triggered == ("ops/dev",)


def test_tag_push_triggers_exact_tags_and_ranges_that_hold_it() -> None:
    """v1.2.0: the pinned tag and the range; v2.0.0 and v1.3.0-rc.1 are outside the range."""
    assert match(_push("refs/tags/v1.2.0"), ENVS).triggered == ("ops/pinned-tag", "ops/prod")
    assert match(_push("refs/tags/v1.5.0"), ENVS).triggered == ("ops/prod",)
    assert match(_push("refs/tags/v2.0.0"), ENVS).triggered == ()
    assert match(_push("refs/tags/v1.3.0-rc.1"), ENVS).triggered == ()
    assert match(_push("refs/tags/not-a-version"), ENVS).triggered == ()


def test_deleted_refs_trigger_their_followers() -> None:
    """A deleted branch or in-range tag triggers the Environments that follow it (they re-resolve)."""
    assert match(_push("refs/heads/main", deleted=True), ENVS).triggered == ("ops/staging",)
    assert match(_push("refs/tags/v1.5.0", deleted=True), ENVS).triggered == ("ops/prod",)


def test_unknown_repository_and_unfollowed_refs() -> None:
    """No Environment reads the repository: repository_known False; a ref nobody follows: known, none triggered."""
    unknown = match(_push("refs/heads/main", url="https://git.example.com/org/nope"), ENVS)
    assert unknown.triggered == () and not unknown.repository_known
    for ref in ("refs/heads/feature", "refs/pull/7/head", "refs/notes/commits", "refs/heads/"):
        found = match(_push(ref), ENVS)
        assert found.triggered == () and found.repository_known, ref


def test_pinned_commits_never_follow_pushes() -> None:
    """A commit Environment does not move, whatever is pushed."""
    pinned = ENVS[4][1]
    assert not follows(pinned, _push("refs/heads/main")) and not follows(pinned, _push("refs/tags/v1.0.0"))
