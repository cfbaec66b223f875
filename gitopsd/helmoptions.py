"""What ``helm template`` is told about one Environment: release, namespace, cluster, values.

The renderer (``render.helm``) runs offline in a thread and knows nothing of the cluster, so
everything it needs from there is read here first: the cluster's version (``/version``, read
once per process) and served API versions (discovery), so ``.Capabilities`` answer as on a real
install, and the values of ``spec.helm.valuesFrom`` (read at every render, as Flux does, so a
changed ConfigMap is a new render without a new commit).

Values are layered as Helm layers ``-f`` files, later winning: ``valuesFiles`` (in the chart),
then ``valuesFrom`` in order, then ``values``.
"""

from __future__ import annotations

import json

from gitopsd.errors import GitopsdError
from gitopsd.kube import KubeAPI, NotFound
from gitopsd.kube import secrets as kube_secrets
from gitopsd.kube.discovery import Resource
from gitopsd.render.helm import HelmOptions
from gitopsd.render.helmspec import ValuesFrom
from gitopsd.spec import Environment

CONFIG_MAPS = Resource("", "v1", "ConfigMap", "configmaps", namespaced=True)


class ValuesFromNotFound(GitopsdError):
    """A ``spec.helm.valuesFrom`` object or key that is not there (and not optional)."""

    reason = "ValuesFromNotFound"


class Capabilities:
    """The cluster's version, read once (a cluster upgrade restarts nothing, but is rare)."""

    def __init__(self) -> None:
        self.kube_version: str | None = None

    async def version(self, kube: KubeAPI) -> str | None:
        if self.kube_version is None:
            info = await kube.get("/version")
            self.kube_version = str(info.get("gitVersion") or "") or None
        return self.kube_version


async def read_values(kube: KubeAPI, env: Environment) -> tuple[tuple[str, str], ...]:
    """The values documents of ``env`` after its values files, in order: valuesFrom, then values."""
    helm = env.spec.helm
    values = [await _values_of(kube, env.namespace, index, ref) for index, ref in enumerate(helm.values_from)]
    if helm.values:
        values.append(("spec.helm.values", json.dumps(dict(helm.values))))
    return tuple((origin, text) for origin, text in values if text is not None)


async def helm_options(
    kube: KubeAPI, env: Environment, capabilities: Capabilities, values: tuple[tuple[str, str], ...]
) -> HelmOptions:
    """``env``'s ``helm template`` settings with its ``values`` (``read_values``)."""
    helm = env.spec.helm
    await kube.discovery.ensure()
    served = kube.discovery.scopes().namespaced
    api_versions = sorted({api for api, _ in served} | {f"{api}/{kind}" for api, kind in served})
    return HelmOptions(
        release_name=helm.release_name or env.name,
        namespace=env.spec.target_namespace,
        kube_version=await capabilities.version(kube),
        api_versions=tuple(api_versions),
        include_crds=not helm.skip_crds,
        values_files=helm.values_files,
        values=values,
    )


async def _values_of(kube: KubeAPI, namespace: str, index: int, ref: ValuesFrom) -> tuple[str, str | None]:
    where = f"spec.helm.valuesFrom[{index}]: {ref.kind} {namespace}/{ref.name}"
    try:
        if ref.kind == "ConfigMap":
            data = (await kube.get(CONFIG_MAPS.path(namespace, ref.name))).get("data") or {}
            text = data.get(ref.key)
        else:
            secret = await kube_secrets.read(kube, namespace, ref.name, where="spec.helm.valuesFrom")
            text = secret.text(ref.key) if ref.key in secret else None
    except (NotFound, kube_secrets.SecretNotFound):
        if ref.optional:
            return where, None
        raise ValuesFromNotFound(f"{where} not found (set optional: true to skip it)") from None
    except kube_secrets.SecretError as exc:
        raise ValuesFromNotFound(str(exc)) from None
    if text is None and not ref.optional:
        raise ValuesFromNotFound(f"{where} has no key {ref.key!r} (set optional: true to skip it)")
    return where, None if text is None else str(text)
