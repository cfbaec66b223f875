"""``gitopsd run``: the daemon, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import structlog

from gitopsd import log as logging_setup
from gitopsd.cli import daemon_setup
from gitopsd.cli.common import CliError, add_kube_args, kube_from
from gitopsd.daemon import Settings
from gitopsd.kube import Kube, KubeError
from gitopsd.leader import LeadershipLost

log = structlog.get_logger("gitopsd.run")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the daemon: keep Environments reconciled")
    add_kube_args(parser, all_namespaces=True)
    parser.add_argument(
        "--config", type=Path, help="YAML: a DaemonConfig, and Environment objects to create or update at start"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="Environments doing reconcile work at once (default 8); one waiting on its health gate steps aside",
    )
    parser.add_argument(
        "--probes-bind-address", default=":8080", help="address of /metrics, /healthz, /readyz (default :8080)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/gitopsd"), help="Git mirrors and exports")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--shutdown-grace", type=float, default=30.0, help="seconds to finish work at SIGTERM")
    daemon_setup.add_args(parser)
    parser.set_defaults(handler=run)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise CliError(f"--probes-bind-address {text!r}: expected HOST:PORT or :PORT", code=2)
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


async def run(args: argparse.Namespace) -> int:
    logging_setup.configure(args.log_level)
    if args.workers < 1:
        raise CliError("--workers must be at least 1", code=2)
    host, port = _address(args.probes_bind_address)
    cfg = daemon_setup.load_config(args)
    settings = Settings(
        namespace=None if args.all_namespaces else args.namespace,
        workers=args.workers,
        cache_dir=args.cache_dir,
        probes_host=host,
        probes_port=port,
        shutdown_grace=args.shutdown_grace,
    )
    chosen = daemon_setup.plan(args, cfg, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with kube_from(args) as kube:
        store = await daemon_setup.load_secrets(args, cfg, kube)
        if cfg.environments:
            await apply_config(kube, args.config, cfg.environments)
        try:
            await daemon_setup.build(kube, cfg, chosen, store).run(stop)
        except LeadershipLost as exc:
            raise CliError(f"leadership lost: {exc}") from None
    return 0


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
            )
        except KubeError as exc:
            raise CliError(f"--config {path}: Environment {meta['namespace']}/{meta['name']}: {exc}") from None
        log.info("environment configured", environment=f"{meta['namespace']}/{meta['name']}")
