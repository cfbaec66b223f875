"""One name per repository, however a push payload or an Environment spells its URL.

A Git host sends several URLs for one repository (``https://host/org/app``, ``.git`` clone
URL, ``git@host:org/app.git``, ``ssh://git@host:2222/org/app.git``) and an Environment names
one of them, perhaps another. Hosts serve the same repository on all of them, so the identity
is the host and the path only: no scheme, login, port, ``.git`` suffix, trailing slash or
``~/`` (scp-like paths are relative to the login's home, which is how GitHub, GitLab and
Gitea serve ``org/app``), and lower-case, since those hosts treat names case-insensitively.
Two different repositories that only differ in case on one host would both be triggered:
a spare reconcile, never a missed one.

``file://`` URLs keep their exact path (on disk ``app`` and ``app.git`` are two directories).
"""

from __future__ import annotations

import re
import urllib.parse

_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>(?!//).+)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def repository_identity(url: str) -> str | None:
    """``host/path`` naming the repository ``url`` points at; None when ``url`` is not a URL."""
    text = url.strip()
    if not text:
        return None
    if not _SCHEME.match(text):
        scp = _SCP_LIKE.match(text)
        if not scp:
            return None
        return _identity(scp["host"].strip("[]"), scp["path"])
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme.lower() == "file":
        path = re.sub(r"/+", "/", urllib.parse.unquote(parts.path)).rstrip("/")
        return f"file://{path}" if path else None
    if not host:
        return None
    return _identity(host, urllib.parse.unquote(parts.path))


def _identity(host: str, path: str) -> str | None:
    path = re.sub(r"/+", "/", path).strip("/")
    path = path.removeprefix("~/").removesuffix(".git").strip("/")
    if not path:
        return None
    return f"{host.lower()}/{path.lower()}"
