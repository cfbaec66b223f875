"""``gitopsd render ENV | --path DIR``: print the objects an Environment would apply, as YAML.

With ``--path`` nothing but the directory is read: no cluster, no Git. Namespaced-ness then
comes from the built-in types and the CRDs in the render (``render.OfflineScopes``); a custom
resource whose CRD is not in the render is taken as namespaced unless ``--cluster-scoped``
names its kind. ``${NAME}`` is substituted only when ``--substitute`` gives a value, as an
Environment substitutes only when its spec asks. A directory holding ``Chart.yaml`` renders
with ``helm template`` (``--values-file`` as ``spec.helm.valuesFiles``, ``--release-name``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from gitopsd.cli.common import CliError, add_kube_args, fetch_environment, kube_from, namespace_name, namespace_of
from gitopsd.cli.preview import render_environment
from gitopsd.cli.target import target_of
from gitopsd.errors import SpecError
from gitopsd.model import Manifest
from gitopsd.render import HelmOptions, OfflineScopes, RenderOptions, render
from gitopsd.render.helmspec import parse_helm
from gitopsd.sources import LocalTree
from gitopsd.spec import check_variable_name

_PATH_ONLY = {
    "--target-namespace": "target_namespace",
    "--substitute": "substitute",
    "--cluster-scoped": "cluster_scoped",
    "--environment": "environment",
    "--values-file": "values_file",
    "--release-name": "release_name",
}
_KIND = re.compile(r"[A-Z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("render", help="print the objects an Environment (or a local directory) renders to")
    parser.add_argument("name", nargs="?", metavar="ENV", help="an Environment in the cluster")
    parser.add_argument("--path", type=Path, help="render this local directory instead (no cluster needed)")
    parser.add_argument(
        "--target-namespace",
        type=functools.partial(namespace_name, flag="--target-namespace"),
        help="with --path: namespace for namespaced objects that name none (default: -n, if given)",
    )
    parser.add_argument(
        "--substitute",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --path: a ${KEY} value; given at least once, ${...} is substituted (otherwise left as written)",
    )
    parser.add_argument(
        "--cluster-scoped",
        action="append",
        default=[],
        metavar="KIND[.GROUP]",
        help="with --path: a custom resource kind that is cluster-scoped (others are taken as namespaced)",
    )
    parser.add_argument("--environment", default="local", help="with --path: value of ${GITOPSD_ENVIRONMENT}")
    parser.add_argument(
        "--values-file",
        action="append",
        default=[],
        metavar="FILE",
        help="with --path of a chart: a values file relative to the chart (as spec.helm.valuesFiles), later wins",
    )
    parser.add_argument(
        "--release-name", help="with --path of a chart: the release name (default: the --environment value)"
    )
    add_kube_args(parser)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    if bool(args.name) == bool(args.path):
        raise CliError("give either ENV or --path DIR", code=2)
    if args.name:
        given = [flag for flag, value in _PATH_ONLY.items() if getattr(args, value) not in (None, [], "local")]
        if given:
            raise CliError(f"{given[0]} only applies with --path (an Environment's spec says it)", code=2)
    if args.path:
        manifests = await asyncio.to_thread(_render_local, args)
        header = f"# rendered from {args.path}"
    else:
        namespace = namespace_of(args)
        async with kube_from(args) as kube:
            _, env = await fetch_environment(kube, namespace, args.name)
            async with target_of(kube, env) as target:  # a remote Environment renders with its target's discovery
                revision, manifests = await render_environment(kube, env, target)
        header = f"# Environment {namespace}/{args.name} at {revision}"
    if not manifests:
        print(f"warning: {args.path or args.name}: rendered no objects", file=sys.stderr)
    print(dump(manifests, header), end="")
    return 0


def _render_local(args: argparse.Namespace) -> list[Manifest]:
    root: Path = args.path
    if not root.is_dir():
        raise CliError(f"--path {root}: not a directory", code=2)
    substitute: dict[str, str] | None = None
    for item in args.substitute:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--substitute {item!r}: expected KEY=VALUE", code=2)
        try:
            check_variable_name(key, "")
        except SpecError as exc:
            raise CliError(f"--substitute {item!r}: {exc}", code=2) from None
        substitute = {**(substitute or {}), key: value}
    for kind in args.cluster_scoped:
        if not _KIND.fullmatch(kind):
            raise CliError(f"--cluster-scoped {kind!r}: expected a kind such as Widget or Widget.example.com", code=2)
    target = args.target_namespace or args.namespace
    try:
        helm = parse_helm({"releaseName": args.release_name, "valuesFiles": args.values_file})
    except SpecError as exc:
        flag = "--release-name" if "releaseName" in exc.field else "--values-file"
        raise CliError(f"{flag}: {exc}", code=2) from None
    options = RenderOptions(
        path="",
        environment=args.environment,
        revision=None,
        substitute=substitute,
        target_namespace=target,
        helm=HelmOptions(helm.release_name or args.environment, target, values_files=helm.values_files),
    )
    scopes = OfflineScopes(custom_kinds=True, cluster_scoped=frozenset(args.cluster_scoped))
    return render(LocalTree(root.resolve()), options, scopes)


def dump(manifests: list[Manifest], header: str) -> str:
    docs = [f"# Source: {m.origin}\n" + yaml.safe_dump(m.obj, sort_keys=False) for m in manifests]
    return header + f" ({len(manifests)} objects)\n---\n" + "---\n".join(docs)
