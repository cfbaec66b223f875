"""Git URLs: which transport, what git is given, what names the mirror, what a message may show.

Several Environments name one repository in slightly different ways (``.git`` or not, a
trailing slash, upper-case host, the default port spelt out). They must share one mirror, so
each URL gets a normalised ``key``. Userinfo never reaches git's command line (``ps`` shows
it): a password in an https URL is taken out and sent like a secret's (see ``auth``); in an
http URL it is refused, as a secret's is. Every text that may show a URL goes through
:func:`redact` (URLs inside free text) or :func:`redact_url` (one URL, however malformed).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal, cast

from gitopsd.sources.errors import InvalidSourceURL

Scheme = Literal["file", "http", "https", "ssh"]

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>(?!//).+)$")
# In free text a URL ends at whitespace or a quote. Its userinfo runs to the LAST "@" of that
# token (a password may hold "@" or "/" unencoded), never into a following "scheme://".
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>(?:(?!://)[^\s'\"<>`])*)@")
_SSH_LOGIN = re.compile(r"[^:/@\s]*")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


def redact(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``.

    Everything from ``scheme://`` to the last ``@`` of the URL is hidden, so a password holding
    ``@``, ``/`` or ``:`` unencoded shows no piece of itself (``https://u:p@ss@h`` is
    ``https://***@h``). An ssh login without a password (``ssh://git@host``) is kept: it is an
    account name, and people look for it in messages. Elsewhere a lone user name may be a token.
    """

    def hide(match: re.Match[str]) -> str:
        if match["scheme"].lower() == "ssh://" and _SSH_LOGIN.fullmatch(match["userinfo"]):
            return match[0]
        return f"{match['scheme']}***@"

    return _USERINFO.sub(hide, text)


def redact_url(url: str) -> str:
    """One URL as a message may show it, however malformed (spaces, quotes, scp-like ``user:pw@host:path``).

    Unlike :func:`redact`, which finds URLs in free text, this knows the whole string is the URL:
    everything before its last ``@`` is userinfo, except a plain login (``git@host:repo``,
    ``ssh://git@host/repo``), which is kept.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" not in rest:
        return url
    userinfo, _, after = rest.rpartition("@")
    plain_login = (not sep or scheme.lower() == "ssh") and _SSH_LOGIN.fullmatch(userinfo)
    if plain_login:
        return url
    return f"{scheme}{sep}***@{after}"


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
    shown = repr(redact_url(text))
    if _UNSAFE_CHARS.search(text):
        raise InvalidSourceURL(
            f"{shown}: a Git URL has no spaces or control characters (percent-encode them: a space is %20)"
        )
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if not scp:
            raise InvalidSourceURL(f"{shown} is not a Git URL (https://, ssh://, user@host:path or file:///path)")
        user, host, path = scp["user"], scp["host"].lower(), scp["path"]
        if user and ":" in user:
            raise InvalidSourceURL(
                f"{shown}: a password in user@host:path is never used (ssh signs in with the key of "
                "spec.source.secretRef); remove it"
            )
        _refuse_option_like(shown, host, user)
        # "host:path" is relative to the login's home, like ssh://host/~/path.
        key_path = path if path.startswith("/") else f"/~/{path}"
        key = f"ssh://{user + '@' if user else ''}{host}{_normal_path(key_path)}"
        return GitURL("ssh", text, key, host.strip("[]"), None, user)
    # The authority ends at the first "/", "?" or "#": an "@" after it means a user name or
    # password holding one of those unencoded, which would be read as path and leak in messages.
    rest = text.partition("://")[2]
    authority = re.match(r"[^/?#]*", rest)
    if authority is not None and "@" in rest[authority.end() :]:
        raise InvalidSourceURL(
            f"{shown}: '@' after the host: percent-encode '/', '?', '#' and '@' in a user name or "
            "password (%2F, %3F, %23, %40)"
        )
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        problem = "the port is not a number from 1 to 65535" if "port" in str(exc).lower() else "it cannot be read"
        raise InvalidSourceURL(f"{shown} is not a valid URL: {problem}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("file", "http", "https", "ssh"):
        raise InvalidSourceURL(f"{shown}: Git URLs start with https://, http://, ssh:// or file://")
    if parts.query or parts.fragment:
        # Shown without them: a query is where tokens go (?private_token=...).
        bare = repr(redact_url(re.split(r"[?#]", text, maxsplit=1)[0]))
        raise InvalidSourceURL(f"{bare}: a Git URL has no query (?) or fragment (#)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidSourceURL(f"{shown}: a file:// URL names a local path (file:///path)")
        if not parts.path.startswith("/"):
            raise InvalidSourceURL(f"{shown}: a file:// URL needs an absolute path (file:///path)")
        raw_path = urllib.parse.unquote(parts.path)
        if ".." in raw_path.split("/"):
            raise InvalidSourceURL(f"{shown}: a file:// path may not contain '..'")
        if "\0" in raw_path:
            raise InvalidSourceURL(f"{shown}: a file:// path may not contain NUL (%00)")
        # On disk "app" and "app.git" are two directories: only slashes are normalised.
        path = re.sub(r"/+", "/", raw_path).rstrip("/") or "/"
        return GitURL("file", f"file://{path}", f"file://{path}", "", None)
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidSourceURL(f"{shown} names no host")
    _refuse_option_like(shown, host, parts.username)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if scheme == "http" and password:
        # The same refusal as for a secret's password over http (credentials.check_for).
        raise InvalidSourceURL(
            f"spec.source.url {shown}: refusing to send credentials over plain http to {host}; use https"
        )
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


def _refuse_option_like(shown: str, host: str, user: str | None) -> None:
    # ssh would read a host or login starting with "-" as an option (CVE-2017-1000117).
    if host.startswith("-") or (user or "").startswith("-"):
        raise InvalidSourceURL(f"{shown}: a host or user name may not start with '-'")


def _normal_path(path: str) -> str:
    path = re.sub(r"/+", "/", path).rstrip("/")
    return path.removesuffix(".git") or "/"
