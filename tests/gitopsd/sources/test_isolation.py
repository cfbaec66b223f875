"""One daemon, several teams: no Environment reads another's private repository through the shared cache.

The attacks of issue 15, against the real https server of the harness: Environment B (no
credentials) names the cache's mirror of A's private repository as a ``file://`` URL, or names
A's https URL with A's commit and no password; and B's kustomization names A's export as a base
(``../../<A's commit>/deploy``). Before the fix all three read A's files.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from e2e.gitrepo import WorkRepo
from e2e.gitserver import GitHttpsServer
from gitopsd.model import Revision
from gitopsd.render import KustomizeError, kustomize
from gitopsd.sources import Credentials, GitAuthenticationFailed, GitSources, GitTree, SourceNotAllowed
from gitopsd.spec import SourceSpec

PRIVATE = "a-private-value-5d41"


@pytest.fixture(scope="module")
def private_repo(git_https_server: GitHttpsServer) -> WorkRepo:
    """Team A's private repository: a kustomization holding a ConfigMap with PRIVATE."""
    repo = git_https_server.new_repo("team-a-private")
    repo.commit(
        {
            "deploy/kustomization.yaml": "resources: [cm.yaml]\n",
            "deploy/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{k: {PRIVATE}}}\n",
        }
    )
    return repo


def source(url: str, kind: str = "branch", ref: str = "main") -> SourceSpec:
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path="deploy")  # type: ignore[arg-type]


async def read_as_a(sources: GitSources, server: GitHttpsServer) -> tuple[Revision, GitTree]:
    """A reads its repository with its credentials: the mirror (and an export) now hold PRIVATE."""
    creds = Credentials.from_secret(server.secret_data(), "team-a-git")
    spec = source(server.url("team-a-private"))
    revision = await sources.resolve(spec, creds)
    tree = await sources.tree(spec, creds, revision)
    assert isinstance(tree, GitTree)
    assert PRIVATE in (await asyncio.to_thread(tree.directory) / "deploy" / "cm.yaml").read_text()
    return revision, tree


async def test_a_file_url_into_the_cache_is_refused(
    sources: GitSources, git_https_server: GitHttpsServer, private_repo: WorkRepo, tmp_path: Path
) -> None:
    """B's file:// URL to A's mirror (any spelling, through a link too) is SourceNotAllowed, nothing fetched."""
    await read_as_a(sources, git_https_server)
    mirror = next((sources.cache_dir / "mirrors").glob("*.git"))
    link = tmp_path / "innocent"
    os.symlink(mirror, link)
    before = sources.stats()
    for url in (
        f"file://{mirror}",
        f"file://{str(mirror).removesuffix('.git')}",  # git opens PATH.git too
        f"file://localhost{mirror}/",
        f"file://{link}",
        f"file://{sources.cache_dir}",
    ):
        with pytest.raises(SourceNotAllowed) as info:
            await sources.resolve(source(url), None)
        assert "may not point into gitopsd's cache directory" in str(info.value), url
        assert info.value.reason == "SourceNotAllowed" and not info.value.transient
        with pytest.raises(SourceNotAllowed):
            await sources.tree(source(url), None, Revision("main", private_repo.head()))
    after = sources.stats()
    assert (after.fetches, after.mirrors, after.ls_remotes) == (before.fetches, before.mirrors, before.ls_remotes)


async def test_a_mirror_is_read_only_with_credentials_the_server_accepts(
    sources: GitSources, git_https_server: GitHttpsServer, private_repo: WorkRepo
) -> None:
    """B names A's https URL and A's commit: without a password, or with a wrong one, the mirror is not read."""
    revision, _ = await read_as_a(sources, git_https_server)
    url = git_https_server.url("team-a-private")
    ca_only = Credentials.from_secret({"ca.crt": git_https_server.ca_cert}, "team-b-ca")
    wrong = Credentials.from_secret(git_https_server.secret_data(password="not-a-password-9"), "team-b-git")
    fetches = sources.stats().fetches
    for creds, said in ((ca_only, "requires credentials"), (wrong, "refused the credentials in secret 'team-b-git'")):
        with pytest.raises(GitAuthenticationFailed, match=said):
            await sources.tree(source(url), creds, revision)
        with pytest.raises(GitAuthenticationFailed):
            await sources.tree(source(url, "commit", revision.commit), creds, revision)
    assert sources.stats().fetches == fetches
    # A itself still reads from the mirror, without another fetch.
    creds = Credentials.from_secret(git_https_server.secret_data(), "team-a-git")
    tree = await sources.tree(source(url), creds, revision)
    assert PRIVATE.encode() in tree.files("deploy")["deploy/cm.yaml"]
    assert sources.stats().fetches == fetches


async def test_no_render_reaches_another_renders_export(
    sources: GitSources, git_https_server: GitHttpsServer, private_repo: WorkRepo, tmp_path: Path
) -> None:
    """While A's export exists, B's kustomization naming it by commit or relative path fails, showing nothing of A."""
    revision, tree_a = await read_as_a(sources, git_https_server)
    a_dir = await asyncio.to_thread(tree_a.directory)
    guesses = [
        f"../../{revision.commit}/deploy",  # the shared per-commit export of before
        f"../../../exports/{revision.commit}/deploy",
        f"../{revision.commit}/deploy",
    ]
    b = WorkRepo.create(tmp_path / "b-remote" / "b.git", tmp_path / "b-work")
    for guess in guesses:
        b.commit({"deploy/kustomization.yaml": f"resources: [{guess}]\n"})
        spec = source(b.file_url)
        tree_b = await sources.tree(spec, None, await sources.resolve(spec, None))
        b_dir = await asyncio.to_thread(tree_b.directory)
        assert [p.name for p in b_dir.parent.iterdir()] == ["tree"]
        with pytest.raises(KustomizeError) as info:
            await asyncio.to_thread(kustomize.build, b_dir, "deploy", "deploy/kustomization.yaml", 60)
        message = str(info.value)
        assert PRIVATE not in message and str(sources.cache_dir) not in message, message
        assert "no such file or directory" in message
    assert a_dir.is_dir()  # A's export was there all along, under a name nobody can guess
    assert len(a_dir.parent.name) == 32 and revision.commit not in str(a_dir)
