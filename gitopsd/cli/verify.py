"""``gitopsd verify ENV [--dry-run] [--timeout D]``: run the verification gate again for the current release.

Like ``rollback``, the CLI only asks (annotation ``gitopsd.dev/verify``, with a sync request so
the daemon picks it up at once) and the daemon runs the gate exactly as after a deploy, with
its outcomes: a Failed verdict rolls back with ``onFailure: Rollback``, unless ``--dry-run``
(then the verdict is recorded and nothing is done). The command follows
``status.verification`` and prints every metric's resolved query, then each sample as it is
taken, then the verdict: exit 0 when the release passed, 1 otherwise (failed, inconclusive,
refused, or the wait timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from gitopsd import environments
from gitopsd.cli.common import CliError, add_kube_args, duration, env_name, fetch_environment, kube_from, namespace_of
from gitopsd.cli.identity import whoami
from gitopsd.fields import format_duration
from gitopsd.gates.runner import VERIFY
from gitopsd.releases import requests as asks

FINAL = ("Passed", "Failed", "Inconclusive", "Cancelled")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "verify", help="run the verification gate again for the current release, printing each metric's samples"
    )
    parser.add_argument("name", metavar="ENV", type=env_name)
    parser.add_argument("--dry-run", action="store_true", help="record the verdict only: never roll back")
    parser.add_argument(
        "--timeout",
        type=duration("--timeout"),
        help="how long to wait for the verdict (default: the gate's deadline + 1m)",
    )
    add_kube_args(parser)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    where = f"{namespace}/{args.name}"
    wanted: float | None = args.timeout
    async with kube_from(args) as kube:
        _, env = await fetch_environment(kube, namespace, args.name)
        spec = env.spec.verification
        if spec is None:
            raise CliError(f"Environment {where} has no spec.verification: there is no gate to run")
        if env.spec.suspend:
            raise CliError(f"Environment {where} is suspended: run 'gitopsd resume {args.name}' first")
        release = env.status.get("release")
        if not isinstance(release, int):
            raise CliError(f"Environment {where} has no release deployed yet: nothing to verify")
        timeout = wanted if wanted is not None else spec.deadline + 60
        token = asks.new_token()
        body = {"token": token, "by": await whoami(kube), "dryRun": bool(args.dry_run)}
        annotations = {VERIFY: json.dumps(body, separators=(",", ":")), environments.REQUESTED_AT: token}
        await environments.annotate(kube, namespace, args.name, annotations)
        print(f"► verification of {where} release {release} requested" + (" (dry run)" if args.dry_run else ""))
        return await follow(kube, namespace, args.name, token, timeout)


async def follow(kube: Any, namespace: str, name: str, token: str, timeout: float) -> int:
    """Print the run answering ``token`` as it goes; its exit code."""
    deadline = time.monotonic() + timeout
    shown: set[tuple[str, str]] = set()
    queries_shown = False
    while True:
        raw = await environments.get(kube, namespace, name)
        st = raw.get("status") or {}
        handled = st.get("lastHandledVerify") or {}
        if handled.get("token") == token and handled.get("result") == "Refused":
            raise CliError(f"verification of {namespace}/{name} refused: {handled.get('message')}")
        gate = st.get("verification") or {}
        if gate.get("request") == token:
            if not queries_shown:
                queries_shown = True
                print(f"  release {gate.get('release')} ({gate.get('revision')}), deadline {gate.get('deadline')}")
                for metric in gate.get("metrics") or []:
                    print(f"  {metric.get('name')}: {metric.get('query')}")
            for line in _new_samples(gate, shown):
                print(line, flush=True)
            if gate.get("phase") in FINAL:
                return _verdict(namespace, name, gate)
        if time.monotonic() > deadline:
            raise CliError(
                f"timed out after {format_duration(timeout)} waiting for the verdict "
                f"(is 'gitopsd run' running and watching namespace {namespace}?)"
            )
        await asyncio.sleep(0.5)


def _new_samples(gate: Mapping[str, Any], shown: set[tuple[str, str]]) -> list[str]:
    """One line per sample not printed yet, oldest first."""
    lines: list[tuple[str, str]] = []
    for metric in gate.get("metrics") or []:
        name = str(metric.get("name"))
        for sample in metric.get("samples") or []:
            key = (name, str(sample.get("time")))
            if key in shown:
                continue
            shown.add(key)
            counts = f"passed {metric.get('passed', 0)}, failed {metric.get('failed', 0)}"
            text = f"  {key[1]}  {name}  {sample.get('value', '-')}  {sample.get('outcome')}  ({counts})"
            lines.append((key[1], text + (f"  {sample['message']}" if sample.get("message") else "")))
    return [text for _, text in sorted(lines)]


def _verdict(namespace: str, name: str, gate: Mapping[str, Any]) -> int:
    phase, message = gate.get("phase"), gate.get("message")
    action = gate.get("action")
    tail = f"; {action}" if action and action != "none" else ""
    label = f"{namespace}/{name} release {gate.get('release')}"
    if phase == "Passed":
        print(f"✔ {label} verified: {message}")
        return 0
    print(f"✗ {label}: {phase} ({gate.get('reason')}): {message}{tail}")
    return 1
