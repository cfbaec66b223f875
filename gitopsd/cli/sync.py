"""``gitopsd sync ENV [--wait]``, ``suspend ENV``, ``resume ENV``: steer the daemon through the API.

The CLI never applies anything itself here: it asks the daemon (an annotation, as ``flux
reconcile`` does) and, with ``--wait``, follows the Environment's status until the daemon has
handled that very request.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from gitopsd import environments, status
from gitopsd.cli.common import (
    CliError,
    Progress,
    add_kube_args,
    duration,
    env_name,
    fetch_environment,
    kube_from,
    namespace_of,
)
from gitopsd.cli.identity import whoami
from gitopsd.fields import format_duration
from gitopsd.releases import requests as asks


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser("sync", help="reconcile an Environment now (fetching Git afresh)")
    parser.add_argument("name", metavar="ENV", type=env_name)
    parser.add_argument("--wait", action="store_true", help="wait until the daemon has applied it, and report")
    parser.add_argument(
        "--timeout", type=duration("--timeout"), default="5m", help="how long --wait waits (default 5m)"
    )
    parser.add_argument(
        "--force-freeze",
        action="store_true",
        help="deploy even inside a freeze window (this once; an Event records it)",
    )
    add_kube_args(parser)
    parser.set_defaults(handler=sync)

    parser = sub.add_parser("suspend", help="stop reconciling an Environment (the cluster is left as it is)")
    parser.add_argument("name", metavar="ENV", type=env_name)
    add_kube_args(parser)
    parser.set_defaults(handler=suspend)

    parser = sub.add_parser(
        "resume", help="reconcile a suspended Environment again, at once, and lift a hold on a revision"
    )
    parser.add_argument("name", metavar="ENV", type=env_name)
    add_kube_args(parser)
    parser.set_defaults(handler=resume)


def _token() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def sync(args: argparse.Namespace) -> int:
    timeout: float = args.timeout
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        _, env = await fetch_environment(kube, namespace, args.name)
        if env.spec.suspend:
            raise CliError(f"Environment {namespace}/{args.name} is suspended: run 'gitopsd resume {args.name}' first")
        token = _token()
        annotations = {environments.REQUESTED_AT: token}
        if getattr(args, "force_freeze", False):
            annotations[asks.FORCE_FREEZE] = asks.Request(token, await whoami(kube)).to_annotation()
        await environments.annotate(kube, namespace, args.name, annotations)
        if not args.wait:
            print(f"► sync of {namespace}/{args.name} requested")
            return 0
        return await wait_handled(kube, namespace, args.name, token, timeout)


async def wait_handled(kube: Any, namespace: str, name: str, token: str, timeout: float) -> int:
    """Follow status until the daemon handled request ``token``; 0 when Ready, 1 otherwise."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    with progress.running(f"waiting for the daemon to reconcile {namespace}/{name}"):
        while True:
            raw = await environments.get(kube, namespace, name)
            st = raw.get("status") or {}
            if st.get("lastHandledReconcileAt") == token:
                break
            busy = status.condition(st, status.RECONCILING)
            if busy:
                progress.update(str(busy.get("message")))
            if time.monotonic() > deadline:
                raise CliError(
                    f"timed out after {format_duration(timeout)}: the daemon has not handled the request "
                    f"(is 'gitopsd run' running and watching namespace {namespace}?)"
                )
            await asyncio.sleep(0.5)
    ready = status.condition(st, status.READY) or {}
    if ready.get("status") == "True":
        print(f"✔ {namespace}/{name}: {ready.get('message')}")
        return 0
    print(f"✗ {namespace}/{name}: {ready.get('reason')}: {ready.get('message')}")
    return 1


async def suspend(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        await fetch_environment(kube, namespace, args.name)
        await environments.patch_spec(kube, namespace, args.name, {"suspend": True})
    print(f"► {namespace}/{args.name} suspended")
    return 0


async def resume(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        await fetch_environment(kube, namespace, args.name)
        await environments.patch_spec(kube, namespace, args.name, {"suspend": False})
        token = _token()
        resume_request = asks.Request(token, await whoami(kube)).to_annotation()
        await environments.annotate(
            kube, namespace, args.name, {environments.REQUESTED_AT: token, asks.RESUME: resume_request}
        )
    print(f"► {namespace}/{args.name} resumed")
    return 0
