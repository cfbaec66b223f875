"""``gitopsd rollback ENV [--to N] [--wait] [--timeout D]``: ask the daemon to restore a release.

The CLI checks everything it can before asking, so a bad request changes nothing and says why
in one line: the Environment is suspended, a rollback is already in progress, the release does
not exist or was removed by historyLimit, it is the current one, or its record fails its checks
(type, labels, owner, bounds, digests, and its signature: "release N of NS/ENV is not signed by
this gitopsd (forged or from another installation): refusing to restore it"). A user who may not
read the signing key (see ``gitopsd history``) is warned that the signature was not checked
here; the daemon checks it before restoring anything. It then writes the request (``releases.requests``) and, with
``--wait``, follows status until the daemon has handled that very request, printing progress.
The daemon checks again when it acts (the records may change in between) and refuses in
``status.lastHandledRollback`` if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
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
    release_number,
)
from gitopsd.cli.history import add_key_arg, store_for
from gitopsd.cli.identity import whoami
from gitopsd.cli.target import target_of
from gitopsd.fields import format_duration
from gitopsd.kube import Kube
from gitopsd.releases import Owner, ReleaseError, current_number, history
from gitopsd.releases import requests as asks
from gitopsd.releases.record import NAME_PATTERN


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "rollback", help="restore an earlier release (default: the last Healthy one) and hold the current revision"
    )
    parser.add_argument("name", metavar="ENV", type=env_name)
    parser.add_argument(
        "--to", type=release_number, metavar="N", help="the release to restore (see 'gitopsd history ENV')"
    )
    parser.add_argument("--wait", action="store_true", help="wait until the daemon has restored it, and report")
    parser.add_argument(
        "--timeout", type=duration("--timeout"), default="5m", help="how long --wait waits (default 5m)"
    )
    add_key_arg(parser)
    add_kube_args(parser)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    timeout: float = args.timeout
    namespace = namespace_of(args)
    where = f"{namespace}/{args.name}"
    async with kube_from(args) as kube:
        _, env = await fetch_environment(kube, namespace, args.name)
        if env.spec.suspend:
            raise CliError(f"Environment {where} is suspended: run 'gitopsd resume {args.name}' first")
        pending = asks.pending_rollback(env.annotations, env.status)
        if pending is not None and not pending.error:
            raise CliError(
                f"a rollback of {where} is already in progress (requested by {pending.by} at {pending.at or '?'}"
                + (f", to release {pending.to}" if pending.to else "")
                + f"); wait for it: 'gitopsd history {args.name}'"
            )
        owner = Owner(env.namespace, env.name, env.uid)
        async with target_of(kube, env) as cluster:  # a remote Environment's records are on its target
            store = store_for(kube, args, cluster)
            listing = await store.scan(owner)
            invalid: dict[int, str] = {}
            for name, exc in listing.invalid.items():
                match = NAME_PATTERN.match(name)
                if match is not None:
                    invalid[int(match["n"])] = exc.message
            try:
                target = history.target(
                    listing.records, current_number(env.status), args.to,
                    environment=where, limit=env.spec.history_limit, invalid=invalid,
                )  # fmt: skip
                await store.read(owner, target.number)  # the whole record, digest checked
            except ReleaseError as exc:
                raise CliError(f"cannot roll back {where}: {exc.message}") from None
        if listing.unchecked:
            print(
                f"warning: the signature of release {target.number} was not checked here ({listing.unchecked}); "
                "the daemon checks it before restoring",
                file=sys.stderr,
            )
        request = asks.Request(asks.new_token(), await whoami(kube), target.number, asks.now())
        await environments.annotate(kube, namespace, args.name, {asks.ROLLBACK: request.to_annotation()})
        if not args.wait:
            print(f"► rollback of {where} to release {target.number} ({target.revision}) requested")
            return 0
        return await wait_rollback(kube, namespace, args.name, request.token, target.number, timeout)


async def wait_rollback(kube: Kube, namespace: str, name: str, token: str, target: int, timeout: float) -> int:
    """Follow status until the daemon handled rollback ``token``; 0 when the restored release is healthy."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    with progress.running(f"waiting for the daemon to roll {namespace}/{name} back to release {target}"):
        while True:
            raw = await environments.get(kube, namespace, name)
            st = raw.get("status") or {}
            handled = st.get("lastHandledRollback") or {}
            if handled.get("token") == token:
                break
            busy = status.condition(st, status.RECONCILING)
            if busy:
                progress.update(str(busy.get("message")))
            if time.monotonic() > deadline:
                raise CliError(
                    f"timed out after {format_duration(timeout)}: the daemon has not finished the rollback "
                    f"(is 'gitopsd run' running and watching namespace {namespace}?)"
                )
            await asyncio.sleep(0.5)
    result, message = handled.get("result"), str(handled.get("message") or "")
    if result == "Refused":
        raise CliError(message)
    if result == "Succeeded":
        print(f"✔ {namespace}/{name}: rolled back to release {target} as release {handled.get('release')}: {message}")
        return 0
    print(f"✗ {namespace}/{name}: release {handled.get('release')} (rollback to {target}) is not healthy: {message}")
    return 1
