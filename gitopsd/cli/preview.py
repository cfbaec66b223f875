"""Fetch and render an Environment's source on this machine, as the daemon would (for render and diff)."""

from __future__ import annotations

import asyncio

from gitopsd.cli.common import cache_dir
from gitopsd.kube import Kube
from gitopsd.model import Manifest, Revision
from gitopsd.reconcile import load_credentials
from gitopsd.render import RenderOptions, render
from gitopsd.sources import GitSources
from gitopsd.spec import Environment


async def render_environment(kube: Kube, env: Environment) -> tuple[Revision, list[Manifest]]:
    creds = await load_credentials(kube, env)
    sources = GitSources(cache_dir() / "git")
    try:
        revision = await sources.resolve(env.spec.source, creds)
        tree = await sources.tree(env.spec.source, creds, revision)
        await kube.discovery.ensure()
        options = RenderOptions(
            path=env.spec.source.path,
            environment=env.name,
            revision=revision,
            substitute=env.spec.substitute,
            target_namespace=env.spec.target_namespace,
        )
        manifests = await asyncio.to_thread(render, tree, options, kube.discovery.scopes())
    finally:
        await sources.close()
    return revision, manifests
