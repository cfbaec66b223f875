"""What an Environment asks for at a revision: its credentials, and its rendered objects with their digest.

Rendering is the expensive part of a reconcile that changes nothing, so the render of an
unchanged commit, spec and set of ``${NAME}`` values is kept in memory with its digest (the
release identity): a steady-state reconcile neither reads the tree nor hashes the bundle again.
What is kept has its strings shared (``reflector.compact``): a YAML parser makes a new string
for every key of every object, and a thousand Environments keep their renders for good.
The ConfigMaps and Secrets of ``spec.substituteFrom`` are read at every render, as Flux does, so
a changed value is a new render (and a new release) without a new commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from gitopsd.errors import GitopsdError, SpecError
from gitopsd.helmoptions import Capabilities, helm_options, read_values
from gitopsd.kube import KubeAPI, NotFound
from gitopsd.kube import secrets as kube_secrets
from gitopsd.kube.discovery import Resource
from gitopsd.kube.reflector import compact
from gitopsd.kube.secretwatch import PlainSecretReader, SecretReader
from gitopsd.model import Manifest, Revision, Tree
from gitopsd.releases import digest_of
from gitopsd.render import RenderOptions, render
from gitopsd.render.errors import UnknownKind
from gitopsd.sources import Credentials, GitSources
from gitopsd.sources.charts import Charts
from gitopsd.sources.charts_http import Login
from gitopsd.spec import Environment, SubstituteFrom, check_variable_name

CONFIG_MAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)


@dataclass(slots=True)
class _Cached:
    key: tuple[str, int, str, str, str]
    manifests: list[Manifest]
    digest: str


class Desired:
    """Renders of each Environment (by uid), the last one kept."""

    def __init__(
        self, kube: KubeAPI, sources: GitSources, kustomize_timeout: float = 60.0, charts: Charts | None = None
    ) -> None:
        self.kube = kube
        self.sources = sources
        self.kustomize_timeout = kustomize_timeout
        #: Charts of ``spec.chart`` (kept beside the Git mirrors, shared by every Environment).
        self.charts = charts or Charts(sources.cache_dir.parent / "charts")
        self.capabilities = Capabilities()  # the management cluster's (``kube``)
        #: Each remote target's (a target rebuilt from a rotated kubeconfig starts afresh).
        self._target_capabilities: weakref.WeakKeyDictionary[KubeAPI, Capabilities] = weakref.WeakKeyDictionary()
        self._renders: dict[str, _Cached] = {}

    def forget(self, uid: str) -> None:
        self._renders.pop(uid, None)
        self.charts.forget(uid)

    def _dependency_fetcher(self) -> Callable[[str, str, str], Path]:
        """Fetches a chart's ``Chart.lock`` entry from the render's worker thread, on this loop's cache."""
        loop = asyncio.get_running_loop()

        def fetch(repository: str, name: str, version: str) -> Path:
            future = asyncio.run_coroutine_threadsafe(self.charts.dependency(repository, name, version), loop)
            return future.result(timeout=self.kustomize_timeout)

        return fetch

    def _capabilities_of(self, cluster: KubeAPI) -> Capabilities:
        if cluster is self.kube:
            return self.capabilities
        found = self._target_capabilities.get(cluster)
        if found is None:
            found = self._target_capabilities[cluster] = Capabilities()
        return found

    async def render(
        self,
        env: Environment,
        revision: Revision,
        creds: Credentials | Login | None,
        *,
        cluster: KubeAPI | None = None,
    ) -> tuple[list[Manifest], str]:
        """The objects ``env`` renders to at ``revision``, and their digest.

        ``cluster``: where the objects go (default: ``kube``). Its discovery says which kinds are
        namespaced and which API versions Helm sees, its ``/version`` Helm's kube version: a CRD
        served only by the target renders as it is there. Substitution and ``valuesFrom`` objects
        are read beside the Environment, on ``kube``.
        """
        cluster = cluster if cluster is not None else self.kube
        values = await substitution_values(self.kube, env)
        helm_values = await read_values(self.kube, env)
        key = (
            revision.commit,
            env.generation,
            _fingerprint(values),
            hashlib.sha256(repr(helm_values).encode()).hexdigest(),
            cluster.server,  # a kubeconfig Secret now naming another cluster: render for that one
        )
        cached = self._renders.get(env.uid)
        if cached is not None and cached.key == key:
            return cached.manifests, cached.digest
        tree: Tree
        if env.spec.chart is not None:
            login = creds if isinstance(creds, Login) else None
            tree, path = await self.charts.tree(env.spec.chart, revision, login, owner=env.uid)  # kept while deployed
        else:
            git_creds = creds if isinstance(creds, Credentials) else None
            tree, path = await self.sources.tree(env.spec.source, git_creds, revision), env.spec.source.path
        await cluster.discovery.ensure()
        options = RenderOptions(
            path=path,
            environment=env.name,
            revision=revision,
            substitute=values,
            target_namespace=env.spec.target_namespace,
            kustomize_timeout=self.kustomize_timeout,
            helm=replace(
                await helm_options(cluster, env, self._capabilities_of(cluster), helm_values),
                fetch_dependency=self._dependency_fetcher(),
            ),
        )
        try:
            manifests = await asyncio.to_thread(render, tree, options, cluster.discovery.scopes())
        except UnknownKind:
            # Maybe a CRD established since discovery was cached: look once more, then believe it.
            await cluster.discovery.refresh(force=False)
            manifests = await asyncio.to_thread(render, tree, options, cluster.discovery.scopes())
        manifests, digest = await asyncio.to_thread(_kept, manifests)
        self._renders[env.uid] = _Cached(key, manifests, digest)
        return manifests, digest


def _kept(manifests: list[Manifest]) -> tuple[list[Manifest], str]:
    """``manifests`` as kept (equal objects, strings shared), and their digest."""
    kept = [Manifest(compact(m.obj), m.origin) for m in manifests]
    return kept, digest_of(kept)


async def load_credentials(kube: KubeAPI, env: Environment, secrets: SecretReader | None = None) -> Credentials | None:
    """The Git credentials named by ``spec.source.secretRef`` (None when it names none), read
    through ``secrets`` (the daemon's watch of them; default: a GET over ``kube``, as the CLI does)."""
    name = env.spec.source.secret_name
    if not name:
        return None
    reader = secrets if secrets is not None else PlainSecretReader(kube)
    secret = await reader.read(env.namespace, name, where="spec.source.secretRef")
    return Credentials.from_secret(dict(secret), f"{env.namespace}/{name}")


async def substitution_values(kube: KubeAPI, env: Environment) -> Mapping[str, str] | None:
    """The ``${NAME}`` values of ``env``: its ``substituteFrom`` objects in order, then ``substitute``
    (None when substitution is off)."""
    if env.spec.substitute is None:
        return None
    values: dict[str, str] = {}
    for ref in env.spec.substitute_from:
        values.update(await _values_of(kube, env.namespace, ref))
    values.update(env.spec.substitute)
    return values


async def _values_of(kube: KubeAPI, namespace: str, ref: SubstituteFrom) -> dict[str, str]:
    where = f"spec.substituteFrom: {ref.kind} {namespace}/{ref.name}"
    try:
        if ref.kind == "ConfigMap":
            data = (await kube.get(CONFIG_MAPS.path(namespace, ref.name))).get("data") or {}
            values = {str(key): str(value) for key, value in data.items()}
        else:
            secret = await kube_secrets.read(kube, namespace, ref.name, where="spec.substituteFrom")
            values = {key: secret.text(key) for key in secret}
    except (NotFound, kube_secrets.SecretNotFound):
        if ref.optional:
            return {}
        raise GitopsdError(f"{where} not found (set optional: true to skip it)", reason="SubstitutionFailed") from None
    except kube_secrets.SecretError as exc:  # a value not base64 or not UTF-8 text: named by key
        raise GitopsdError(str(exc), reason="SubstitutionFailed") from None
    for key in values:
        try:
            check_variable_name(key, "")
        except SpecError as exc:
            raise GitopsdError(f"{where}: key {key!r}: {exc}", reason="SubstitutionFailed") from None
    return values


def _fingerprint(values: Mapping[str, str] | None) -> str:
    if values is None:
        return ""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
