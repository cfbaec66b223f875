"""Push events out of each Git host's webhook body: which repository, which ref, which commit.

Only the fields a push needs are read, the way each host documents them:

- GitHub ``push`` (``X-GitHub-Event: push``): ``ref``, ``after``, ``deleted``, and
  ``repository.{clone_url, ssh_url, git_url, html_url, url}``; ``ping`` on hook creation.
- GitLab ``Push Hook`` / ``Tag Push Hook`` (and a system hook's ``push`` / ``tag_push``):
  ``ref``, ``after``, ``project.{git_http_url, git_ssh_url, web_url}`` and the older
  ``repository.{url, homepage, git_http_url, git_ssh_url}``.
- Gitea ``push`` (``X-Gitea-Event``): ``ref``, ``after``, ``repository.{clone_url, ssh_url, html_url}``.
- generic (``gitopsd notify``): ``{"repository": URL, "ref": "refs/heads/main", "after": SHA}``;
  ``{"event": "ping"}`` checks the secret and the route.

A deleted ref arrives as a push whose ``after`` is all zeros; it is reported as ``deleted``
and never names a commit to deploy. Anything malformed raises :class:`PayloadError` naming
the field (HTTP 400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.webhooks.signatures import Provider

HEADS, TAGS = "refs/heads/", "refs/tags/"
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories
_ZERO = re.compile(r"^0+$")
_URL_FIELDS: Mapping[Provider, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "github": (("repository", ("clone_url", "ssh_url", "git_url", "html_url", "url", "svn_url")),),
    "gitlab": (
        ("project", ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url", "url")),
        ("repository", ("git_http_url", "git_ssh_url", "url", "homepage")),
    ),
    "gitea": (("repository", ("clone_url", "ssh_url", "html_url")),),
}


class PayloadError(ValueError):
    """The body is JSON but not a push we can read (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Push:
    repositories: tuple[str, ...]  # every URL the host gave for the repository
    ref: str  # the full ref name: refs/heads/main, refs/tags/v1.2.0
    after: str | None  # the commit the ref points to now; None when deleted or not sent
    deleted: bool = False

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix(HEADS) if self.ref.startswith(HEADS) else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix(TAGS) if self.ref.startswith(TAGS) else None


def parse_push(provider: Provider, body: Any) -> Push:
    """The push ``body`` (decoded JSON) describes; :class:`PayloadError` names what is missing."""
    if not isinstance(body, Mapping):
        raise PayloadError(f"the body must be a JSON object (got {type(body).__name__})")
    if provider == "generic":
        url = body.get("repository")
        if not isinstance(url, str) or not url.strip():
            raise PayloadError("repository: required, the repository URL (string)")
        urls: tuple[str, ...] = (url.strip(),)
    else:
        urls = _urls(provider, body)
    ref = body.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise PayloadError(f"ref: expected a full ref name such as refs/heads/main (got {_show(ref)})")
    after = body.get("after")
    if after is not None and (not isinstance(after, str) or not _SHA.match(after)):
        raise PayloadError(f"after: expected a commit id of 40 (or 64) lowercase hex digits (got {_show(after)})")
    deleted = (after is not None and bool(_ZERO.match(after))) or body.get("deleted") is True
    return Push(urls, ref, None if deleted else after, deleted)


def _urls(provider: Provider, body: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for section, keys in _URL_FIELDS[provider]:
        obj = body.get(section)
        if not isinstance(obj, Mapping):
            continue
        found += [obj[k].strip() for k in keys if isinstance(obj.get(k), str) and obj[k].strip()]
    if not found:
        names = " or ".join(f"{section}.{keys[0]}" for section, keys in _URL_FIELDS[provider])
        raise PayloadError(f"{names}: required, the repository's URL")
    return tuple(dict.fromkeys(found))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
