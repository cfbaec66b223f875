"""Push payloads of each host read into a Push; malformed ones refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.webhooks.payloads import PayloadError, parse_push
from tests.gitopsd.webhooks.payloads import ZERO, gitea_push, github_push, gitlab_push

SHA = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"


def test_github_push_gives_every_repository_url() -> None:
    """ref, after and clone/ssh/git/html URLs of a GitHub push."""
    body = github_push("refs/heads/main", SHA, clone_url="https://github.com/org/shop.git",
                       ssh_url="git@github.com:org/shop.git", html_url="https://github.com/org/shop")  # fmt: skip
    push = parse_push("github", body)
    assert (push.ref, push.after, push.deleted, push.branch, push.tag) == ("refs/heads/main", SHA, False, "main", None)
    assert push.repositories == (
        "https://github.com/org/shop.git",
        "git@github.com:org/shop.git",
        "git://github.com/org/shop.git",
        "https://github.com/org/shop",
    )


def test_gitlab_tag_push_reads_project_and_legacy_repository() -> None:
    """A Tag Push Hook: the tag, and project.git_http_url / git_ssh_url / web_url."""
    body = gitlab_push("refs/tags/v1.2.0", SHA, http_url="https://gl.example.com/g/shop.git",
                       ssh_url="git@gl.example.com:g/shop.git", web_url="https://gl.example.com/g/shop")  # fmt: skip
    push = parse_push("gitlab", body)
    assert push.tag == "v1.2.0" and push.branch is None
    assert push.repositories[:3] == (
        "https://gl.example.com/g/shop.git",
        "git@gl.example.com:g/shop.git",
        "https://gl.example.com/g/shop",
    )


def test_gitea_push() -> None:
    """Gitea's clone_url, ssh_url, html_url."""
    body = gitea_push(
        "refs/heads/develop",
        SHA,
        clone_url="https://gitea.example.com/org/shop.git",
        ssh_url="ssh://git@gitea.example.com:2222/org/shop.git",
        html_url="https://gitea.example.com/org/shop",
    )
    push = parse_push("gitea", body)
    assert push.branch == "develop" and len(push.repositories) == 3


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_an_all_zero_after_is_a_deletion_naming_no_commit(provider: str) -> None:
    """Deleted refs: deleted=True, after=None (nothing to deploy)."""
    builders: dict[str, Any] = {
        "github": lambda: github_push("refs/heads/gone", ZERO, clone_url="https://h/o/r.git", ssh_url="git@h:o/r",
                                      html_url="https://h/o/r", before=SHA),
        "gitlab": lambda: gitlab_push("refs/heads/gone", ZERO, http_url="https://h/o/r.git", ssh_url="git@h:o/r",
                                      web_url="https://h/o/r", before=SHA),
        "gitea": lambda: gitea_push("refs/heads/gone", ZERO, clone_url="https://h/o/r.git", ssh_url="git@h:o/r",
                                    html_url="https://h/o/r", before=SHA),
    }  # fmt: skip
    push = parse_push(provider, builders[provider]())  # type: ignore[arg-type]
    assert push.deleted and push.after is None and push.branch == "gone"


def test_generic_body() -> None:
    """repository + ref (+ after), as gitopsd notify sends."""
    push = parse_push("generic", {"event": "push", "repository": "git@h:o/r.git", "ref": "refs/tags/v1", "after": SHA})
    assert (push.repositories, push.tag, push.after) == (("git@h:o/r.git",), "v1", SHA)
    assert parse_push("generic", {"repository": "git@h:o/r.git", "ref": "refs/heads/x"}).after is None


@pytest.mark.parametrize(
    ("provider", "body", "field"),
    [
        ("generic", [], "the body must be a JSON object"),
        ("generic", "text", "the body must be a JSON object"),
        ("generic", {"ref": "refs/heads/main"}, "repository:"),
        ("generic", {"repository": 7, "ref": "refs/heads/main"}, "repository:"),
        ("generic", {"repository": "https://h/r", "ref": "main"}, "ref:"),
        ("generic", {"repository": "https://h/r"}, "ref:"),
        ("generic", {"repository": "https://h/r", "ref": "refs/heads/x", "after": "HEAD"}, "after:"),
        ("generic", {"repository": "https://h/r", "ref": "refs/heads/x", "after": SHA.upper()}, "after:"),
        ("github", {"ref": "refs/heads/main", "after": SHA}, "repository.clone_url"),
        ("github", {"ref": "refs/heads/main", "repository": {"name": "x"}}, "repository.clone_url"),
        ("gitlab", {"ref": "refs/heads/main", "project": {}}, "project.git_http_url or repository.git_http_url"),
        ("gitea", {"ref": 5, "repository": {"clone_url": "https://h/r"}}, "ref:"),
    ],
)
def test_malformed_pushes_name_the_field(provider: str, body: Any, field: str) -> None:
    """PayloadError (HTTP 400) naming what is missing or wrong."""
    with pytest.raises(PayloadError) as info:
        parse_push(provider, body)  # type: ignore[arg-type]
    assert str(info.value).startswith(field), str(info.value)
