"""``gitopsd run``: the daemon, until SIGTERM (exit 0) or SIGINT (exit 130).

It watches the Environments of one namespace, as kubectl would pick it (``-n``, else the
kubeconfig context's, in a Pod its own, else ``default``), or of all with ``-A``; the choice
and where it came from are logged at start, so a daemon never narrows or widens silently.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gitopsd import log as logging_setup
from gitopsd.aio import trim_tls_buffers
from gitopsd.cli import daemon_setup
from gitopsd.cli.common import (
    EXIT_INTERRUPTED,
    CliError,
    UsageError,
    add_kube_args,
    count,
    default_namespace,
    exit_code,
    kube_from,
    seconds,
    shown,
)
from gitopsd.daemon import Settings
from gitopsd.errors import GitopsdError
from gitopsd.fields import Invalid, check_dns_subdomain
from gitopsd.gitsource import check_source_allowed
from gitopsd.kube import Kube, KubeError
from gitopsd.leader import LeadershipLost
from gitopsd.tenancy import Tenancy

log = structlog.get_logger("gitopsd.run")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the daemon: keep Environments reconciled")
    add_kube_args(parser, all_namespaces=True)
    parser.add_argument(
        "--config", type=Path, help="YAML: a DaemonConfig, and Environment objects to create or update at start"
    )
    parser.add_argument(
        "--workers",
        type=count("--workers"),
        default=8,
        help="Environments doing reconcile work at once (default 8); one waiting on its health gate steps aside",
    )
    parser.add_argument(
        "--probes-bind-address", default=":8080", help="address of /metrics, /healthz, /readyz (default :8080)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/gitopsd"), help="Git mirrors and exports")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument(
        "--shutdown-grace",
        type=seconds("--shutdown-grace", allow_zero=True),
        default=30.0,
        help="seconds to finish work at SIGTERM (default 30)",
    )
    tenancy = parser.add_argument_group("tenancy: what an Environment may do and reach")
    tenancy.add_argument(
        "--default-service-account",
        metavar="NAME",
        type=service_account_name,
        help="Environments without spec.serviceAccountName act as this ServiceAccount of their own "
        "namespace (impersonated, so RBAC decides); unset: they act as gitopsd itself",
    )
    tenancy.add_argument(
        "--no-cross-namespace-refs",
        action="store_true",
        help="every reference resolves in the Environment's own namespace, and a DaemonConfig notifier "
        "serves only the namespaces it lists",
    )
    tenancy.add_argument(
        "--allow-file-sources",
        action="store_true",
        help="accept file:// Git URLs (tests, demos, a laptop); off: a path on the daemon's disk is no source",
    )
    daemon_setup.add_args(parser)
    parser.set_defaults(handler=run)


def service_account_name(text: str) -> str:
    try:
        check_dns_subdomain(text)
    except Invalid as exc:
        raise UsageError(f"--default-service-account {shown(text)}: not a ServiceAccount name ({exc})") from None
    return text


def watched_namespace(args: argparse.Namespace) -> tuple[str | None, str]:
    """The namespace to watch (None: all) and where that choice came from, for the start-up log."""
    if args.all_namespaces:
        return None, "--all-namespaces"
    if args.namespace:
        return str(args.namespace), "--namespace"
    return default_namespace(args.kubeconfig, args.context)


async def run(args: argparse.Namespace) -> int:
    logging_setup.configure(args.log_level)
    trim_tls_buffers()  # one watch per kind and namespace: see gitopsd.aio
    host, port = daemon_setup.address("--probes-bind-address", args.probes_bind_address)
    cfg = daemon_setup.load_config(args)
    tenancy = Tenancy(
        default_service_account=args.default_service_account,
        no_cross_namespace_refs=args.no_cross_namespace_refs,
        allow_file_sources=args.allow_file_sources,
    )
    _check_sources(args.config, cfg.environments, tenancy)
    namespace, origin = watched_namespace(args)
    log.info("watching Environments", namespace=namespace or "*", namespace_from=origin)
    settings = Settings(
        namespace=namespace,
        workers=args.workers,
        cache_dir=args.cache_dir,
        probes_host=host,
        probes_port=port,
        shutdown_grace=args.shutdown_grace,
        tenancy=tenancy,
    )
    chosen = daemon_setup.plan(args, cfg, settings)
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, received, sig))
    async with kube_from(args) as kube:
        store = await daemon_setup.load_secrets(args, cfg, kube)
        if cfg.environments:
            await apply_config(kube, args.config, cfg.environments)
            for doc in cfg.environments:
                if namespace is not None and doc["metadata"]["namespace"] != namespace:
                    log.warning(
                        "environment outside the watched namespace: this daemon will not reconcile it",
                        environment=f"{doc['metadata']['namespace']}/{doc['metadata']['name']}",
                        namespace=namespace,
                    )
        try:
            await daemon_setup.build(kube, cfg, chosen, store).run(stop)
        except LeadershipLost as exc:
            raise CliError(f"leadership lost: {exc}") from None
    # Ctrl-C is an interruption (130), as for every command; SIGTERM is how a Pod is stopped (0).
    return EXIT_INTERRUPTED if signal.SIGINT in received else 0


def _check_sources(path: Path | None, envs: list[dict[str, Any]], tenancy: Tenancy) -> None:
    """An Environment of ``--config`` this daemon would refuse to read is refused before any is written (exit 2)."""
    for doc in envs:
        url = ((doc.get("spec") or {}).get("source") or {}).get("url")
        if url is None and (doc.get("spec") or {}).get("chart"):
            continue  # a chart from a Helm repository: no Git source to allow or refuse
        try:
            check_source_allowed(str(url), tenancy)
        except GitopsdError as exc:
            meta = doc["metadata"]
            where = f"--config {path}: Environment {meta['namespace']}/{meta['name']}: spec.source.url"
            raise CliError(f"{where}: {exc}", code=2) from None


def _stopper(stop: asyncio.Event, received: list[signal.Signals], sig: signal.Signals) -> Callable[[], None]:
    def handle() -> None:
        received.append(sig)
        stop.set()

    return handle


async def apply_config(kube: Kube, path: Path, envs: list[dict[str, Any]]) -> None:
    """Create or update the Environments of the config file (validated with it, before any is written)."""
    from gitopsd.environments import RESOURCE

    for doc in envs:
        meta = doc["metadata"]
        try:
            await kube.apply(
                RESOURCE.path(meta["namespace"], meta["name"]),
                {k: doc[k] for k in ("apiVersion", "kind", "metadata", "spec")},
                field_manager="gitopsd-config",
                force=True,
                strict=True,  # a field the CRD does not know is an error, not silently dropped
            )
        except KubeError as exc:
            where = f"--config {path}: Environment {meta['namespace']}/{meta['name']}"
            raise CliError(f"{where}: {exc}", code=exit_code(exc)) from None  # unreachable: 2, as elsewhere
        log.info("environment configured", environment=f"{meta['namespace']}/{meta['name']}")
