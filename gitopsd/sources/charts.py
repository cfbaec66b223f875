"""Charts from Helm repositories, fetched once and shared by every Environment that uses them.

``Charts.resolve`` picks the chart version an Environment's ``spec.chart`` points at now:
the newest version in its range (``semver``, the tag-range rules) among what the repository
lists: ``index.yaml`` of an HTTP repository, or the tags of an OCI repository. The listing of one
repository is fetched at most once per ``max_age`` (the Environment's interval; 0 when the run is
``fresh``) and shared: fifty Environments on one repository cost one index fetch per interval,
and concurrent resolves wait for the one fetch in flight. Listings and archives are kept per
credentials (``login_key``): Environments share them only when they present the same login, so
the cache never hands a private chart to an Environment the repository would refuse.

``Charts.tree`` returns the chart at that version as a ``model.Tree``: the archive is downloaded
once per (repository, name, version), its sha256 checked against the digest the index (or the
OCI manifest) announced, kept on disk under ``cache_dir`` and unpacked once (``tarfile``'s
``data`` filter: no links out, no devices, no absolute paths; size and entry count bounded).
``Charts.checkout`` does the same and keeps the chart from being pruned while the block runs (a
render in flight) and, with an ``owner``, for as long as that Environment deploys it: the cache
is bounded by age and size (``charts_cache``).

The release record keeps the rendered objects, not the chart, so a rollback never needs the
repository (``releases``).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tarfile
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitopsd import semver
from gitopsd.model import Revision
from gitopsd.render.helmspec import ChartSpec
from gitopsd.sources.charts_cache import CacheLimits, ChartCache
from gitopsd.sources.charts_http import (
    MAX_CHART_BYTES,
    MAX_INDEX_BYTES,
    MAX_LISTED_VERSIONS,
    ChartInvalid,
    ChartNotFound,
    ChartTooLarge,
    ChartVersionNotFound,
    Http,
    Login,
    Registry,
    check_digest,
    check_status,
    same_origin,
)
from gitopsd.sources.tree import LocalTree
from gitopsd.sources.urls import redact_url

MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 10_000
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Listed:
    """One version of a chart as the repository lists it."""

    version: str
    urls: tuple[str, ...] = ()
    digest: str = ""


@dataclass(slots=True)
class _Listing:
    fetched_at: float
    charts: dict[str, dict[str, Listed]]  # name -> version -> Listed


@dataclass(slots=True)
class ChartStats:
    index_fetches: int = 0
    downloads: int = 0
    by_repository: dict[str, int] = field(default_factory=dict)


class Charts:
    """Chart listings and archives of every repository the daemon's Environments use."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        timeout: float = 60.0,
        limits: CacheLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache = ChartCache(self.cache_dir, limits, clock=clock)
        self.http = Http(timeout)
        self.stats = ChartStats()
        self._listings: dict[tuple[str, str, str], _Listing] = {}
        self._locks: defaultdict[object, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def close(self) -> None:
        await self.http.close()

    async def resolve(self, chart: ChartSpec, login: Login | None, *, max_age: float) -> Revision:
        """``name@version`` of the newest version of ``chart`` in its range."""
        if self.cache.due():
            await self.cache.prune()
        versions = await self._versions(chart, login, max_age)
        constraint = semver.parse_constraint(chart.version)
        chosen = semver.newest(versions, constraint)
        if chosen is None:
            shown = ", ".join(semver.newest_first(versions)[:10]) or "none"
            raise ChartVersionNotFound(
                f"{redact_url(chart.repository)}: chart {chart.name} has no version in {chart.version!r}"
                f" (newest listed: {shown})"
            )
        return Revision(chart.name, chosen, chart=True)

    async def tree(
        self, chart: ChartSpec, revision: Revision, login: Login | None, *, owner: str | None = None
    ) -> tuple[LocalTree, str]:
        """The unpacked chart at ``revision`` and the path of its directory in that tree. Kept while
        ``owner`` (an Environment's uid: one render at a time) deploys it; else for ``grace`` after
        this call, or pinned for a block with ``checkout``."""
        async with self.checkout(chart, revision, login, owner=owner) as found:
            return found

    @asynccontextmanager
    async def checkout(
        self, chart: ChartSpec, revision: Revision, login: Login | None, *, owner: str | None = None
    ) -> AsyncIterator[tuple[LocalTree, str]]:
        """``tree``, kept on disk while the block runs; ``owner`` (an Environment's uid) deploys it now."""
        slot = _slot(chart.repository, chart.name, revision.commit, login)
        with self.cache.pinned(slot):
            unpacked, made = self.cache.unpacked(slot), False
            async with self.cache.lock("unpacked", slot):
                if not unpacked.is_dir():
                    async with self.cache.lock("archive", slot):
                        archive = await self._archive(chart, revision.commit, login, slot)
                    await asyncio.to_thread(_unpack, archive, unpacked, f"{chart.name}@{revision.commit}")
                    made = True
                self.cache.touch(slot)
            if owner is not None:
                self.cache.own(owner, slot)
            if made:
                await self.cache.prune()
            top = next((p.name for p in sorted(unpacked.iterdir()) if (p / "Chart.yaml").is_file()), None)
            if top is None:
                what = f"{chart.name}@{revision.commit}"
                raise ChartInvalid(f"{what}: the archive holds no chart directory")
            yield LocalTree(unpacked), top

    def forget(self, owner: str) -> None:
        """``owner`` is gone: what it deployed may be pruned once idle."""
        self.cache.forget(owner)

    async def dependency(self, repository: str, name: str, version: str) -> Path:
        """The packaged chart of a ``Chart.lock`` entry (exact version), downloaded once and kept
        (not pruned within ``CacheLimits.grace`` of this call: the render copies it at once)."""
        chart = ChartSpec(repository, name, version)
        slot = _slot(repository, name, version, None)
        with self.cache.pinned(slot):
            async with self.cache.lock("archive", slot):
                archive = await self._archive(chart, version, None, slot)
                self.cache.touch(slot)
            return archive

    async def _versions(self, chart: ChartSpec, login: Login | None, max_age: float) -> list[str]:
        if not chart.oci:
            listing = await self._listing(chart.repository, login, max_age)
            found = listing.charts.get(chart.name)
            if not found:
                raise ChartNotFound(f"{redact_url(chart.repository)}: the index lists no chart {chart.name!r}")
            return list(found)
        key = (chart.repository, chart.name, login_key(login))
        async with self._locks[("listing", key)]:
            cached = self._listings.get(key)
            if cached is None or time.monotonic() - cached.fetched_at >= max_age:
                tags = await Registry(self.http, chart.repository).tags(chart.name, login)
                self._count_index(chart.repository)
                cached = self._listings[key] = _Listing(time.monotonic(), {chart.name: {t: Listed(t) for t in tags}})
        return list(cached.charts.get(chart.name) or {})

    async def _listing(self, repository: str, login: Login | None, max_age: float) -> _Listing:
        key = (repository, "", login_key(login))
        async with self._locks[("listing", key)]:
            cached = self._listings.get(key)
            if cached is not None and time.monotonic() - cached.fetched_at < max_age:
                return cached
            url = f"{repository}/index.yaml"
            status, body, _ = await self.http.get(url, MAX_INDEX_BYTES, login=login)
            check_status(url, status, "index.yaml")
            self._count_index(repository)
            charts = await asyncio.to_thread(_parse_index, url, body)
            cached = self._listings[key] = _Listing(time.monotonic(), charts)
            return cached

    def _count_index(self, repository: str) -> None:
        self.stats.index_fetches += 1
        self.stats.by_repository[repository] = self.stats.by_repository.get(repository, 0) + 1

    async def _archive(self, chart: ChartSpec, version: str, login: Login | None, slot: str) -> Path:
        archive = self.cache.archive(slot)
        if archive.is_file():
            return archive
        if chart.oci:
            body, _digest = await Registry(self.http, chart.repository).chart(chart.name, version, login)
        else:
            listing = await self._listing(chart.repository, login, max_age=float("inf"))
            listed = (listing.charts.get(chart.name) or {}).get(version)
            if listed is None or not listed.urls:
                raise ChartVersionNotFound(
                    f"{redact_url(chart.repository)}: chart {chart.name} version {version} is not in the index"
                )
            url = listed.urls[0]
            if "://" not in url:
                url = f"{chart.repository}/{url.lstrip('/')}"
            if not url.startswith(("https://", "http://")):
                raise ChartInvalid(
                    f"{redact_url(chart.repository)}: chart {chart.name} version {version} is listed at"
                    f" {redact_url(url)!r}, not an http(s) URL"
                )
            login = login if same_origin(url, chart.repository) else None  # never to a host the index names
            status, body, _ = await self.http.get(url, MAX_CHART_BYTES, login=login)
            check_status(url, status, f"chart {chart.name} version {version}")
            check_digest(url, body, listed.digest)
        self.stats.downloads += 1
        archive.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = archive.with_name(f".{archive.name}.{uuid.uuid4().hex[:8]}")
        partial.write_bytes(body)
        partial.rename(archive)
        return archive


def _slot(repository: str, name: str, version: str, login: Login | None) -> str:
    """The cache entry of one (repository, name, version, login)."""
    return hashlib.sha256("\0".join((repository, name, version, login_key(login))).encode()).hexdigest()[:32]


def login_key(login: Login | None) -> str:
    """What of the credentials a cached listing or archive is kept under: one Environment's valid login
    never lets another Environment, with no or wrong credentials, read a private chart from the cache."""
    if login is None:
        return ""
    return hashlib.sha256(f"{login.username}\0{login.password}".encode()).hexdigest()[:32]


def _parse_index(url: str, body: bytes) -> dict[str, dict[str, Listed]]:
    """The versions an ``index.yaml`` lists. Only scalars are read (a YAML alias can make one small
    document stand for an exponential one: nothing here expands it) and at most ``MAX_LISTED_VERSIONS``."""
    try:
        index = yaml.load(body, Loader=_LOADER)  # noqa: S506 - a safe loader (the C one when built)
    except yaml.YAMLError as exc:
        raise ChartInvalid(f"{redact_url(url)} is not YAML: {str(exc)[:200]}") from None
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, dict):
        raise ChartInvalid(f"{redact_url(url)} is not a Helm repository index (no entries)")
    charts: dict[str, dict[str, Listed]] = {}
    count = 0
    for name, versions in entries.items():
        if not isinstance(name, str) or not isinstance(versions, list):
            continue
        listed = charts.setdefault(name, {})
        for item in versions:
            count += 1
            if count > MAX_LISTED_VERSIONS:
                raise ChartInvalid(f"{redact_url(url)} lists more than {MAX_LISTED_VERSIONS} chart versions")
            version = item.get("version") if isinstance(item, dict) else None
            if not isinstance(version, (str, int, float)) or isinstance(version, bool):
                continue
            urls = item.get("urls")
            kept = tuple(u for u in urls[:4] if isinstance(u, str)) if isinstance(urls, list) else ()
            digest = item.get("digest")
            listed[str(version)] = Listed(str(version), kept, digest if isinstance(digest, str) else "")
    return charts


def _unpack(archive: Path, dest: Path, what: str) -> None:
    """Unpack a packaged chart into ``dest`` (made whole or not at all).

    Headers are read one by one and the limits checked as they come, so a compressed bomb is
    refused after at most ``MAX_UNPACKED_BYTES`` of it were inflated, not after all of it.
    """
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members, total = [], 0
            for member in tar:
                members.append(member)
                total += member.size
                if len(members) > MAX_ENTRIES:
                    raise ChartTooLarge(f"{what}: the archive holds more than {MAX_ENTRIES} entries")
                if total > MAX_UNPACKED_BYTES:
                    raise ChartTooLarge(
                        f"{what}: the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes"
                        f" ({member.name!r} alone is {member.size})"
                    )
                if member.name.startswith("/"):
                    raise ChartInvalid(f"{what}: the archive holds an absolute path ({member.name!r})")
            partial.mkdir(parents=True, mode=0o700)
            tar.extractall(partial, members=members, filter="data")
        if not any((p / "Chart.yaml").is_file() for p in partial.iterdir()):
            raise ChartInvalid(f"{what}: the archive holds no chart directory")
        partial.rename(dest)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ChartInvalid(f"{what}: the archive cannot be unpacked: {exc}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
