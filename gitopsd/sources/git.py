"""The Git source port: which commit a source names now, and the files of that commit.

Every reconcile asks :meth:`GitSources.resolve` first; that is one ``git ls-remote`` of just
the refs in use, never a fetch. Calls for one URL (and one set of credentials) that run
together share one ls-remote, which asks for every ref any of them has used, and an answer
younger than ``max_age`` is reused, so dev, staging and prod of one repository cost one
round trip per round. Only :meth:`GitSources.tree` fetches, and only when the commit is
missing from the URL's mirror (see ``mirror``).

Who may read a mirror: one mirror serves every Environment of a repository, whatever
credentials each presents, but :meth:`GitSources.tree` hands out its files only to a caller
whose own credentials the server accepted for that URL (an ``ls-remote`` with them answered,
and the last one did not fail). Why an access check and not a mirror per set of credentials:
the check is the ``ls-remote`` every reconcile makes anyway (no extra round trip), the server
stays the one that decides, and a rotated password or token does not re-clone the repository
into a new mirror while the old one lingers on disk. A ``file://`` URL into the cache directory
itself (the mirrors of private repositories) is refused outright.

On disk, under ``cache_dir``: ``mirrors/`` (kept across restarts, so a restarted daemon does
not fetch everything again) and a ``run-<pid>-*`` directory with git's empty ``HOME``, the
credential files of calls in flight and the exports; :meth:`GitSources.close` removes it,
and a later start removes those of processes that died without closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitopsd.model import Revision, Tree
from gitopsd.sources import errors
from gitopsd.sources.auth import Access
from gitopsd.sources.credentials import Credentials
from gitopsd.sources.gitcmd import GitFailed, GitRunner, classify
from gitopsd.sources.mirror import Mirror, mirror_dir
from gitopsd.sources.refs import HEADS, TAGS, RemoteRefs, is_full_sha, missing, parse_ls_remote, patterns_for, pick
from gitopsd.sources.tree import Exports, GitTree
from gitopsd.sources.urls import GitURL, parse_url
from gitopsd.spec import SourceSpec

_RUN_PREFIX = "run-"
# A ref nobody asked about for this long (a spec moved to another branch) leaves the query.
_PATTERN_TTL = 600.0


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Counters for tests, benchmarks and metrics."""

    ls_remotes: int
    fetches: int
    mirrors: int
    exports: int
    live_processes: int


@dataclass(slots=True)
class _Remote:
    """ls-remote state of one URL with one set of credentials."""

    known: dict[str, float] = field(default_factory=dict)  # pattern -> when a caller last asked for it
    result: RemoteRefs | None = None
    running: asyncio.Task[RemoteRefs] | None = None
    running_patterns: set[str] = field(default_factory=set)
    batch_open: bool = False  # the running query has not started git yet: callers may add patterns
    running_started: float = 0.0  # when the running query started git (monotonic)
    not_before: float = 0.0  # answers older than this are stale (see GitSources.invalidate)


class GitSources:
    """Git repositories behind one cache directory, shared by all Environments of a daemon."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        timeout: float = 60.0,
        on_fetch: Callable[[str, float], None] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # mirrors hold private repositories
        _reap_stale_runs(self.cache_dir)
        self._run_dir = self.cache_dir / f"{_RUN_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._home = self._run_dir / "home"
        self._tmp = self._run_dir / "tmp"
        self._home.mkdir(parents=True, mode=0o700)
        self._tmp.mkdir(mode=0o700)
        self.timeout = timeout
        self._runner = GitRunner(self._home, timeout, ceiling=self.cache_dir)
        self._exports = Exports(self._run_dir / "exports")
        self._on_fetch = on_fetch
        self._mirrors: dict[str, Mirror] = {}
        self._remotes: dict[tuple[str, str], _Remote] = {}
        self._ls_remotes = 0
        self._closed = False

    # -- public ----------------------------------------------------------------------------

    async def resolve(self, source: SourceSpec, creds: Credentials | None, *, max_age: float = 0.0) -> Revision:
        """The revision ``source`` names on its remote now (no fetch, except to expand a short commit)."""
        access = self._access(source, creds)
        remote = await self._ls_remote(access, patterns_for(source), max_age)
        revision = pick(source, remote)
        if revision is None:
            raise await self._missing(source, access, remote)
        if source.ref_kind == "commit" and not is_full_sha(revision.commit):
            mirror = self._mirror(access.url)
            full = await mirror.expand(revision.commit)
            if full is None:
                await mirror.fetch(access)
                full = await mirror.expand(revision.commit)
            if full is None:
                raise errors.RefNotFound(f"{access.url}: no commit starts with {revision.commit!r}")
            revision = Revision("", full)
        return revision

    def invalidate(self, url: str) -> bool:
        """Make the next :meth:`resolve` of ``url`` ask the remote again (a push was announced).

        Only answers from ``ls-remote`` calls that start after this are used, so every Environment
        of the repository resolved afterwards shares one new call. False when ``url`` is not a Git URL.
        """
        try:
            key = parse_url(url).key
        except errors.InvalidSourceURL:
            return False
        now = time.monotonic()
        for (url_key, _), state in self._remotes.items():
            if url_key == key:
                state.not_before = now
        return True

    async def tree(self, source: SourceSpec, creds: Credentials | None, revision: Revision) -> Tree:
        """The files of ``revision`` (fetched into the mirror if missing); checks ``source.path`` exists."""
        access = self._access(source, creds)
        await self._check_access(access, source)
        mirror = self._mirror(access.url)
        await mirror.ensure_commit(revision.commit, access)
        label = f"{access.url} at {revision}"
        if source.path:
            await self._check_directory(mirror, revision.commit, source.path, label)
        return GitTree(mirror.path, revision.commit, self._runner, self._exports, self._tmp, label)

    def stats(self) -> SourceStats:
        return SourceStats(
            ls_remotes=self._ls_remotes,
            fetches=sum(m.fetch_count for m in self._mirrors.values()),
            mirrors=len(self._mirrors),
            exports=self._exports.live(),
            live_processes=self._runner.live_count(),
        )

    async def close(self) -> None:
        """Stop every git call in flight and remove exports and temporary files (mirrors stay)."""
        if self._closed:
            return
        self._closed = True
        tasks = [state.running for state in self._remotes.values() if state.running is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for mirror in self._mirrors.values():
            await mirror.cancel()
        await self._runner.kill_all()
        await asyncio.to_thread(self._exports.clear)
        await asyncio.to_thread(shutil.rmtree, self._run_dir, True)

    async def __aenter__(self) -> GitSources:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------------

    def _access(self, source: SourceSpec, creds: Credentials | None) -> Access:
        if self._closed:
            raise errors.SourceError("the Git source cache is closed")
        url = parse_url(source.url)
        if url.scheme == "file":
            self._refuse_cache_path(url)
        if creds is not None:
            creds.check_for(url)
        elif url.scheme == "ssh":
            raise errors.InvalidCredentials(
                f"{url}: ssh URLs need spec.source.secretRef naming a secret with keys 'identity' and "
                "'known_hosts' (the server's host key is never trusted on first use)"
            )
        return Access(url, creds, self._tmp, connect_timeout=min(self.timeout, 30.0))

    def _refuse_cache_path(self, url: GitURL) -> None:
        """A local path into the cache would read other Environments' mirrors without their credentials."""
        path = url.git_url.removeprefix("file://")
        # git also opens PATH.git and PATH/.git; symbolic links are followed, as git would.
        for candidate in (path, path + ".git"):
            real = Path(os.path.realpath(candidate))
            if real == self.cache_dir or self.cache_dir in real.parents:
                raise errors.SourceNotAllowed(
                    f"{url}: a file:// source may not point into gitopsd's cache directory ({self.cache_dir}), "
                    "which holds the mirrors of other Environments' repositories"
                )

    async def _check_access(self, access: Access, source: SourceSpec) -> None:
        """Raise unless the server accepted ``access``'s credentials for its URL (see the module's docstring)."""
        state = self._remotes.get((access.url.key, access.fingerprint))
        if state is None or state.result is None:
            await self._ls_remote(access, patterns_for(source), 0.0)

    def _mirror(self, url: GitURL) -> Mirror:
        mirror = self._mirrors.get(url.key)
        if mirror is None:
            mirror = Mirror(mirror_dir(self.cache_dir / "mirrors", url), url, self._runner, self._on_fetch)
            self._mirrors[url.key] = mirror
        return mirror

    async def _ls_remote(self, access: Access, needed: frozenset[str], max_age: float) -> RemoteRefs:
        state = self._remotes.setdefault((access.url.key, access.fingerprint), _Remote())
        now = time.monotonic()
        state.known.update(dict.fromkeys(needed, now))
        result = state.result
        fresh_since = max(now - max_age, state.not_before)
        if result is not None and needed <= result.patterns and result.taken_at >= fresh_since:
            return result
        task = state.running
        # A query already under way is joined only if it started late enough to see what the
        # caller must see (a push announced by a webhook, say), or has not started git yet.
        joinable = state.batch_open or (needed <= state.running_patterns and state.running_started >= fresh_since)
        if task is None or not joinable:
            state.known = {p: t for p, t in state.known.items() if now - t <= _PATTERN_TTL}
            state.running_patterns = set(state.known)
            state.batch_open = True
            task = asyncio.ensure_future(self._query(state, access))
            state.running = task
            task.add_done_callback(lambda t: _settle(state, t))
        else:
            state.running_patterns |= needed
        return await asyncio.shield(task)

    async def _query(self, state: _Remote, access: Access) -> RemoteRefs:
        await asyncio.sleep(0)  # let calls made in the same round join this query
        state.batch_open = False
        patterns = frozenset(state.running_patterns)
        started = time.monotonic()
        state.running_started = started
        self._ls_remotes += 1
        output = await self._git_remote(access, ["ls-remote", "--", access.url.git_url, *sorted(patterns)])
        result = RemoteRefs(patterns, parse_ls_remote(output), started)
        state.result = result
        return result

    async def _git_remote(self, access: Access, args: list[str]) -> bytes:
        try:
            with access.open() as auth:
                return await self._runner.run(
                    ["-c", "protocol.version=2", *args],
                    cwd=self._home,
                    extra_env=auth.env,
                    secrets=auth.secrets,
                    target=str(access.url),
                )
        except GitFailed as exc:
            raise classify(exc, access, args[0]) from None

    async def _missing(self, source: SourceSpec, access: Access, remote: RemoteRefs) -> errors.RefNotFound:
        """The RefNotFound for ``source``, listing a few refs the remote does have (error path only)."""
        where = str(access.url)
        if source.ref_kind == "semver":
            return missing(source, where, remote.tags())
        prefix = HEADS if source.ref_kind == "branch" else TAGS
        self._ls_remotes += 1
        output = await self._git_remote(access, ["ls-remote", "--refs", "--", access.url.git_url, prefix + "*"])
        names = [name.removeprefix(prefix) for name in parse_ls_remote(output)]
        return missing(source, where, names)

    async def _check_directory(self, mirror: Mirror, commit: str, path: str, label: str) -> None:
        try:
            out = await self._runner.run(["cat-file", "-t", "--end-of-options", f"{commit}:{path}"], cwd=mirror.path)
        except GitFailed:
            raise errors.PathNotFound(f"path {path!r} not found in {label}") from None
        if out.strip() != b"tree":
            raise errors.PathNotFound(f"path {path!r} in {label} is a file, not a directory")


def _settle(state: _Remote, task: asyncio.Task[RemoteRefs]) -> None:
    if state.running is task:
        state.running = None
        state.batch_open = False
    if not task.cancelled() and task.exception() is not None:
        # The waiters received it. These credentials no longer count as accepted (revoked,
        # repository gone) until an ls-remote with them succeeds again.
        state.result = None


def _reap_stale_runs(cache_dir: Path) -> None:
    """Remove run directories of processes that ended without :meth:`GitSources.close`."""
    for run in cache_dir.glob(f"{_RUN_PREFIX}*"):
        try:
            pid = int(run.name.removeprefix(_RUN_PREFIX).split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(run, ignore_errors=True)
        except PermissionError:
            continue
