"""The chart cache is bounded: idle entries and the least recently used over the size cap go, never one in use."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e.helmrepo import HelmRepo
from gitopsd.model import Revision
from gitopsd.render.helmspec import parse_chart
from gitopsd.sources.charts import Charts
from gitopsd.sources.charts_cache import CacheLimits, Entry, victims
from tests.gitopsd.helm.conftest import shop_chart

HOUR = 3600.0
LIMITS = CacheLimits(max_bytes=1000, max_idle=24 * HOUR, grace=600.0)


def test_victims_are_the_idle_then_the_least_recently_used_over_the_cap() -> None:
    """Idle past max_idle: removed; over the cap: oldest first until it fits; in use or within grace: kept."""
    now = 100 * HOUR
    entries = {
        "idle": Entry(10, now - 25 * HOUR),
        "idle-owned": Entry(10, now - 48 * HOUR),
        "old": Entry(400, now - 5 * HOUR),
        "older": Entry(400, now - 6 * HOUR),
        "recent": Entry(400, now - 1 * HOUR),
        "rendering": Entry(400, now - 30 * HOUR),
        "just-used": Entry(5000, now - 60),
    }
    chosen = victims(entries, {"idle-owned", "rendering"}, now, LIMITS)
    # 6620 bytes; idle goes (6610); then the least recently used free ones: older, old, recent (5410);
    # what is left is in use or within grace, so the cap cannot be met and nothing else goes.
    assert chosen == ["idle", "older", "old", "recent"]
    assert victims(entries, set(), now, CacheLimits(max_bytes=10**9, max_idle=24 * HOUR)) == [
        "idle-owned",
        "rendering",
        "idle",
    ]  # under the cap: only the idle ones, oldest first
    assert victims({}, set(), now, LIMITS) == []


def test_charts_prune_idle_versions_but_keep_the_deployed_and_the_rendering_ones(tmp_path: Path) -> None:
    """Three versions fetched; a day later the one an Environment deploys and the one a render holds stay,
    the third is removed (archive and unpacked directory) and is downloaded again when asked for; a forgotten
    Environment's version goes at the next prune."""
    repo = HelmRepo(tmp_path / "repo").start()
    try:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            repo.publish(shop_chart(tmp_path / version, version))
        chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.x"})
        assert chart is not None
        clock = [1_000_000.0]
        cache = tmp_path / "cache"

        async def scenario() -> None:
            charts = Charts(cache, limits=CacheLimits(max_idle=24 * HOUR), clock=lambda: clock[0])
            v100, v110, v120 = (Revision("shop", v, chart=True) for v in ("1.0.0", "1.1.0", "1.2.0"))
            await charts.tree(chart, v100, None, owner="uid-a")  # Environment a deploys 1.0.0
            await charts.tree(chart, v110, None)
            await charts.tree(chart, v120, None)
            assert len(list((cache / "unpacked").iterdir())) == 3 and len(list((cache / "archives").iterdir())) == 3
            clock[0] += 25 * HOUR
            async with charts.checkout(chart, v120, None):  # a render in flight holds 1.2.0...
                clock[0] += 25 * HOUR  # ...while a day passes (its touch is old again)
                removed = await charts.cache.prune()
                assert len(removed) == 1  # 1.1.0: idle, not deployed, not rendering
                tree, path = await charts.tree(chart, v120, None)
                assert f"{path}/Chart.yaml" in tree.files(path)
            assert len(list((cache / "archives").iterdir())) == 2
            assert repo.counts["/shop-1.1.0.tgz"] == 1
            tree, path = await charts.tree(chart, v110, None)  # asked again: downloaded again
            assert b"version: 1.1.0" in tree.files(path)[f"{path}/Chart.yaml"]
            assert repo.counts["/shop-1.1.0.tgz"] == 2
            charts.forget("uid-a")  # Environment a deleted
            clock[0] += 25 * HOUR
            assert len(await charts.cache.prune()) == 3
            assert list((cache / "archives").iterdir()) == [] and list((cache / "unpacked").iterdir()) == []

        asyncio.run(scenario())
    finally:
        repo.stop()


def test_charts_over_the_size_cap_evict_the_least_recently_used_after_a_download(tmp_path: Path) -> None:
    """With room for about one chart, each new download evicts the least recently used one past its grace;
    the version an Environment deploys is never evicted (the cache may then stay over the cap)."""
    repo = HelmRepo(tmp_path / "repo").start()
    try:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            repo.publish(shop_chart(tmp_path / version, version))
        chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.x"})
        assert chart is not None
        clock = [1_000_000.0]
        cache = tmp_path / "cache"

        async def scenario() -> None:
            charts = Charts(cache, limits=CacheLimits(max_bytes=1, grace=60.0), clock=lambda: clock[0])
            v100, v110, v120 = (Revision("shop", v, chart=True) for v in ("1.0.0", "1.1.0", "1.2.0"))
            await charts.tree(chart, v100, None, owner="uid-a")
            clock[0] += 120
            await charts.tree(chart, v110, None)
            clock[0] += 120
            await charts.tree(chart, v120, None)  # over the cap: 1.1.0 (free, past grace) goes; 1.0.0 is deployed
            assert charts.cache.removed == 1
            entries = charts.cache.scan()
            assert len(entries) == 2 and sum(e.size for e in entries.values()) > 1  # in use: kept over the cap
            await charts.tree(chart, v110, None)
            assert repo.counts["/shop-1.1.0.tgz"] == 2

        asyncio.run(scenario())
    finally:
        repo.stop()
