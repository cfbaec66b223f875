"""``gitopsd history ENV [-o json|yaml]``: every release recorded for an Environment.

Read from the release Secrets themselves (not from ``status.history``, which keeps only the
newest few), each one checked in full: a record whose bundle does not match its digest, that
exceeds a bound, is not signed by this gitopsd, or a Secret that only looks like a record, is
listed as invalid with the reason, never hidden (SIGNED ``no`` for a signature that fails).

Signatures are checked with the key in Secret ``gitopsd-release-signing`` of gitopsd's namespace
(``--gitopsd-namespace``, else ``$GITOPSD_NAMESPACE``, else gitopsd-system). A user who may not
read it still gets the history, SIGNED ``?``, and a warning saying why.

An Environment with ``spec.kubeConfig`` keeps its records on its target cluster, signed with
that cluster's key: they are read there, through the kubeconfig Secret (``cli.target``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from gitopsd.cli.common import (
    add_kube_args,
    env_name,
    fetch_environment,
    kube_from,
    namespace_name,
    namespace_of,
    table,
)
from gitopsd.cli.target import remote_store, target_of
from gitopsd.kube import KubeAPI
from gitopsd.releases import Owner, Release, ReleaseError, ReleaseStore, current_number, signing


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("history", help="list the releases of an Environment (its rollback targets)")
    parser.add_argument("name", metavar="ENV", type=env_name)
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="output format (default: a table)")
    add_key_arg(parser)
    add_kube_args(parser)
    parser.set_defaults(handler=run)


def add_key_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gitopsd-namespace",
        type=lambda text: namespace_name(text, "--gitopsd-namespace"),
        metavar="NS",
        help="namespace gitopsd runs in, whose Secret gitopsd-release-signing checks the records' signatures "
        f"(default: $GITOPSD_NAMESPACE, else {signing.INSTALL_NAMESPACE})",
    )


def store_for(kube: KubeAPI, args: argparse.Namespace, target: KubeAPI | None = None) -> ReleaseStore:
    """A store that checks signatures with the daemon's key, read only (never created by a user).

    ``target``: the cluster a remote Environment deploys into (``cli.target``), which keeps its
    records and their signing key; ``--gitopsd-namespace`` does not apply there."""
    if target is not None and target is not kube:
        return remote_store(target)
    namespace = signing.cli_namespace(getattr(args, "gitopsd_namespace", None))
    return ReleaseStore(kube, keys=signing.Keyring(kube, namespace, create=False, required=False))


async def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    async with kube_from(args) as kube:
        _, env = await fetch_environment(kube, namespace, args.name)
        async with target_of(kube, env) as target:
            found = await store_for(kube, args, target).read_all(Owner(env.namespace, env.name, env.uid))
    releases, invalid, unchecked = found.releases, found.invalid, found.unchecked
    current = current_number(env.status)
    if unchecked:
        print(f"warning: signatures not checked (SIGNED ?): {unchecked}", file=sys.stderr)
    if args.output:
        doc = document(f"{namespace}/{args.name}", current, releases, invalid, unchecked)
        print(json.dumps(doc, indent=2) if args.output == "json" else yaml.safe_dump(doc, sort_keys=False), end="\n")
        return 0
    if not releases and not invalid:
        print(f"No releases recorded for {namespace}/{args.name} yet.")
        return 0
    print(table(rows(current, releases, invalid, unchecked)))
    return 0


def document(
    environment: str,
    current: int | None,
    releases: list[Release],
    invalid: dict[str, ReleaseError],
    unchecked: str | None = None,
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
            "signed": None if unchecked else True,  # null: not checked (see signaturesUnchecked)
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
    if unchecked:
        doc["signaturesUnchecked"] = unchecked
    if invalid:
        doc["invalid"] = [
            {"secret": name, "reason": exc.reason, "error": exc.message, "signed": _signed(exc)}
            for name, exc in invalid.items()
        ]
    return doc


def _signed(exc: ReleaseError) -> bool | None:
    """False when the signature failed; None when it was not reached or not checked."""
    return False if exc.reason == "ReleaseNotSigned" else None


def rows(
    current: int | None, releases: list[Release], invalid: dict[str, ReleaseError], unchecked: str | None = None
) -> list[list[str]]:
    out = [["RELEASE", "REVISION", "DIGEST", "APPLIED AT", "RESULT", "VERIFIED", "SIGNED", "BY", "NOTE"]]
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
                "?" if unchecked else "yes",
                info.applied_by,
                note,
            ]
        )
    for name, exc in sorted(invalid.items()):
        signed = "no" if _signed(exc) is False else ""
        out.append(["?", "", "", "", "Invalid", "", signed, "", f"{name}: {exc.message}"])
    return out
