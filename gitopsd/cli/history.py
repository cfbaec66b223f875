"""``gitopsd history ENV [-o json|yaml]``: every release recorded for an Environment.

Read from the release Secrets themselves (not from ``status.history``, which keeps only the
newest few), each one checked in full: a record whose bundle does not match its digest, or a
Secret that only looks like a record, is listed as invalid with the reason, never hidden.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from gitopsd.cli.common import add_kube_args, env_name, fetch_environment, kube_from, namespace_of, table
from gitopsd.releases import Owner, Release, ReleaseError, ReleaseStore, current_number


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("history", help="list the releases of an Environment (its rollback targets)")
    parser.add_argument("name", metavar="ENV", type=env_name)
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="output format (default: a table)")
    add_kube_args(parser)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        _, env = await fetch_environment(kube, namespace, args.name)
        releases, invalid = await ReleaseStore(kube).read_all(Owner(env.namespace, env.name, env.uid))
    current = current_number(env.status)
    if args.output:
        doc = document(f"{namespace}/{args.name}", current, releases, invalid)
        print(json.dumps(doc, indent=2) if args.output == "json" else yaml.safe_dump(doc, sort_keys=False), end="\n")
        return 0
    if not releases and not invalid:
        print(f"No releases recorded for {namespace}/{args.name} yet.")
        return 0
    print(table(rows(current, releases, invalid)))
    return 0


def document(
    environment: str, current: int | None, releases: list[Release], invalid: dict[str, ReleaseError]
) -> dict[str, Any]:
    items = []
    for release in releases:
        info = release.info
        item: dict[str, Any] = {
            "release": info.number,
            "revision": info.revision,
            "digest": info.digest,
            "appliedAt": info.applied_at,
            "result": str(info.result),
            "appliedBy": info.applied_by,
            "note": info.note,
            "current": info.number == current,
            "objects": info.objects,
            "bytes": info.size,
        }
        if info.restored_from is not None:
            item["restoredFrom"] = info.restored_from
        if info.finished_at:
            item["finishedAt"] = info.finished_at
        if info.reason:
            item["reason"] = info.reason
        if info.verification:
            item["verification"] = {
                "result": info.verification,
                "enforced": info.verification_enforced,
                "message": info.verification_message,
            }
        items.append(item)
    doc: dict[str, Any] = {"environment": environment, "current": current, "releases": items}
    if invalid:
        doc["invalid"] = [{"secret": name, "reason": exc.reason, "error": exc.message} for name, exc in invalid.items()]
    return doc


def rows(current: int | None, releases: list[Release], invalid: dict[str, ReleaseError]) -> list[list[str]]:
    out = [["RELEASE", "REVISION", "DIGEST", "APPLIED AT", "RESULT", "VERIFIED", "BY", "NOTE"]]
    for release in releases:
        info = release.info
        note = ", ".join(n for n in ("current" if info.number == current else "", info.note) if n)
        out.append(
            [
                str(info.number),
                info.revision,
                info.digest.removeprefix("sha256:")[:12],
                info.applied_at,
                str(info.result),
                (info.verification or "") + ("" if info.verification_enforced else " (dry run)"),
                info.applied_by,
                note,
            ]
        )
    for name, exc in sorted(invalid.items()):
        out.append(["?", "", "", "", "Invalid", "", "", f"{name}: {exc.message}"])
    return out
