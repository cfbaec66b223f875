"""What an Environment asks for at a revision: its credentials, and its rendered objects with their digest.

Rendering is the expensive part of a reconcile that changes nothing, so the render of an
unchanged commit and spec is kept in memory with its digest (the release identity): a
steady-state reconcile neither reads the tree nor hashes the bundle again.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from gitopsd.errors import GitopsdError
from gitopsd.kube import Kube, NotFound
from gitopsd.kube.discovery import Resource
from gitopsd.model import Manifest, Revision
from gitopsd.releases import digest_of
from gitopsd.render import RenderOptions, render
from gitopsd.render.errors import UnknownKind
from gitopsd.sources import Credentials, GitSources
from gitopsd.spec import Environment

SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)


@dataclass(slots=True)
class _Cached:
    key: tuple[str, int]
    manifests: list[Manifest]
    digest: str


class Desired:
    """Renders of each Environment (by uid), the last one kept."""

    def __init__(self, kube: Kube, sources: GitSources, kustomize_timeout: float = 60.0) -> None:
        self.kube = kube
        self.sources = sources
        self.kustomize_timeout = kustomize_timeout
        self._renders: dict[str, _Cached] = {}

    def forget(self, uid: str) -> None:
        self._renders.pop(uid, None)

    async def render(
        self, env: Environment, revision: Revision, creds: Credentials | None
    ) -> tuple[list[Manifest], str]:
        """The objects ``env`` renders to at ``revision``, and their digest."""
        key = (revision.commit, env.generation)
        cached = self._renders.get(env.uid)
        if cached is not None and cached.key == key:
            return cached.manifests, cached.digest
        tree = await self.sources.tree(env.spec.source, creds, revision)
        await self.kube.discovery.ensure()
        options = RenderOptions(
            path=env.spec.source.path,
            environment=env.name,
            revision=revision,
            substitute=env.spec.substitute,
            target_namespace=env.spec.target_namespace,
            kustomize_timeout=self.kustomize_timeout,
        )
        try:
            manifests = await asyncio.to_thread(render, tree, options, self.kube.discovery.scopes())
        except UnknownKind:
            # Maybe a CRD established since discovery was cached: look once more, then believe it.
            await self.kube.discovery.refresh(force=False)
            manifests = await asyncio.to_thread(render, tree, options, self.kube.discovery.scopes())
        digest = await asyncio.to_thread(digest_of, manifests)
        self._renders[env.uid] = _Cached(key, manifests, digest)
        return manifests, digest


async def load_credentials(kube: Kube, env: Environment) -> Credentials | None:
    """The Git credentials named by ``spec.source.secretRef`` (None when it names none)."""
    name = env.spec.source.secret_name
    if not name:
        return None
    try:
        secret = await kube.get(SECRETS.path(env.namespace, name))
    except NotFound:
        raise GitopsdError(
            f"spec.source.secretRef: Secret {env.namespace}/{name} not found", reason="SecretNotFound"
        ) from None
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return Credentials.from_secret(data, f"{env.namespace}/{name}")
