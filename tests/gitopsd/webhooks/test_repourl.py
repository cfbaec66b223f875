"""Repository identity: the spellings a host uses for one repository compare equal, different ones do not."""

from __future__ import annotations

import pytest

from gitopsd.webhooks.repourl import repository_identity

SAME = [
    "https://github.com/Org/Shop.git",
    "https://github.com/org/shop",
    "https://github.com/org/shop/",
    "http://github.com:80/org/shop",
    "https://user:token@github.com/org/shop.git",
    "git@github.com:org/shop.git",
    "github.com:org/shop",
    "ssh://git@github.com/org/shop.git",
    "ssh://git@github.com:2222/org/shop",
    "ssh://git@github.com/~/org/shop.git",
    "git://github.com/org/shop.git",
    "  https://GitHub.com//org//shop.git  ",
]


@pytest.mark.parametrize("url", SAME)
def test_spellings_of_one_repository_share_an_identity(url: str) -> None:
    """https, ssh, scp-like, git://, case, .git, slashes, ports and logins do not matter."""
    assert repository_identity(url) == "github.com/org/shop"


@pytest.mark.parametrize(
    "url",
    ["https://github.com/org/shop-api", "https://gitlab.com/org/shop", "git@github.com:other/shop.git",
     "https://github.com/org/shop/sub"],
)  # fmt: skip
def test_other_repositories_differ(url: str) -> None:
    """Another path, host or owner is another repository."""
    assert repository_identity(url) != "github.com/org/shop"


def test_subgroups_and_ipv6_hosts() -> None:
    """GitLab subgroups keep their depth; an IPv6 scp-like host is read."""
    assert repository_identity("git@gitlab.example.com:group/sub/app.git") == "gitlab.example.com/group/sub/app"
    assert repository_identity("https://gitlab.example.com/group/sub/app") == "gitlab.example.com/group/sub/app"
    assert repository_identity("git@[::1]:org/app.git") == "::1/org/app"
    assert repository_identity("ssh://git@[::1]:2222/org/app.git") == "::1/org/app"


def test_file_urls_keep_their_exact_path() -> None:
    """On disk app and app.git are two directories: only slashes are normalised."""
    assert repository_identity("file:///srv/git//shop.git/") == "file:///srv/git/shop.git"
    assert repository_identity("file:///srv/git/shop") != repository_identity("file:///srv/git/shop.git")


@pytest.mark.parametrize("url", ["", "   ", "not a url", "https://", "https://host", "https://host/", "file://"])
def test_non_urls_have_no_identity(url: str) -> None:
    """Nothing to compare: None, so nothing matches."""
    assert repository_identity(url) is None
