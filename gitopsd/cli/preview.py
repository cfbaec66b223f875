"""Fetch and render an Environment's source on this machine, as the daemon would (for render and diff)."""

from __future__ import annotations

from gitopsd.cli.common import cache_dir
from gitopsd.desired import Desired, load_credentials
from gitopsd.gitsource import chart_login
from gitopsd.kube import Kube, KubeAPI
from gitopsd.model import Manifest, Revision
from gitopsd.sources import GitSources
from gitopsd.spec import Environment


async def render_environment(
    kube: Kube, env: Environment, cluster: KubeAPI | None = None
) -> tuple[Revision, list[Manifest]]:
    """``cluster``: the one the objects go to (a remote target: ``cli.target``), whose discovery the
    render asks, as the daemon's does; default ``kube``."""
    sources = GitSources(cache_dir() / "git")
    desired = Desired(kube, sources)  # charts (spec.chart) are kept in cache_dir()/charts
    try:
        if env.spec.chart is not None:
            login = await chart_login(kube, env)
            revision = await desired.charts.resolve(env.spec.chart, login, max_age=0)
            manifests, _digest = await desired.render(env, revision, login, cluster=cluster)
        else:
            creds = await load_credentials(kube, env)
            revision = await sources.resolve(env.spec.source, creds)
            manifests, _digest = await desired.render(env, revision, creds, cluster=cluster)
    finally:
        await desired.charts.close()
        await sources.close()
    return revision, manifests
