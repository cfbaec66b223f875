"""GitSources against real repositories over file://: resolution, shared mirrors, trees, cleanup."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from e2e.gitrepo import WorkRepo
from gitopsd.model import Revision
from gitopsd.sources import GitSources, GitTimeout, GitUnreachable, PathNotFound, RefNotFound, SourceError
from gitopsd.spec import SourceSpec
from tests.gitopsd.sources.conftest import git_children, open_fds, processes_under


def spec(repo: WorkRepo | str, kind: str, ref: str, path: str = "") -> SourceSpec:
    url = repo if isinstance(repo, str) else repo.file_url
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path=path)  # type: ignore[arg-type]


async def test_each_kind_of_ref_resolves(sources: GitSources, remote: WorkRepo) -> None:
    """branch, exact tag (annotated: peeled), semver range and pinned commit (short: expanded) resolve."""
    main, develop = remote.git("rev-parse", "main"), remote.git("rev-parse", "develop")
    first = remote.git("rev-parse", "v1.0.0^{commit}")
    assert await sources.resolve(spec(remote, "branch", "main"), None) == Revision("main", main)
    assert await sources.resolve(spec(remote, "branch", "develop"), None) == Revision("develop", develop)
    assert await sources.resolve(spec(remote, "tag", "v1.0.0"), None) == Revision("v1.0.0", first)
    assert await sources.resolve(spec(remote, "semver", ">=1.0.0 <2.0.0"), None) == Revision("v1.10.0", main)
    assert await sources.resolve(spec(remote, "semver", ">=2.0.0-0"), None) == Revision("v2.0.0-rc.1", develop)
    assert await sources.resolve(spec(remote, "semver", "~1.0"), None) == Revision("v1.0.0", first)
    assert await sources.resolve(spec(remote, "commit", first), None) == Revision("", first)
    assert await sources.resolve(spec(remote, "commit", first[:9]), None) == Revision("", first)


async def test_three_environments_of_one_repository_cost_one_ls_remote_and_one_fetch(
    sources: GitSources, remote: WorkRepo
) -> None:
    """dev, staging and prod of one repository share one ls-remote per round, one mirror and one fetch."""
    envs = {
        "dev": spec(remote, "branch", "develop", "deploy/dev"),
        "staging": spec(remote, "branch", "main", "deploy/staging"),
        "prod": spec(remote, "semver", "^1", "deploy/prod"),
    }
    revisions = await asyncio.gather(*(sources.resolve(s, None) for s in envs.values()))
    assert sources.stats().ls_remotes == 1
    assert sources.stats().fetches == 0  # resolving never fetches
    trees = await asyncio.gather(*(sources.tree(s, None, r) for s, r in zip(envs.values(), revisions, strict=True)))
    assert sources.stats().fetches == 1
    assert sources.stats().mirrors == 1
    files = [await asyncio.to_thread(t.files, s.path) for t, s in zip(trees, envs.values(), strict=True)]
    assert files == [
        {"deploy/dev/app.yaml": b"env: dev\nversion: 3\n"},
        {"deploy/staging/app.yaml": b"env: staging\nversion: 1\n"},
        {"deploy/prod/app.yaml": b"env: prod\nversion: 2\n"},
    ]
    # The next round, one after the other: the answer is asked again (max_age 0) but all at once.
    for s in envs.values():
        await sources.tree(s, None, await sources.resolve(s, None))
    assert sources.stats().fetches == 1


async def test_a_new_commit_is_seen_by_resolve_without_a_fetch(sources: GitSources, remote: WorkRepo) -> None:
    """A push shows in resolve (ls-remote only); only the Environment that needs it fetches."""
    dev, prod = spec(remote, "branch", "develop", "deploy/dev"), spec(remote, "semver", "^1", "deploy/prod")
    for s in (dev, prod):
        await sources.tree(s, None, await sources.resolve(s, None))
    assert sources.stats().fetches == 1

    remote.switch("develop")
    new = remote.commit({"deploy/dev/app.yaml": "env: dev\nversion: 4\n"})
    revision = await sources.resolve(dev, None)
    assert revision == Revision("develop", new)
    assert sources.stats().fetches == 1
    assert await sources.resolve(prod, None) == Revision("v1.10.0", remote.git("rev-parse", "main"))

    tree = await sources.tree(dev, None, revision)
    assert sources.stats().fetches == 2
    assert tree.files("deploy/dev") == {"deploy/dev/app.yaml": b"env: dev\nversion: 4\n"}
    await sources.tree(prod, None, await sources.resolve(prod, None))
    assert sources.stats().fetches == 2  # prod's commit was already there

    remote.tag("v1.11.0")  # a release: prod moves, by ls-remote alone
    assert await sources.resolve(prod, None) == Revision("v1.11.0", new)


async def test_a_recent_answer_is_reused_within_max_age(sources: GitSources, remote: WorkRepo) -> None:
    """With max_age, a fresh enough ls-remote answer is reused; with 0 the remote is asked again."""
    main = spec(remote, "branch", "main")
    first = await sources.resolve(main, None, max_age=60)
    await sources.resolve(spec(remote, "branch", "main", "deploy/prod"), None, max_age=60)
    assert sources.stats().ls_remotes == 1
    pushed = remote.commit({"x.txt": "x"})
    assert await sources.resolve(main, None, max_age=60) == first
    assert sources.stats().ls_remotes == 1
    assert await sources.resolve(main, None, max_age=0) == Revision("main", pushed)
    assert sources.stats().ls_remotes == 2
    # A ref the cached answer did not ask for needs a new query, whatever max_age says.
    await sources.resolve(spec(remote, "tag", "v1.0.0"), None, max_age=60)
    assert sources.stats().ls_remotes == 3


async def test_missing_refs_and_paths_are_precise(sources: GitSources, remote: WorkRepo) -> None:
    """Missing branch, tag, range, commit or path: RefNotFound / PathNotFound naming what exists."""
    cases = [
        (spec(remote, "branch", "release"), "branch 'release' not found (branches: develop, main)"),
        (spec(remote, "tag", "v3.0.0"), "tag 'v3.0.0' not found (tags: v2.0.0-rc.1, v1.10.0, v1.1.0, v1.0.0)"),
        (spec(remote, "semver", ">=3.0.0"), "no tag matches semver range '>=3.0.0' (tags, newest first: v2.0.0-rc.1"),
        (spec(remote, "commit", "abcdef1"), "no commit starts with 'abcdef1'"),
    ]
    for source, said in cases:
        with pytest.raises(RefNotFound) as info:
            await sources.resolve(source, None)
        assert said in str(info.value)
        assert remote.file_url in str(info.value)
        assert info.value.reason == "RefNotFound"

    ghost = spec(remote, "commit", "f" * 40)
    with pytest.raises(RefNotFound, match=f"commit {'f' * 40} not found"):
        await sources.tree(ghost, None, await sources.resolve(ghost, None))

    main = spec(remote, "branch", "main", "deploy/qa")
    revision = await sources.resolve(main, None)
    with pytest.raises(PathNotFound) as missing_path:
        await sources.tree(main, None, revision)
    assert str(missing_path.value) == f"path 'deploy/qa' not found in {remote.file_url} at {revision}"
    assert missing_path.value.reason == "PathNotFound"
    with pytest.raises(PathNotFound, match=r"'README.md' .* is a file, not a directory"):
        await sources.tree(spec(remote, "branch", "main", "README.md"), None, revision)


async def test_missing_repository_and_unreachable_server(sources: GitSources, tmp_path: Path, closed_port: int) -> None:
    """No repository at the URL, or no server: distinct reasons, the URL named."""
    with pytest.raises(SourceError) as info:
        await sources.resolve(spec(f"file://{tmp_path}/nothing.git", "branch", "main"), None)
    assert info.value.reason == "GitRepositoryNotFound"
    assert f"{tmp_path}/nothing.git" in str(info.value)
    url = f"https://127.0.0.1:{closed_port}/app.git"
    with pytest.raises(GitUnreachable) as unreachable:
        await sources.resolve(spec(url, "branch", "main"), None)
    assert str(unreachable.value).startswith(f"{url}: cannot reach the Git server")


async def test_a_pinned_commit_on_no_branch_is_still_read(sources: GitSources, remote: WorkRepo) -> None:
    """A commit pinned by id that no branch or tag reaches any more is fetched by id."""
    remote.branch("experiment")
    lost = remote.commit({"deploy/dev/app.yaml": "env: dev\nversion: 99\n"})
    remote.switch("main")
    remote.git("branch", "-D", "experiment")
    remote.delete_remote("refs/heads/experiment")
    source = spec(remote, "commit", lost, "deploy/dev")
    tree = await sources.tree(source, None, await sources.resolve(source, None))
    assert tree.files("deploy/dev") == {"deploy/dev/app.yaml": b"env: dev\nversion: 99\n"}


async def test_trees_read_blobs_and_export_privately(sources: GitSources, remote: WorkRepo) -> None:
    """files() reads one directory from the mirror; directory() exports the commit without .git, once per tree."""
    main = spec(remote, "branch", "main")
    revision = await sources.resolve(main, None)
    tree = await sources.tree(main, None, revision)
    assert tree.files("deploy/prod") == {"deploy/prod/app.yaml": b"env: prod\nversion: 2\n"}
    assert set(tree.files("")) == {"README.md", *(f"deploy/{e}/app.yaml" for e in ("dev", "staging", "prod"))}
    with pytest.raises(FileNotFoundError, match="'deploy/qa' not found"):
        tree.files("deploy/qa")

    exported = await asyncio.to_thread(tree.directory)
    assert await asyncio.to_thread(tree.directory) == exported  # once per tree
    assert (exported / "deploy" / "prod" / "app.yaml").read_text() == "env: prod\nversion: 2\n"
    assert not (exported / ".git").exists()
    # Another tree of the same commit (another render) gets a directory of its own, whose
    # parent holds nothing but it: no render can reach another's files by a relative path.
    other = await sources.tree(spec(remote, "branch", "main", "deploy/prod"), None, revision)
    other_dir = await asyncio.to_thread(other.directory)
    assert other_dir != exported and other_dir.parent != exported.parent
    assert [p.name for p in other_dir.parent.iterdir()] == [other_dir.name]
    assert revision.commit not in str(other_dir)
    assert sources.stats().exports == 2


async def test_an_export_goes_with_its_tree(tmp_path: Path, remote: WorkRepo) -> None:
    """An export stays while its tree lives and is removed when the tree is collected."""
    async with GitSources(tmp_path / "cache") as sources:
        main = spec(remote, "branch", "main")
        kept = await sources.tree(main, None, await sources.resolve(main, None))
        kept_dir = kept.directory()
        gone = []
        for i in range(3):
            remote.commit({"n.txt": str(i)})
            tree = await sources.tree(main, None, await sources.resolve(main, None))
            gone.append(tree.directory())
            del tree
            gc.collect()
        assert kept_dir.is_dir()
        assert not any(path.exists() or path.parent.exists() for path in gone)
        assert sources.stats().exports == 1


async def test_close_leaves_no_process_temp_file_or_export(tmp_path: Path, remote: WorkRepo) -> None:
    """After close(): no git process, no run directory (exports, credentials, HOME); mirrors stay."""
    cache = tmp_path / "cache"
    sources = GitSources(cache)
    main = spec(remote, "branch", "main")
    tree = await sources.tree(main, None, await sources.resolve(main, None))
    tree.directory()
    await sources.close()
    assert sorted(p.name for p in cache.iterdir()) == ["mirrors"]
    assert processes_under(cache) == []
    assert git_children() == []
    with pytest.raises(SourceError, match="closed"):
        await sources.resolve(main, None)


async def test_close_stops_a_call_in_flight(tmp_path: Path, hanging_port: int) -> None:
    """close() during a hanging fetch kills git and its helpers at once."""
    cache = tmp_path / "cache"
    sources = GitSources(cache, timeout=60)
    url = f"https://127.0.0.1:{hanging_port}/a.git"
    task = asyncio.ensure_future(sources.resolve(spec(url, "branch", "main"), None))
    for _ in range(100):
        if processes_under(cache):
            break
        await asyncio.sleep(0.05)
    assert processes_under(cache), "git never started"
    await sources.close()
    with pytest.raises((asyncio.CancelledError, SourceError)):
        await task
    assert processes_under(cache) == []
    assert git_children() == []


async def test_timeout_kills_the_whole_process_group(tmp_path: Path, hanging_port: int) -> None:
    """A server that never answers: GitTimeout after the timeout, git and git-remote-https both gone."""
    cache = tmp_path / "cache"
    async with GitSources(cache, timeout=1.5) as sources:
        url = f"https://127.0.0.1:{hanging_port}/a.git"
        with pytest.raises(GitTimeout, match=rf"git ls-remote {url} did not finish within 1.5s"):
            await sources.resolve(spec(f"https://127.0.0.1:{hanging_port}/a.git", "branch", "main"), None)
        assert processes_under(cache) == []
        assert sources.stats().live_processes == 0


async def test_many_calls_keep_file_descriptors_flat(sources: GitSources, remote: WorkRepo) -> None:
    """Hundreds of git calls leave the number of open file descriptors where it was."""
    source = spec(remote, "branch", "main", "deploy")

    async def round_trip() -> None:
        revision = await sources.resolve(source, None)
        tree = await sources.tree(source, None, revision)
        await asyncio.to_thread(tree.files, "deploy")
        await asyncio.to_thread(tree.directory)

    await round_trip()
    before = open_fds()
    for _ in range(40):
        await round_trip()
    assert open_fds() <= before
    assert git_children() == []


async def test_host_git_configuration_does_not_leak_in(
    tmp_path: Path, remote: WorkRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's ~/.gitconfig (here: a URL rewrite) and git variables of the host do not reach our git calls."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "file:///nonexistent/"]\n\tinsteadOf = {remote.file_url}\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_SSL_CAINFO", "/nonexistent/ca.pem")
    monkeypatch.setenv("GIT_DIR", "/nonexistent/.git")
    async with GitSources(tmp_path / "cache") as sources:
        main = spec(remote, "branch", "main", "deploy/prod")
        tree = await sources.tree(main, None, await sources.resolve(main, None))
        assert tree.files("deploy/prod") == {"deploy/prod/app.yaml": b"env: prod\nversion: 2\n"}
