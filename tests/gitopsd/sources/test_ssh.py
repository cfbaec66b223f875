"""GitSources over ssh against Debian's sshd: key authentication and strict host key checking."""

from __future__ import annotations

import pytest

from e2e.gitserver import GitSshServer, WorkRepo, new_ssh_key
from gitopsd.model import Revision
from gitopsd.sources import (
    Credentials,
    GitAuthenticationFailed,
    GitHostKeyChanged,
    GitHostKeyUnknown,
    GitSources,
    GitUnreachable,
    InvalidCredentials,
)
from gitopsd.spec import SourceSpec


@pytest.fixture(scope="module")
def ssh_repo(git_ssh_server: GitSshServer) -> WorkRepo:
    """One repository on the ssh server: main with deploy/app.yaml, annotated tag v1.0.0."""
    repo = git_ssh_server.new_repo("shop")
    repo.commit({"deploy/app.yaml": "kind: ConfigMap\n"})
    repo.tag("v1.0.0", message="first release")
    return repo


def source(url: str, kind: str = "branch", ref: str = "main") -> SourceSpec:
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path="deploy")  # type: ignore[arg-type]


def secret_lines(key: bytes) -> list[str]:
    return [line for line in key.decode().splitlines() if "PRIVATE KEY" not in line]


async def test_key_authentication(sources: GitSources, git_ssh_server: GitSshServer, ssh_repo: WorkRepo) -> None:
    """identity + known_hosts: resolve a tag and read the tree over ssh; key files are gone afterwards."""
    creds = Credentials.from_secret(git_ssh_server.secret_data(), "deploy-key")
    url = git_ssh_server.url("shop")
    revision = await sources.resolve(source(url, "tag", "v1.0.0"), creds)
    assert revision == Revision("v1.0.0", ssh_repo.head())
    tree = await sources.tree(source(url, "tag", "v1.0.0"), creds, revision)
    assert tree.files("deploy") == {"deploy/app.yaml": b"kind: ConfigMap\n"}
    assert list((sources.cache_dir).glob("run-*/tmp/*")) == []  # identity and known_hosts files removed


async def test_wrong_key(sources: GitSources, git_ssh_server: GitSshServer, ssh_repo: WorkRepo) -> None:
    """A key the server does not know: GitAuthenticationFailed naming the secret's identity, no key text."""
    other, _ = new_ssh_key()
    creds = Credentials.from_secret(git_ssh_server.secret_data(identity=other), "deploy-key")
    with pytest.raises(GitAuthenticationFailed) as info:
        await sources.resolve(source(git_ssh_server.url("shop")), creds)
    message = str(info.value)
    assert message.endswith("the server refused the ssh key in key 'identity' of secret 'deploy-key'")
    assert all(line not in message for line in secret_lines(other) + secret_lines(git_ssh_server.client_key))


async def test_unknown_host_key(sources: GitSources, git_ssh_server: GitSshServer, ssh_repo: WorkRepo) -> None:
    """known_hosts without this server: refused (never trusted on first use), GitHostKeyUnknown."""
    elsewhere = f"[127.0.0.1]:1 {git_ssh_server.host_public_key}\n".encode()
    creds = Credentials.from_secret(git_ssh_server.secret_data(known_hosts=elsewhere), "deploy-key")
    with pytest.raises(GitHostKeyUnknown) as info:
        await sources.resolve(source(git_ssh_server.url("shop")), creds)
    assert "is not in key 'known_hosts' of secret 'deploy-key'; refusing to connect" in str(info.value)
    assert info.value.reason == "GitHostKeyUnknown"
    assert sources.stats().fetches == 0


async def test_changed_host_key(sources: GitSources, git_ssh_server: GitSshServer, ssh_repo: WorkRepo) -> None:
    """known_hosts with another key for this host: refused, GitHostKeyChanged."""
    _, impostor = new_ssh_key()
    wrong = f"[127.0.0.1]:{git_ssh_server.port} {impostor}\n".encode()
    creds = Credentials.from_secret(git_ssh_server.secret_data(known_hosts=wrong), "deploy-key")
    with pytest.raises(GitHostKeyChanged, match="does not match key 'known_hosts' of secret 'deploy-key'"):
        await sources.resolve(source(git_ssh_server.url("shop")), creds)


async def test_ssh_without_known_hosts_is_refused_before_connecting(
    sources: GitSources, git_ssh_server: GitSshServer
) -> None:
    """No known_hosts in the secret, or no secret at all: InvalidCredentials, and no connection tried."""
    url = git_ssh_server.url("shop")
    only_key = Credentials.from_secret({"identity": git_ssh_server.client_key}, "deploy-key")
    with pytest.raises(InvalidCredentials, match="secret 'deploy-key': key 'known_hosts' is required for ssh URLs"):
        await sources.resolve(source(url), only_key)
    with pytest.raises(InvalidCredentials, match=r"ssh URLs need spec\.source\.secretRef"):
        await sources.resolve(source(url), None)
    assert sources.stats().ls_remotes == 0


async def test_ssh_server_down(sources: GitSources, git_ssh_server: GitSshServer, closed_port: int) -> None:
    """Nothing listening on the ssh port: GitUnreachable."""
    url = f"ssh://{git_ssh_server.user}@127.0.0.1:{closed_port}/srv/shop.git"
    creds = Credentials.from_secret(git_ssh_server.secret_data(), "deploy-key")
    with pytest.raises(GitUnreachable, match="cannot reach the Git server"):
        await sources.resolve(source(url), creds)
