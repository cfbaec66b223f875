"""What can go wrong reading a Git source, as errors whose ``reason`` becomes a condition reason.

Messages name the repository (credentials redacted), the ref or path, and the secret and key
when the secret is at fault. They never carry a password, token, key or URL userinfo: git's
own output is scrubbed before it is quoted (see ``gitcmd``)::

    SourceError                   GitOperationFailed  (git failed in a way not listed below)
    ├── InvalidSourceURL          InvalidSourceURL    the URL cannot be used
    ├── InvalidCredentials        InvalidCredentials  the secret's keys do not fit together or the URL
    ├── SourceNotAllowed          SourceNotAllowed    this daemon does not read that source (file://, its own cache)
    ├── GitUnreachable            GitUnreachable      no connection (refused, no route, DNS)
    ├── GitTimeout                GitTimeout          a git call outlived its timeout and was killed
    ├── GitTLSFailed              GitTLSFailed        the server's certificate is not trusted
    ├── GitAuthenticationFailed   GitAuthenticationFailed  the server refused (or needed) credentials
    ├── GitHostKeyUnknown         GitHostKeyUnknown   ssh: the host key is not in known_hosts
    ├── GitHostKeyChanged         GitHostKeyChanged   ssh: known_hosts has another key for the host
    ├── GitRepositoryNotFound     GitRepositoryNotFound  the server has no such repository
    ├── RefNotFound               RefNotFound         no such branch / tag / commit, no tag in range
    └── PathNotFound              PathNotFound        no such directory at that revision (also a FileNotFoundError)
"""

from __future__ import annotations

from gitopsd.errors import GitopsdError


class SourceError(GitopsdError):
    """Reading a Git source failed."""

    reason = "GitOperationFailed"
    transient = True  # git failed in a way not recognised below: worth another try


class InvalidSourceURL(SourceError):
    reason = "InvalidSourceURL"
    transient = False


class InvalidCredentials(SourceError):
    reason = "InvalidCredentials"
    transient = False


class SourceNotAllowed(SourceError):
    """The source is one this daemon refuses to read: a ``file://`` URL without
    ``--allow-file-sources``, or a path inside the daemon's own cache (other Environments' mirrors)."""

    reason = "SourceNotAllowed"
    transient = False


class GitUnreachable(SourceError):
    reason = "GitUnreachable"


class GitTimeout(SourceError):
    reason = "GitTimeout"


class GitTLSFailed(SourceError):
    reason = "GitTLSFailed"
    transient = False


class GitAuthenticationFailed(SourceError):
    reason = "GitAuthenticationFailed"
    transient = False


class GitHostKeyUnknown(SourceError):
    reason = "GitHostKeyUnknown"
    transient = False


class GitHostKeyChanged(SourceError):
    reason = "GitHostKeyChanged"
    transient = False


class GitRepositoryNotFound(SourceError):
    reason = "GitRepositoryNotFound"
    transient = False


class RefNotFound(SourceError):
    reason = "RefNotFound"
    transient = False


class PathNotFound(SourceError, FileNotFoundError):
    """Also a ``FileNotFoundError``, which is what ``model.Tree.files`` promises its callers."""

    reason = "PathNotFound"
    transient = False

    def __init__(self, message: str) -> None:
        SourceError.__init__(self, message)

    def __str__(self) -> str:
        # OSError formats its own args; keep the message as given.
        return str(self.args[0]) if self.args else ""
