"""``gitopsd diff ENV``: what a sync would change, from a server-side dry-run against live objects.

Exit codes follow ``kubectl diff``: 0 no differences, 1 differences, 2 any error at all (a
bad flag, no cluster, the Environment not found, a render that fails), so a script can
tell "would change something" from "could not tell". An Environment with ``spec.kubeConfig``
is rendered here as the daemon renders it and compared with the live objects of its target
cluster (an unreachable target: exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from gitopsd.apply import Applier, ApplyOptions, Inventory
from gitopsd.cli.common import add_kube_args, env_name, fetch_environment, kube_from, namespace_of
from gitopsd.cli.preview import render_environment
from gitopsd.cli.target import target_of
from gitopsd.phases.classify import synced_objects
from gitopsd.usage import EXIT_USAGE


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "diff", help="show what a sync would change in the cluster (exit 0: nothing, 1: something, 2: an error)"
    )
    parser.add_argument("name", metavar="ENV", type=env_name)
    add_kube_args(parser)
    parser.set_defaults(handler=run, error_exit_floor=EXIT_USAGE)


async def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        raw, env = await fetch_environment(kube, namespace, args.name)
        spec = env.spec
        options = ApplyOptions(owner=env.key, prune=spec.prune, allow_empty=spec.allow_empty, force=spec.force)
        previous = Inventory.from_status((raw.get("status") or {}).get("inventory") or {})
        async with target_of(kube, env) as target:  # live objects of a remote Environment: on its target
            revision, manifests = await render_environment(kube, env, target)  # with the target's discovery
            # Hooks are created anew on each deploy (gitopsd.phases), never compared with live objects.
            result = await Applier(target).diff(synced_objects(manifests), previous, options)
    text = result.render()
    if text:
        print(f"# Environment {namespace}/{args.name}: live objects vs {revision}")
        print(text, end="" if text.endswith("\n") else "\n")
        return 1
    print(f"# Environment {namespace}/{args.name}: in sync with {revision}")
    return 0
