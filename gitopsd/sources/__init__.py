"""The Git source port: resolve a source's ref to a commit, read that commit's files.

Everything the rest of gitopsd needs comes from here::

    sources = GitSources(cache_dir)
    creds = Credentials.from_secret(secret_data, "git-credentials")   # or None
    revision = await sources.resolve(spec.source, creds, max_age=5)   # ls-remote, no fetch
    tree = await sources.tree(spec.source, creds, revision)            # fetch only if missing
    files = await asyncio.to_thread(tree.files, spec.source.path)
    await sources.close()

``LocalTree(path)`` is the same ``model.Tree`` over a plain directory. Failures are
``SourceError`` subclasses (``sources.errors``) whose ``reason`` is the condition reason.
"""

from gitopsd.sources.credentials import Credentials
from gitopsd.sources.errors import (
    GitAuthenticationFailed,
    GitHostKeyChanged,
    GitHostKeyUnknown,
    GitRepositoryNotFound,
    GitTimeout,
    GitTLSFailed,
    GitUnreachable,
    InvalidCredentials,
    InvalidSourceURL,
    PathNotFound,
    RefNotFound,
    SourceError,
    SourceNotAllowed,
)
from gitopsd.sources.git import GitSources, SourceStats
from gitopsd.sources.tree import GitTree, LocalTree
from gitopsd.sources.urls import parse_url, redact, redact_url

__all__ = [
    "Credentials",
    "GitAuthenticationFailed",
    "GitHostKeyChanged",
    "GitHostKeyUnknown",
    "GitRepositoryNotFound",
    "GitSources",
    "GitTLSFailed",
    "GitTimeout",
    "GitTree",
    "GitUnreachable",
    "InvalidCredentials",
    "InvalidSourceURL",
    "LocalTree",
    "PathNotFound",
    "RefNotFound",
    "SourceError",
    "SourceNotAllowed",
    "SourceStats",
    "parse_url",
    "redact",
    "redact_url",
]
