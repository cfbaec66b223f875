"""GitSources over https against git's smart-HTTP backend behind nginx (TLS from a test CA, basic auth)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.gitserver import GitHttpsServer, WorkRepo
from gitopsd.model import Revision
from gitopsd.sources import (
    Credentials,
    GitAuthenticationFailed,
    GitRepositoryNotFound,
    GitSources,
    GitTLSFailed,
    SourceError,
)
from gitopsd.spec import SourceSpec
from tests.gitopsd.sources.conftest import processes_under


@pytest.fixture(scope="module")
def https_repo(git_https_server: GitHttpsServer) -> WorkRepo:
    """One repository on the https server: main with deploy/app.yaml, tag v1.0.0."""
    repo = git_https_server.new_repo("shop")
    repo.commit({"deploy/app.yaml": "kind: ConfigMap\n"})
    repo.tag("v1.0.0", message="first release")
    return repo


def source(url: str, kind: str = "branch", ref: str = "main") -> SourceSpec:
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path="deploy")  # type: ignore[arg-type]


def assert_secret_free(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


async def test_basic_auth_reads_branch_and_tag(
    sources: GitSources, git_https_server: GitHttpsServer, https_repo: WorkRepo
) -> None:
    """username/password and ca.crt from a secret: resolve and read a branch and a tag over https."""
    creds = Credentials.from_secret(git_https_server.secret_data(), "git-https")
    url = git_https_server.url("shop")
    for kind, ref in (("branch", "main"), ("semver", "^1")):
        revision = await sources.resolve(source(url, kind, ref), creds)
        assert revision.commit == https_repo.head()
        tree = await sources.tree(source(url, kind, ref), creds, revision)
        assert await asyncio.to_thread(tree.files, "deploy") == {"deploy/app.yaml": b"kind: ConfigMap\n"}
    # Another spelling of the same URL shares the mirror.
    await sources.tree(source(url + "/"), creds, revision)
    assert sources.stats().mirrors == 1
    assert sources.stats().fetches == 1


async def test_bearer_token(sources: GitSources, git_https_server: GitHttpsServer, https_repo: WorkRepo) -> None:
    """bearerToken is sent as "Authorization: Bearer"; a wrong token is refused."""
    url = git_https_server.url("shop", bearer=True)
    creds = Credentials.from_secret(git_https_server.bearer_secret_data(), "git-token")
    assert await sources.resolve(source(url), creds) == Revision("main", https_repo.head())
    wrong = Credentials.from_secret(git_https_server.bearer_secret_data(token="not-the-token"), "git-token")
    with pytest.raises(GitAuthenticationFailed) as info:
        await sources.resolve(source(url), wrong)
    assert "refused the credentials in secret 'git-token'" in str(info.value)
    assert_secret_free(str(info.value), "not-the-token", git_https_server.token)


async def test_password_in_the_url(
    sources: GitSources, git_https_server: GitHttpsServer, https_repo: WorkRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """user:password@ in the URL works (a CA-only secret), and the password shows nowhere, logs included."""
    creds = Credentials.from_secret({"ca.crt": git_https_server.ca_cert}, "git-ca")
    url = git_https_server.url("shop").replace(
        "https://", f"https://{git_https_server.username}:{git_https_server.password}@"
    )
    revision = await sources.resolve(source(url), creds)
    tree = await sources.tree(source(url), creds, revision)
    assert tree.files("deploy")
    assert git_https_server.password not in repr(tree)
    bad = url.replace(git_https_server.password, "wrong-password-123")
    with pytest.raises(GitAuthenticationFailed) as info:
        await sources.resolve(source(bad), creds)
    assert_secret_free(str(info.value), "wrong-password-123", git_https_server.password)
    logged = capsys.readouterr()
    assert_secret_free(logged.out + logged.err, "wrong-password-123", git_https_server.password)


async def test_wrong_password(sources: GitSources, git_https_server: GitHttpsServer, https_repo: WorkRepo) -> None:
    """A wrong password: GitAuthenticationFailed naming the secret, neither password in the message."""
    creds = Credentials.from_secret(git_https_server.secret_data(password="wrong-password-456"), "git-https")
    with pytest.raises(GitAuthenticationFailed) as info:
        await sources.resolve(source(git_https_server.url("shop")), creds)
    url = git_https_server.url("shop")
    assert str(info.value) == f"{url}: the server refused the credentials in secret 'git-https'"
    assert info.value.reason == "GitAuthenticationFailed"
    assert sources.stats().fetches == 0


async def test_no_credentials(sources: GitSources, git_https_server: GitHttpsServer, https_repo: WorkRepo) -> None:
    """A server that wants credentials and gets none says so and how to give them."""
    creds = Credentials.from_secret({"ca.crt": git_https_server.ca_cert}, "git-ca")
    with pytest.raises(GitAuthenticationFailed) as info:
        await sources.resolve(source(git_https_server.url("shop")), creds)
    assert "requires credentials: add username/password or bearerToken to secret 'git-ca'" in str(info.value)


async def test_untrusted_certificate(sources: GitSources, git_https_server: GitHttpsServer) -> None:
    """Without the CA, the server's certificate is refused: GitTLSFailed pointing at ca.crt."""
    creds = Credentials.from_secret({"username": b"gitops", "password": git_https_server.password.encode()}, "git")
    with pytest.raises(GitTLSFailed) as info:
        await sources.resolve(source(git_https_server.url("shop")), creds)
    assert "not trusted" in str(info.value) and "'ca.crt'" in str(info.value)
    assert_secret_free(str(info.value), git_https_server.password)


async def test_no_such_repository(sources: GitSources, git_https_server: GitHttpsServer) -> None:
    """A repository the server does not have: GitRepositoryNotFound."""
    creds = Credentials.from_secret(git_https_server.secret_data(), "git-https")
    with pytest.raises(GitRepositoryNotFound, match="no Git repository there"):
        await sources.resolve(source(git_https_server.url("nothing-here")), creds)


async def test_credentials_stay_off_command_lines(tmp_path: Path, hanging_port: int) -> None:
    """While git runs, no process's command line holds the password; it travels in git's environment."""
    cache = tmp_path / "cache"
    creds = Credentials.from_secret({"username": b"bot", "password": b"pw-on-cmdline-check"}, "git")
    async with GitSources(cache, timeout=30) as sources:
        task = asyncio.ensure_future(sources.resolve(source(f"https://127.0.0.1:{hanging_port}/a.git"), creds))
        for _ in range(100):
            if processes_under(cache):
                break
            await asyncio.sleep(0.05)
        running = processes_under(cache)
        assert running, "git never started"
        assert all("pw-on-cmdline-check" not in line for line in running)
        environ = [
            (Path("/proc") / line.split(":", 1)[0] / "environ").read_bytes() for line in running if "git" in line
        ]
        assert any(b"GIT_CONFIG_VALUE_0=Authorization: Basic" in env for env in environ)
        task.cancel()
        with pytest.raises((asyncio.CancelledError, SourceError)):
            await task
    assert processes_under(cache) == []
