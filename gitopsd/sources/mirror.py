"""One bare mirror per repository, shared by every Environment that reads it.

dev, staging and prod usually follow three refs of one repository. Their mirror fetches every
branch and tag in one go, so whichever Environment needs a new commit first pays for the
fetch and the others find their commits already there. A fetch happens only when a commit is
missing; concurrent needs are served by one fetch (per set of credentials), and fetches of
one mirror never overlap (git's ref locks would make the second fail).

Background maintenance is off (``gc.auto=0``, ``maintenance.auto=false``): git would otherwise
detach a ``gc`` process that outlives the call, and the mirror only grows by what the remote
has anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from gitopsd.sources import errors
from gitopsd.sources.auth import Access
from gitopsd.sources.gitcmd import GitFailed, GitRunner, classify
from gitopsd.sources.urls import GitURL

log = structlog.get_logger("gitopsd.sources")

_QUIET = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "protocol.version=2")
_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def mirror_dir(root: Path, url: GitURL) -> Path:
    """Where the mirror of ``url`` lives: readable name, hashed key (one per normalised URL)."""
    digest = hashlib.sha256(url.key.encode()).hexdigest()[:16]
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", url.key.rsplit("/", 1)[-1])[:40].strip("-.") or "repo"
    return root / f"{tail}-{digest}.git"


class Mirror:
    """A bare repository holding what was fetched from one URL."""

    def __init__(
        self, path: Path, url: GitURL, runner: GitRunner, on_fetch: Callable[[str, float], None] | None = None
    ) -> None:
        self.path = path
        self.url = url
        self._runner = runner
        self._on_fetch = on_fetch
        self._init_lock = asyncio.Lock()
        self._fetch_lock = asyncio.Lock()  # one git fetch at a time in this mirror
        self._fetches: dict[str, asyncio.Task[None]] = {}  # by credentials fingerprint
        self._ready = False
        self.fetch_count = 0

    async def _ensure_init(self) -> None:
        async with self._init_lock:
            if self._ready:
                return
            if not (self.path / "HEAD").exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(self.path.name + f".init-{time.monotonic_ns()}")
                try:
                    await self._runner.run(["init", "--quiet", "--bare", str(tmp)], cwd=self.path.parent)
                except GitFailed as exc:
                    raise errors.SourceError(f"cannot create the mirror of {self.url} in {tmp}: {exc.stderr}") from None
                try:
                    tmp.rename(self.path)  # atomic: a half-made mirror never has the final name
                except OSError:
                    if not (self.path / "HEAD").exists():
                        raise
                    await asyncio.to_thread(shutil.rmtree, tmp, True)
            self._ready = True

    async def has_commit(self, sha: str) -> bool:
        await self._ensure_init()
        try:
            await self._runner.run(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=self.path)
        except GitFailed:
            return False
        return True

    async def expand(self, short: str) -> str | None:
        """The full id of the commit ``short`` abbreviates in this mirror, None when absent."""
        await self._ensure_init()
        try:
            out = await self._runner.run(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{short}^{{commit}}"], cwd=self.path
            )
        except GitFailed as exc:
            if "ambiguous" in exc.stderr:
                raise errors.RefNotFound(
                    f"{self.url}: commit {short!r} is ambiguous (several commits start with it); give more digits"
                ) from None
            return None
        return out.decode().strip() or None

    async def ensure_commit(self, sha: str, access: Access) -> None:
        """Make sure ``sha`` is here, fetching only when it is not."""
        if await self.has_commit(sha):
            return
        # A fetch already running may have started before the commit was pushed: if it does
        # not bring the commit, fetch once more before giving up.
        joined = access.fingerprint in self._fetches
        await self.fetch(access)
        if await self.has_commit(sha):
            return
        if joined:
            await self.fetch(access)
            if await self.has_commit(sha):
                return
        if _FULL_SHA.match(sha):
            # A commit no branch or tag reaches (a pinned old commit): ask for it by id.
            await self._fetch_one(sha, access)
            if await self.has_commit(sha):
                return
        raise errors.RefNotFound(f"{self.url}: commit {sha} not found (not reachable from any branch or tag)")

    async def fetch(self, access: Access) -> None:
        """Fetch every branch and tag; concurrent callers with the same credentials share one fetch."""
        await self._ensure_init()
        fingerprint = access.fingerprint
        task = self._fetches.get(fingerprint)
        if task is None:
            task = asyncio.ensure_future(self._fetch_all(access))
            self._fetches[fingerprint] = task
            task.add_done_callback(lambda t: self._forget(fingerprint, t))
        await asyncio.shield(task)

    def _forget(self, fingerprint: str, task: asyncio.Task[None]) -> None:
        if self._fetches.get(fingerprint) is task:
            del self._fetches[fingerprint]
        if not task.cancelled():
            task.exception()  # retrieved by the waiters; keeps asyncio from logging it again

    async def _fetch_all(self, access: Access) -> None:
        args = [*_QUIET, "fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head", "--no-recurse-submodules"]
        await self._git_fetch([*args, "--", access.url.git_url, *_REFSPECS], access)

    async def _fetch_one(self, sha: str, access: Access) -> None:
        args = [*_QUIET, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules"]
        with contextlib.suppress(errors.SourceError):
            # Fails when the server does not serve unadvertised commits, or has no such commit.
            await self._git_fetch([*args, "--", access.url.git_url, sha], access)

    async def _git_fetch(self, args: list[str], access: Access) -> None:
        async with self._fetch_lock:
            start = time.monotonic()
            self.fetch_count += 1
            try:
                with access.open() as auth:
                    await self._runner.run(
                        args, cwd=self.path, extra_env=auth.env, secrets=auth.secrets, target=str(access.url)
                    )
            except GitFailed as exc:
                raise classify(exc, access, "fetch") from None
            finally:
                elapsed = time.monotonic() - start
                if self._on_fetch is not None:
                    self._on_fetch(str(access.url), elapsed)
            log.debug("git fetch", url=str(access.url), seconds=round(elapsed, 3))

    async def cancel(self) -> None:
        tasks = list(self._fetches.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):  # closing: the fetch's outcome no longer matters
                await task
