"""``gitopsd get [ENV] [-n NS | -A] [-o wide|json|yaml]``: Environments, how each stands, which cluster it targets."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from gitopsd import environments, status
from gitopsd.cli.common import (
    UsageError,
    add_kube_args,
    age,
    env_name,
    kube_from,
    namespace_of,
    not_found,
    table,
)
from gitopsd.clusters import IN_CLUSTER
from gitopsd.kube import NotFound
from gitopsd.sources import redact_url


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("get", help="list Environments, or show one")
    parser.add_argument(
        "name", nargs="?", metavar="ENV", type=env_name, help="one Environment (default: all in the namespace)"
    )
    parser.add_argument("-o", "--output", choices=("wide", "json", "yaml"), help="output format")
    add_kube_args(parser, all_namespaces=True)
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    namespace: str | None
    if args.name and args.all_namespaces:
        raise UsageError(f"ENV {args.name} with --all-namespaces: an Environment is named in one namespace (use -n)")
    async with kube_from(args) as kube:
        if args.name:
            namespace = namespace_of(args)
            try:
                items = [await environments.get(kube, namespace, args.name)]
            except NotFound:
                raise await not_found(kube, namespace, args.name) from None
        else:
            namespace = None if args.all_namespaces else namespace_of(args)
            try:
                items = (await environments.list_all(kube, namespace)).items
            except NotFound:
                raise await not_found(kube, namespace or "*") from None
    if args.output == "json":
        print(json.dumps(items[0] if args.name else _as_list(items), indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(items[0] if args.name else _as_list(items), sort_keys=False), end="")
    elif not items:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No Environments found in {where}.")
    else:
        print(table(rows(items, wide=args.output == "wide", all_namespaces=args.all_namespaces)))
    return 0


def _as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items}


def rows(items: Sequence[Mapping[str, Any]], *, wide: bool = False, all_namespaces: bool = False) -> list[list[str]]:
    header = ["NAME", "READY", "VERIFIED", "REVISION", "RELEASE", "HELD", "CLUSTER", "AGE", "STATUS"]
    if wide:
        header[8:8] = ["SOURCE", "REF", "PATH", "INTERVAL", "SUSPENDED"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    out = [header]
    for item in items:
        meta, spec, st = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        ready = status.condition(st, status.READY) or {}
        revision = str(st.get("lastAppliedRevision") or "")
        held = str((st.get("held") or {}).get("revision") or "")
        row = [
            str(meta.get("name")),
            str(ready.get("status", "Unknown")),
            _verified(st),
            revision if wide else _short(revision),
            str(st.get("release") or ""),
            held if wide else _short(held),
            cluster(spec, st),
            age(meta.get("creationTimestamp")),
            str(ready.get("message") or ""),
        ]
        if wide:
            source = spec.get("source") or {}
            ref = next((f"{k}:{source[k]}" for k in ("branch", "tag", "semver", "commit") if source.get(k)), "")
            row[8:8] = [
                redact_url(str(source.get("url", ""))),
                ref,
                str(source.get("path") or "."),
                str(spec.get("interval", "1m")),
                str(bool(spec.get("suspend", False))).lower(),
            ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace")))
        out.append(row)
    return out


def cluster(spec: Mapping[str, Any], st: Mapping[str, Any]) -> str:
    """Where it deploys: ``status.cluster`` (the kubeconfig Secret's name, or in-cluster), else from the spec."""
    if st.get("cluster"):
        return str(st["cluster"])
    ref = ((spec.get("kubeConfig") or {}).get("secretRef") or {}).get("name")
    return str(ref) if ref else IN_CLUSTER


def _verified(st: Mapping[str, Any]) -> str:
    """The Verified condition: True, False, or while undecided its reason (Verifying, PrometheusErrors...)."""
    cond = status.condition(st, "Verified")
    if cond is None:
        return ""
    return str(cond.get("status")) if cond.get("status") != "Unknown" else str(cond.get("reason") or "Unknown")


def _short(revision: str) -> str:
    """``main@sha1:3f2c1a7`` for a table; the full sha is in ``-o wide``."""
    head, sep, sha = revision.rpartition("sha1:")
    return f"{head}{sep}{sha[:7]}" if sep else revision
