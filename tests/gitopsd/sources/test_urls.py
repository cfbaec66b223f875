"""Git URLs: transports, one mirror key per repository however it is spelt, nothing secret shown."""

from __future__ import annotations

import pytest

from gitopsd.sources import InvalidSourceURL, parse_url, redact, redact_url


@pytest.mark.parametrize(
    ("url", "scheme", "git_url"),
    [
        ("https://git.example.com/shop.git", "https", "https://git.example.com/shop.git"),
        ("https://user:s3cret@git.example.com:8443/shop.git", "https", "https://git.example.com:8443/shop.git"),
        ("http://git.example.com/shop", "http", "http://git.example.com/shop"),
        ("ssh://git@git.example.com:2222/srv/shop.git", "ssh", "ssh://git@git.example.com:2222/srv/shop.git"),
        ("git@github.com:org/shop.git", "ssh", "git@github.com:org/shop.git"),
        ("file:///srv/git/shop.git", "file", "file:///srv/git/shop.git"),
        ("file:///srv//git/shop/", "file", "file:///srv/git/shop"),
    ],
)
def test_transports(url: str, scheme: str, git_url: str) -> None:
    """Each transport is recognised, and git is given the URL without any password."""
    parsed = parse_url(url)
    assert parsed.scheme == scheme
    assert parsed.git_url == git_url


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://git.example.com/shop.git", "https://GIT.example.com/shop"),
        ("https://git.example.com/shop.git", "https://git.example.com:443/shop.git/"),
        ("https://git.example.com/shop.git", "https://token@git.example.com/shop.git"),
        ("ssh://git@host/srv/shop.git", "ssh://git@host:22/srv/shop"),
        ("git@host:shop.git", "ssh://git@host/~/shop.git"),
        ("git@host:/srv/shop.git", "ssh://git@host/srv/shop.git"),
        ("file:///srv/shop.git", "file:///srv//shop.git/"),
    ],
)
def test_spellings_of_one_repository_share_a_key(a: str, b: str) -> None:
    """Spellings of one repository map to one mirror key."""
    assert parse_url(a).key == parse_url(b).key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://host/a.git", "https://host/b.git"),
        ("https://host/a.git", "https://host:8443/a.git"),
        ("https://host/a.git", "http://host/a.git"),
        ("ssh://git@host/a.git", "ssh://deploy@host/a.git"),
        ("file:///srv/a", "file:///srv/a.git"),  # two directories on disk
    ],
)
def test_different_repositories_have_different_keys(a: str, b: str) -> None:
    """Different repositories (or accounts) never share a mirror."""
    assert parse_url(a).key != parse_url(b).key


def test_userinfo_becomes_credentials_not_command_line() -> None:
    """A password in an https URL is kept aside for the auth header, and the origin scopes it."""
    parsed = parse_url("https://bot:p%40ss@git.example.com:8443/shop.git")
    assert (parsed.username, parsed.password) == ("bot", "p@ss")
    assert "p@ss" not in parsed.git_url and "p%40ss" not in parsed.git_url
    assert parsed.origin == "https://git.example.com:8443/"
    assert "p@ss" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("", "empty"),
        ("ftp://host/x.git", "start with https://"),
        ("https:///x.git", "names no host"),
        ("https://host/x.git?ref=main", "no query"),
        ("file://server/x.git", "local path"),
        ("just-a-name", "not a Git URL"),
        ("-oProxyCommand=evil:x", "not a Git URL"),
        ("-oProxy:x", "may not start with '-'"),
        ("ssh://-oProxyCommand=x@host/x.git", "may not start with '-'"),
        ("https://user:hunter2@host:99999/x.git", "not a valid URL"),
        ("https://user:hun/ter2@host/x.git", "'@' after the host"),
        ("http://user:hunter2@host/x.git", "refusing to send credentials over plain http"),
        ("user:hunter2@host:x.git", "a password in user@host:path is never used"),
        ("https://host/x.git?token=hunter2", "no query"),
        ("file:///srv/../x.git", "may not contain '..'"),
    ],
)
def test_bad_urls(url: str, said: str) -> None:
    """A URL git cannot use safely is refused with the reason, and never shows a password."""
    with pytest.raises(InvalidSourceURL) as info:
        parse_url(url)
    assert said in str(info.value)
    assert "hunter2" not in str(info.value)
    assert info.value.reason == "InvalidSourceURL"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("unable to access 'https://u:pw@h/x.git/': boom", "unable to access 'https://***@h/x.git/': boom"),
        ("https://ghp_token@github.com/o/r", "https://***@github.com/o/r"),
        ("ssh://git@host/x and ssh://git:pw@host/y", "ssh://git@host/x and ssh://***@host/y"),
        ("no urls here", "no urls here"),
        ("https://user:p@ss@host/r", "https://***@host/r"),  # was ***@ss@host
        ("https://user:pa/ss@host/r", "https://***@host/r"),  # was not redacted at all
        ("fatal: 'https://u:p@h/a' and https://v@h2/b", "fatal: 'https://***@h/a' and https://***@h2/b"),
        ("a,https://u:p@h/x,https://v@h2/y", "a,https://***@h/x,https://***@h2/y"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    """Userinfo is hidden wherever a URL appears in text; an ssh login name is kept."""
    assert redact(text) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:p@ss@host/r", "https://***@host/r"),
        ("https://user:pa ss@host/r", "https://***@host/r"),
        ("user:pw@host:repo.git", "***@host:repo.git"),
        ("git@host:repo.git", "git@host:repo.git"),
        ("ssh://git@host/repo.git", "ssh://git@host/repo.git"),
        ("ssh://git:pw@host/repo.git", "ssh://***@host/repo.git"),
        ("https://token@host/repo.git", "https://***@host/repo.git"),
        ("https://host/repo.git", "https://host/repo.git"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """A URL on its own: everything before its last '@' is hidden, except a plain login."""
    assert redact_url(url) == shown


def test_a_password_with_at_signs_is_read_whole() -> None:
    """user:p@ss@host: the password is p@ss (the last '@' ends the userinfo), and git's URL has none of it."""
    parsed = parse_url("https://user:p@ss@git.example.com/shop.git")
    assert (parsed.username, parsed.password, parsed.git_url) == ("user", "p@ss", "https://git.example.com/shop.git")
