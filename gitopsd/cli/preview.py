"""Fetch and render an Environment's source on this machine, as the daemon would (for render and diff)."""

from __future__ import annotations

from gitopsd.cli.common import cache_dir
from gitopsd.desired import Desired, load_credentials
from gitopsd.kube import Kube
from gitopsd.model import Manifest, Revision
from gitopsd.sources import GitSources
from gitopsd.spec import Environment


async def render_environment(kube: Kube, env: Environment) -> tuple[Revision, list[Manifest]]:
    creds = await load_credentials(kube, env)
    sources = GitSources(cache_dir() / "git")
    try:
        revision = await sources.resolve(env.spec.source, creds)
        manifests, _digest = await Desired(kube, sources).render(env, revision, creds)
    finally:
        await sources.close()
    return revision, manifests
