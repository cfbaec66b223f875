"""Bad input: Git sources (URL forms, userinfo, file:// paths, credentials and Secrets).

Each case goes through what the daemon does with an Environment's source (``GitSource.resolve``
then ``GitSources``) and must fail with its exact error before git runs: no ``ls-remote``, no
fetch, no mirror on disk, and (where a URL holds one) no password in the message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from gitopsd.desired import Desired
from gitopsd.errors import GitopsdError, SpecError
from gitopsd.gitsource import FILE_SOURCES_OFF, GitSource
from gitopsd.sources import (
    Credentials,
    GitSources,
    InvalidCredentials,
    InvalidSourceURL,
    SourceNotAllowed,
)
from gitopsd.spec import Environment, parse_environment
from gitopsd.tenancy import Tenancy
from tests.fakes import FakeKube

SECRET = "s3cret-b7"  # in every password below: never in a message
ENCODE = "percent-encode '/', '?', '#' and '@' in a user name or password (%2F, %3F, %23, %40)"
HTTP_REFUSED = "refusing to send credentials over plain http to git.example.com; use https"

#: (case, URL, secret data or None, error type, exact message)
URL_CASES: list[tuple[str, str, Mapping[str, bytes] | None, type[GitopsdError], str]] = [
    (
        "password with an unencoded slash",
        f"https://deploy:pa/{SECRET}@git.example.com/shop.git",
        None,
        InvalidSourceURL,
        f"'https://***@git.example.com/shop.git': '@' after the host: {ENCODE}",
    ),
    (
        "password with an unencoded hash",
        f"https://deploy:pa#{SECRET}@git.example.com/shop.git",
        None,
        InvalidSourceURL,
        f"'https://***@git.example.com/shop.git': '@' after the host: {ENCODE}",
    ),
    (
        "password with unencoded @ and a bad port",
        f"https://deploy:p@{SECRET}@git.example.com:99999/shop.git",
        None,
        InvalidSourceURL,
        "'https://***@git.example.com:99999/shop.git' is not a valid URL: the port is not a number from 1 to 65535",
    ),
    (
        "password in an http URL",
        f"http://deploy:{SECRET}@git.example.com/shop.git",
        None,
        InvalidSourceURL,
        f"spec.source.url 'http://***@git.example.com/shop.git': {HTTP_REFUSED}",
    ),
    (
        "password in an scp-like URL",
        f"deploy:{SECRET}@git.example.com:shop.git",
        None,
        SpecError,
        "spec.source.url: '***@git.example.com:shop.git' is not a Git URL (https://, ssh://, git@host:path or file://)",
    ),
    (
        "space in the password",
        f"https://deploy:pa {SECRET}@git.example.com/shop.git",
        None,
        InvalidSourceURL,
        "'https://***@git.example.com/shop.git': a Git URL has no spaces or control characters "
        "(percent-encode them: a space is %20)",
    ),
    (
        "token in the query",
        f"https://git.example.com/shop.git?private_token={SECRET}",
        None,
        InvalidSourceURL,
        "'https://git.example.com/shop.git': a Git URL has no query (?) or fragment (#)",
    ),
    (
        "unknown scheme with a password",
        f"ftp://deploy:{SECRET}@git.example.com/shop.git",
        None,
        SpecError,
        "spec.source.url: 'ftp://***@git.example.com/shop.git' is not a Git URL "
        "(https://, ssh://, git@host:path or file://)",
    ),
    (
        "ssh login that is an option",
        "ssh://-oProxyCommand=touch%20x@git.example.com/shop.git",
        None,
        InvalidSourceURL,
        "'ssh://-oProxyCommand=touch%20x@git.example.com/shop.git': a host or user name may not start with '-'",
    ),
    (
        "file:// with a host and userinfo",
        f"file://deploy:{SECRET}@fileserver/srv/shop.git",
        None,
        InvalidSourceURL,
        "'file://***@fileserver/srv/shop.git': a file:// URL names a local path (file:///path)",
    ),
    (
        "file:// climbing with ..",
        "file:///srv/git/../../etc/shop.git",
        None,
        InvalidSourceURL,
        "'file:///srv/git/../../etc/shop.git': a file:// path may not contain '..'",
    ),
    (
        "file:// climbing with encoded ..",
        "file:///srv/git/%2e%2e/shop.git",
        None,
        InvalidSourceURL,
        "'file:///srv/git/%2e%2e/shop.git': a file:// path may not contain '..'",
    ),
    (
        "file:// with a NUL",
        "file:///srv/git/shop.git%00.txt",
        None,
        InvalidSourceURL,
        "'file:///srv/git/shop.git%00.txt': a file:// path may not contain NUL (%00)",
    ),
    (
        "secret password over http",
        "http://git.example.com/shop.git",
        {"username": b"deploy", "password": SECRET.encode()},
        InvalidCredentials,
        f"secret 'ops/git': {HTTP_REFUSED}",
    ),
    (
        "secret bearer token over http",
        "http://git.example.com/shop.git",
        {"bearerToken": SECRET.encode()},
        InvalidCredentials,
        f"secret 'ops/git': {HTTP_REFUSED}",
    ),
    (
        "secret with no key git credentials use",
        "https://git.example.com/shop.git",
        {"token": SECRET.encode()},
        InvalidCredentials,
        "secret 'ops/git' has none of the keys git credentials use "
        "(username/password, bearerToken, identity/known_hosts, ca.crt)",
    ),
    (
        "secret with a token and a user name",
        "https://git.example.com/shop.git",
        {"bearerToken": SECRET.encode(), "username": b"deploy"},
        InvalidCredentials,
        "secret 'ops/git': give either 'bearerToken' or 'username'/'password', not both "
        "(found 'bearerToken' and 'username')",
    ),
    (
        "secret with a user name only",
        "https://git.example.com/shop.git",
        {"username": b"deploy"},
        InvalidCredentials,
        "secret 'ops/git': key 'password' is required with 'username'",
    ),
    (
        "secret password not UTF-8",
        "https://git.example.com/shop.git",
        {"username": b"deploy", "password": b"\xff\xfe" + SECRET.encode()},
        InvalidCredentials,
        "secret 'ops/git': key 'password' is not UTF-8 text",
    ),
    (
        "secret password of two lines",
        "https://git.example.com/shop.git",
        {"username": b"deploy", "password": SECRET.encode() + b"\nsecond"},
        InvalidCredentials,
        "secret 'ops/git': key 'password' must be one line",
    ),
    (
        "secret ca.crt not a certificate",
        "https://git.example.com/shop.git",
        {"ca.crt": b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"},
        InvalidCredentials,
        "secret 'ops/git': key 'ca.crt' is not a PEM certificate",
    ),
    (
        "secret password for an ssh URL",
        "ssh://git@git.example.com/shop.git",
        {"username": b"deploy", "password": SECRET.encode()},
        InvalidCredentials,
        "secret 'ops/git' gives 'username'/'password' for an ssh URL; ssh needs 'identity' and 'known_hosts'",
    ),
    (
        "secret password for a file:// URL",
        "file:///srv/git/shop.git",
        {"username": b"deploy", "password": SECRET.encode()},
        InvalidCredentials,
        "secret 'ops/git' gives credentials for a file:// URL, which takes none",
    ),
    (
        "ssh URL without a secret",
        "git@git.example.com:shop.git",
        None,
        InvalidCredentials,
        "git@git.example.com:shop.git: ssh URLs need spec.source.secretRef naming a secret with keys 'identity' "
        "and 'known_hosts' (the server's host key is never trusted on first use)",
    ),
]


def _environment(url: str, secret: bool) -> Environment:
    source: dict[str, Any] = {"url": url, "branch": "main", "path": "deploy"}
    if secret:
        source["secretRef"] = {"name": "git"}
    return parse_environment(
        {
            "apiVersion": "gitopsd.dev/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": "web", "namespace": "ops", "uid": "u1"},
            "spec": {"source": source, "targetNamespace": "app"},
        }
    )


class _Secrets:
    """The daemon's secret reader, holding one Secret's data."""

    def __init__(self, data: Mapping[str, bytes]) -> None:
        self.data = data

    async def read(self, namespace: str, name: str, *, where: str) -> Mapping[str, bytes]:
        return self.data


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[GitSources]:
    git_sources = GitSources(tmp_path / "cache", timeout=5)
    yield git_sources
    await git_sources.close()


def _source(sources: GitSources, tenancy: Tenancy, secret: Mapping[str, bytes] | None = None) -> GitSource:
    desired = Desired(cast(Any, FakeKube()), sources)
    secrets = cast(Any, _Secrets(secret)) if secret is not None else None
    return GitSource(cast(Any, FakeKube()), sources, desired, secrets=secrets, tenancy=tenancy)


def _nothing_read(sources: GitSources) -> None:
    stats = sources.stats()
    assert (stats.ls_remotes, stats.fetches, stats.mirrors, stats.live_processes) == (0, 0, 0, 0)
    assert not (sources.cache_dir / "mirrors").exists()


@pytest.mark.parametrize(
    ("url", "secret", "error", "message"), [case[1:] for case in URL_CASES], ids=[case[0] for case in URL_CASES]
)
async def test_bad_source_is_refused_before_git_runs(
    sources: GitSources,
    url: str,
    secret: Mapping[str, bytes] | None,
    error: type[GitopsdError],
    message: str,
) -> None:
    """The exact error (the spec's, or the source's at resolve), no password in it, nothing asked of a remote."""
    source = _source(sources, Tenancy(allow_file_sources=True), secret)
    with pytest.raises(error) as info:
        await source.resolve(_environment(url, secret is not None), fresh=True)
    assert str(info.value) == message
    assert SECRET not in str(info.value)
    assert not info.value.transient  # Stalled, not retried
    _nothing_read(sources)


@pytest.mark.parametrize("url", ["file:///srv/git/shop.git", "file://localhost/srv/git/shop.git", "file:///"])
async def test_file_source_on_a_daemon_without_the_flag(sources: GitSources, url: str) -> None:
    """Without --allow-file-sources every file:// spelling is SourceNotAllowed, naming the flag."""
    with pytest.raises(SourceNotAllowed) as info:
        await _source(sources, Tenancy()).resolve(_environment(url, False), fresh=True)
    assert str(info.value) == FILE_SOURCES_OFF
    assert info.value.reason == "SourceNotAllowed"
    _nothing_read(sources)


@pytest.mark.parametrize("where", ["mirrors/shop-0123456789abcdef.git", "mirrors/shop-0123456789abcdef", "", "run-1"])
async def test_file_source_into_the_cache_even_with_the_flag(sources: GitSources, where: str) -> None:
    """A path inside the daemon's cache (mirrors of other teams' repositories) is refused with the flag on too."""
    path = sources.cache_dir / where if where else sources.cache_dir
    url = f"file://{path}"
    with pytest.raises(SourceNotAllowed) as info:
        await _source(sources, Tenancy(allow_file_sources=True)).resolve(_environment(url, False), fresh=True)
    shown = url.rstrip("/")
    assert str(info.value) == (
        f"{shown}: a file:// source may not point into gitopsd's cache directory ({sources.cache_dir}), "
        "which holds the mirrors of other Environments' repositories"
    )
    _nothing_read(sources)


async def test_file_source_through_a_link_into_the_cache(sources: GitSources, tmp_path: Path) -> None:
    """A symbolic link elsewhere pointing into the cache is followed, as git would, and refused."""
    (sources.cache_dir / "mirrors").mkdir()
    link = tmp_path / "looks-innocent.git"
    link.symlink_to(sources.cache_dir / "mirrors")
    with pytest.raises(SourceNotAllowed, match="may not point into gitopsd's cache directory"):
        await _source(sources, Tenancy(allow_file_sources=True)).resolve(
            _environment(f"file://{link}", False), fresh=True
        )
    assert sources.stats().ls_remotes == 0


def test_credentials_never_show_their_values() -> None:
    """The parsed Secret shows none of its values in repr (the object lands in logs of errors)."""
    creds = Credentials.from_secret({"username": b"deploy", "password": SECRET.encode()}, "ops/git")
    assert SECRET not in repr(creds)
