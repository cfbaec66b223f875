"""GitSources.invalidate (a push was announced): the next resolves share one new ls-remote that sees the push."""

from __future__ import annotations

import asyncio

from e2e.gitrepo import WorkRepo
from gitopsd.model import Revision
from gitopsd.sources import GitSources
from gitopsd.spec import SourceSpec


def _spec(repo: WorkRepo, kind: str, ref: str, path: str = "") -> SourceSpec:
    return SourceSpec(url=repo.file_url, ref_kind=kind, ref=ref, path=path)  # type: ignore[arg-type]


async def test_after_invalidate_a_cached_answer_is_not_used(sources: GitSources, remote: WorkRepo) -> None:
    """A push right after an ls-remote: without invalidate the cached answer hides it, with it the push is seen."""
    main = _spec(remote, "branch", "main")
    await sources.resolve(main, None, max_age=60)
    pushed = remote.commit({"x.txt": "pushed"})
    assert (await sources.resolve(main, None, max_age=60)).commit != pushed
    assert sources.invalidate(remote.file_url.replace("file://", "file:///"))  # any spelling of the URL
    assert await sources.resolve(main, None, max_age=60) == Revision("main", pushed)
    assert sources.stats().ls_remotes == 2
    assert not sources.invalidate("not a url")


async def test_environments_triggered_together_share_one_new_ls_remote(sources: GitSources, remote: WorkRepo) -> None:
    """Three Environments resolved one after the other after one invalidate: one new query, not three."""
    envs = [_spec(remote, "branch", "main"), _spec(remote, "branch", "main", "deploy"), _spec(remote, "tag", "v1.0.0")]
    for env in envs:
        await sources.resolve(env, None, max_age=60)
    before = sources.stats().ls_remotes
    remote.commit({"y.txt": "y"})
    sources.invalidate(remote.file_url)
    for env in envs:
        await sources.resolve(env, None, max_age=60)
    assert sources.stats().ls_remotes == before + 1


async def test_a_query_started_before_the_push_is_not_joined(sources: GitSources, remote: WorkRepo) -> None:
    """A resolve after invalidate does not piggy-back on an ls-remote already running (it may predate the push)."""
    main = _spec(remote, "branch", "main")
    await sources.resolve(main, None, max_age=60)
    before = sources.stats().ls_remotes
    early = asyncio.create_task(sources.resolve(main, None, max_age=0))
    await asyncio.sleep(0.01)  # the early query has started git
    pushed = remote.commit({"z.txt": "z"})
    sources.invalidate(remote.file_url)
    late = await sources.resolve(main, None, max_age=60)
    await early
    assert late == Revision("main", pushed)
    assert sources.stats().ls_remotes == before + 2
