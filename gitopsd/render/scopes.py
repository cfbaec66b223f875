"""Whether a kind is namespaced, when there is no cluster to ask, and for CRDs in the render itself.

``OfflineScopes`` answers from ``builtin_kinds.py``: data taken once from a real kube-apiserver's
discovery (the types its built-in API groups serve) by running this module against a cluster::

    python -m gitopsd.render.scopes --kubeconfig KUBECONFIG > gitopsd/render/builtin_kinds.py

A test compares the data with the harness's live API server, so a Kubernetes upgrade that
adds a type shows up as a failing test, not as a silent gap.

Offline, a kind is looked up by API group and kind, not version: a kind's scope is the same in
every version of its group, and a render for some other cluster may name a version this one
does not serve. With a cluster, the daemon passes the live discovery instead (exact versions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitopsd.render import builtin_kinds
from gitopsd.render.errors import InvalidManifest

CRD_GROUP = "apiextensions.k8s.io"
_BUILTIN_LABEL = "kube-aggregator.kubernetes.io/automanaged"
_AGGREGATOR_GROUP = "apiregistration.k8s.io"


@dataclass(frozen=True, slots=True)
class OfflineScopes:
    """A ``model.Scopes`` from the built-in Kubernetes types (render adds the CRDs it finds).

    With ``custom_kinds``, a kind of an API group that is not built in (a custom resource whose
    CRD is installed separately, as is usual) counts as namespaced, as most are, unless named in
    ``cluster_scoped`` (``KIND`` or ``KIND.GROUP``). A kind missing from a built-in group is still
    unknown: that is a typo (``Deploymnet``), not a custom resource.
    """

    custom_kinds: bool = False
    cluster_scoped: frozenset[str] = frozenset()

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        group = api_version.rpartition("/")[0]
        if group in builtin_kinds.NAMESPACED:
            return builtin_kinds.NAMESPACED[group].get(kind)
        if not self.custom_kinds:
            return None
        return kind not in self.cluster_scoped and f"{kind}.{group}" not in self.cluster_scoped


def is_crd(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "CustomResourceDefinition" and str(obj.get("apiVersion", "")).startswith(f"{CRD_GROUP}/")


def crd_scopes(objects: Iterable[tuple[Mapping[str, Any], str]]) -> dict[tuple[str, str], bool]:
    """``(apiVersion, kind) → namespaced`` for every version of every CRD among ``(object, origin)``.

    A CRD without the fields that decide this is refused here, so its custom resources are not
    reported as unknown kinds first.
    """
    found: dict[tuple[str, str], bool] = {}
    for obj, origin in objects:
        if not is_crd(obj):
            continue
        spec = obj.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        names = spec.get("names")
        group, scope, versions = spec.get("group"), spec.get("scope"), spec.get("versions")
        kind = names.get("kind") if isinstance(names, Mapping) else None
        if not isinstance(group, str) or not group or not isinstance(kind, str) or not kind:
            raise InvalidManifest(origin, "CustomResourceDefinition needs spec.group and spec.names.kind")
        if scope not in ("Namespaced", "Cluster"):
            raise InvalidManifest(
                origin, f"CustomResourceDefinition spec.scope must be Namespaced or Cluster (got {scope!r})"
            )
        if not isinstance(versions, list) or not versions:
            raise InvalidManifest(origin, "CustomResourceDefinition needs spec.versions")
        for version in versions:
            name = version.get("name") if isinstance(version, Mapping) else None
            if isinstance(name, str) and name:
                found[(f"{group}/{name}", kind)] = scope == "Namespaced"
    return found


# -- generating builtin_kinds.py from a live API server ---------------------------------------


async def served_builtin_kinds(
    kubeconfig: str | None, context: str | None = None
) -> tuple[str, dict[str, dict[str, bool]]]:
    """The server's version and ``group → kind → namespaced`` of its built-in API groups.

    Built-in means registered by kube-apiserver at start (APIService label
    ``automanaged: onstart``), plus the aggregator's own ``apiregistration.k8s.io``: not CRDs,
    not aggregated API servers.
    """
    from gitopsd.kube import Kube  # only the generator talks to a cluster

    async with Kube.from_kubeconfig(kubeconfig, context) as kube:
        version = str((await kube.get("/version")).get("gitVersion", ""))
        apiservices = await kube.get("/apis/apiregistration.k8s.io/v1/apiservices")
        builtin = {
            f"{item['spec'].get('group') or ''}/{item['spec']['version']}".lstrip("/")
            for item in apiservices.get("items", [])
            if (item["metadata"].get("labels") or {}).get(_BUILTIN_LABEL) == "onstart"
        }
        # The aggregator serves its own group without an APIService object for it.
        builtin.add(f"{_AGGREGATOR_GROUP}/v1")
        await kube.discovery.refresh()
        kinds: dict[str, dict[str, bool]] = {}
        for (api_version, kind), namespaced in kube.discovery.scopes().namespaced.items():
            if api_version in builtin:
                kinds.setdefault(api_version.rpartition("/")[0], {})[kind] = namespaced
    return version, {group: dict(sorted(k.items())) for group, k in sorted(kinds.items())}


def _module_text(version: str, kinds: dict[str, dict[str, bool]]) -> str:
    lines = ["{"]
    for group, by_kind in kinds.items():
        lines.append(f"    {json.dumps(group)}: {{")
        lines += [f"        {json.dumps(kind)}: {namespaced}," for kind, namespaced in by_kind.items()]
        lines.append("    },")
    body = "\n".join([*lines, "}"])
    return (
        f'"""Which built-in Kubernetes types are namespaced, by API group and kind (kube-apiserver {version}).\n\n'
        "Generated from the server's discovery by ``python -m gitopsd.render.scopes``: do not edit by hand.\n"
        '"""\n\n'
        f'SERVER_VERSION = "{version}"\n\n'
        f"NAMESPACED: dict[str, dict[str, bool]] = {body}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print builtin_kinds.py from a live API server's discovery")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    args = parser.parse_args(argv)
    version, kinds = asyncio.run(served_builtin_kinds(args.kubeconfig, args.context))
    sys.stdout.write(_module_text(version, kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
