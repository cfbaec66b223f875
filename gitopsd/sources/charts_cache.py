"""The chart cache on disk (archives and unpacked charts), bounded.

Every version an Environment ever deployed would otherwise stay on disk for good: a repository
publishing a version a day fills the daemon's volume in time. An entry (one slot: an archive
under ``archives/`` and, for a chart an Environment deploys, its unpacked directory under
``unpacked/``) is removed when

- it is **idle**: not used for ``max_idle`` (24 h; its last use is its files' mtime, touched at
  each use, so it survives a restart), or
- the cache is over ``max_bytes`` (1 GiB): the least recently used entries go first until it
  fits;

but never while it is **in use**: pinned by a render in flight (``pinned``), the version an
Environment deploys now (``own``, until the Environment is deleted: ``forget``), or used within
the last ``grace`` (10 min, longer than a render's deadline: covers the ``Chart.lock``
dependencies a render copies right after asking for them). What is in use stays even over the
size cap. A removed entry is downloaded again if it is asked for again.

``prune`` runs after a new entry is made and, at most every ``check_every``, when a chart is
resolved. Removal takes the slot's locks (the same ones a fetch takes), and checks the pins
again under them, so a fetch of that slot waits and finds it whole or gone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("gitopsd.sources")


@dataclass(frozen=True, slots=True)
class CacheLimits:
    max_bytes: int = 1024 * 1024 * 1024
    max_idle: float = 24 * 3600.0
    grace: float = 600.0
    check_every: float = 600.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One slot on disk: its size (archive and unpacked files) and when it was last used (epoch seconds)."""

    size: int
    last_used: float


def victims(entries: Mapping[str, Entry], in_use: Collection[str], now: float, limits: CacheLimits) -> list[str]:
    """The slots to remove: the idle ones, then the least recently used until the rest fits ``max_bytes``.
    Slots ``in_use`` or used within ``grace`` are never chosen."""
    free = sorted(
        (slot for slot, e in entries.items() if slot not in in_use and now - e.last_used >= limits.grace),
        key=lambda slot: (entries[slot].last_used, slot),
    )
    chosen = [slot for slot in free if now - entries[slot].last_used >= limits.max_idle]
    size = sum(e.size for e in entries.values()) - sum(entries[slot].size for slot in chosen)
    for slot in free:
        if size <= limits.max_bytes:
            break
        if slot not in chosen:
            chosen.append(slot)
            size -= entries[slot].size
    return chosen


class ChartCache:
    """Where archives and unpacked charts live, who uses which, and their pruning."""

    def __init__(
        self, root: Path, limits: CacheLimits | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = Path(root)
        self.limits = limits or CacheLimits()
        self.clock = clock
        self.removed = 0  # entries pruned, for tests and the bench
        self._pins: Counter[str] = Counter()
        self._owners: dict[str, str] = {}  # owner (an Environment's uid) -> the slot it deploys
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pruning = asyncio.Lock()
        self._checked = time.monotonic()

    def archive(self, slot: str) -> Path:
        return self.root / "archives" / f"{slot}.tgz"

    def unpacked(self, slot: str) -> Path:
        return self.root / "unpacked" / slot

    def lock(self, what: str, slot: str) -> asyncio.Lock:
        """The lock of ``slot``'s archive (``"archive"``) or unpacked directory (``"unpacked"``)."""
        return self._locks[(what, slot)]

    @contextmanager
    def pinned(self, slot: str) -> Iterator[None]:
        """``slot`` is not removed inside this block."""
        self._pins[slot] += 1
        try:
            yield
        finally:
            self._pins[slot] -= 1
            if self._pins[slot] <= 0:
                del self._pins[slot]

    def own(self, owner: str, slot: str) -> None:
        """``owner`` deploys ``slot`` now (replacing what it deployed before)."""
        self._owners[owner] = slot

    def forget(self, owner: str) -> None:
        self._owners.pop(owner, None)

    def in_use(self) -> set[str]:
        return set(self._pins) | set(self._owners.values())

    def touch(self, slot: str) -> None:
        """Mark ``slot`` used now (its files' mtime)."""
        now = self.clock()
        for path in (self.archive(slot), self.unpacked(slot)):
            with suppress(OSError):  # not there: a dependency has no unpacked directory
                os.utime(path, (now, now))

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.limits.check_every

    async def prune(self) -> list[str]:
        """Remove what ``victims`` chooses; the slots removed. One prune at a time; never raises."""
        if self._pruning.locked():
            return []
        async with self._pruning:
            self._checked = time.monotonic()
            try:
                entries = await asyncio.to_thread(self.scan)
            except OSError as exc:
                log.warning("chart cache not pruned", error=str(exc))
                return []
            removed = []
            for slot in victims(entries, self.in_use(), self.clock(), self.limits):
                async with self.lock("unpacked", slot), self.lock("archive", slot):
                    if slot in self.in_use():  # pinned while we waited for its locks
                        continue
                    await asyncio.to_thread(self._remove, slot)
                removed.append(slot)
            if removed:
                self.removed += len(removed)
                log.info("chart cache pruned", removed=len(removed))
            return removed

    def scan(self) -> dict[str, Entry]:
        """Every slot on disk (files being written, named ``.*``, are not slots)."""
        sizes: dict[str, int] = {}
        used: dict[str, float] = {}
        archives, unpacked = self.root / "archives", self.root / "unpacked"
        for path in archives.glob("*.tgz") if archives.is_dir() else ():
            if not path.name.startswith("."):
                stat = path.stat()
                slot = path.name.removesuffix(".tgz")
                sizes[slot] = sizes.get(slot, 0) + stat.st_size
                used[slot] = max(used.get(slot, 0.0), stat.st_mtime)
        for path in unpacked.iterdir() if unpacked.is_dir() else ():
            if not path.name.startswith("."):
                sizes[path.name] = sizes.get(path.name, 0) + _tree_size(path)
                used[path.name] = max(used.get(path.name, 0.0), path.stat().st_mtime)
        return {slot: Entry(sizes[slot], used[slot]) for slot in sizes}

    def _remove(self, slot: str) -> None:
        shutil.rmtree(self.unpacked(slot), ignore_errors=True)
        self.archive(slot).unlink(missing_ok=True)


def _tree_size(path: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total
