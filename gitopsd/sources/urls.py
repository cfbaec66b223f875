"""Git URLs: which transport, what git is given, what names the mirror, what a message may show.

Several Environments name one repository in slightly different ways (``.git`` or not, a
trailing slash, upper-case host, the default port spelt out). They must share one mirror, so
each URL gets a normalised ``key``. Userinfo never reaches git's command line (``ps`` shows
it): a password in an https URL is taken out and sent like a secret's (see ``auth``), and
every text that may show a URL goes through :func:`redact`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal, cast

from gitopsd.sources.errors import InvalidSourceURL

Scheme = Literal["file", "http", "https", "ssh"]

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>(?!//).+)$")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*)(?P<password>:[^/@\s]*)?@")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}


def redact(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``.

    An ssh login without a password (``ssh://git@host``) is kept: it is an account name, and
    people look for it in messages. Elsewhere a lone user name may be a token.
    """

    def hide(match: re.Match[str]) -> str:
        if match["scheme"].lower() == "ssh://" and not match["password"]:
            return match[0]
        return f"{match['scheme']}***@"

    return _USERINFO.sub(hide, text)


@dataclass(frozen=True, slots=True)
class GitURL:
    """One repository URL, read once."""

    scheme: Scheme
    git_url: str  # what git is given: no password, no token
    key: str  # the same for every spelling of one repository
    host: str  # "" for file://
    port: int | None
    username: str | None = None  # https userinfo or the ssh login
    password: str | None = field(default=None, repr=False)  # https userinfo only

    def __str__(self) -> str:
        return self.git_url

    @property
    def origin(self) -> str:
        """``scheme://host[:port]/``: the prefix git's ``http.<url>.*`` settings are scoped to."""
        netloc = f"{self.host}:{self.port}" if self.port else self.host
        return f"{self.scheme}://{netloc}/"


def parse_url(url: str) -> GitURL:
    """Read a Git URL (``https://``, ``http://``, ``ssh://``, ``user@host:path``, ``file://``)."""
    text = url.strip()
    if not text:
        raise InvalidSourceURL("the Git URL is empty")
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if not scp:
            raise InvalidSourceURL(
                f"{redact(text)!r} is not a Git URL (https://, ssh://, user@host:path or file:///path)"
            )
        user, host, path = scp["user"], scp["host"].lower(), scp["path"]
        _refuse_option_like(text, host, user)
        # "host:path" is relative to the login's home, like ssh://host/~/path.
        key_path = path if path.startswith("/") else f"/~/{path}"
        key = f"ssh://{user + '@' if user else ''}{host}{_normal_path(key_path)}"
        return GitURL("ssh", text, key, host.strip("[]"), None, user)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidSourceURL(f"{redact(text)!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("file", "http", "https", "ssh"):
        raise InvalidSourceURL(f"{redact(text)!r}: Git URLs start with https://, http://, ssh:// or file://")
    if parts.query or parts.fragment:
        raise InvalidSourceURL(f"{redact(text)!r}: a Git URL has no query (?) or fragment (#)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidSourceURL(f"{text!r}: a file:// URL names a local path (file:///path)")
        if not parts.path.startswith("/"):
            raise InvalidSourceURL(f"{text!r}: a file:// URL needs an absolute path (file:///path)")
        # On disk "app" and "app.git" are two directories: only slashes are normalised.
        path = re.sub(r"/+", "/", urllib.parse.unquote(parts.path)).rstrip("/") or "/"
        return GitURL("file", f"file://{path}", f"file://{path}", "", None)
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidSourceURL(f"{redact(text)!r} names no host")
    _refuse_option_like(text, host, parts.username)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    host_text = f"[{host}]" if ":" in host else host
    netloc = f"{host_text}:{port}" if port else host_text
    path = parts.path or "/"
    if scheme == "ssh":
        # The ssh login is not a secret and selects the account; a password in it is ignored.
        login = f"{parts.username}@" if parts.username else ""
        git_url = urllib.parse.urlunsplit(("ssh", login + netloc, path, "", ""))
        key = f"ssh://{login}{netloc}{_normal_path(path)}"
        return GitURL("ssh", git_url, key, host, port, username)
    git_url = urllib.parse.urlunsplit((scheme, netloc, path, "", ""))
    key = f"{scheme}://{netloc}{_normal_path(path)}"
    return GitURL(cast(Scheme, scheme), git_url, key, host, port, username, password)


def _refuse_option_like(text: str, host: str, user: str | None) -> None:
    # ssh would read a host or login starting with "-" as an option (CVE-2017-1000117).
    if host.startswith("-") or (user or "").startswith("-"):
        raise InvalidSourceURL(f"{redact(text)!r}: a host or user name may not start with '-'")


def _normal_path(path: str) -> str:
    path = re.sub(r"/+", "/", path).rstrip("/")
    return path.removesuffix(".git") or "/"
