"""``gitopsd run``: the daemon, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import structlog
import yaml

from gitopsd import log as logging_setup
from gitopsd.cli.common import CliError, add_kube_args, kube_from
from gitopsd.daemon import Daemon, Settings
from gitopsd.errors import SpecError
from gitopsd.kube import Kube, KubeError
from gitopsd.spec import API_VERSION, KIND, parse_environment

log = structlog.get_logger("gitopsd.run")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the daemon: keep Environments reconciled")
    add_kube_args(parser, all_namespaces=True)
    parser.add_argument("--config", type=Path, help="Environment objects (YAML) to create or update at start")
    parser.add_argument("--workers", type=int, default=8, help="Environments reconciled at once (default 8)")
    parser.add_argument(
        "--probes-bind-address", default=":8080", help="address of /metrics, /healthz, /readyz (default :8080)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/gitopsd"), help="Git mirrors and exports")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--shutdown-grace", type=float, default=30.0, help="seconds to finish work at SIGTERM")
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
    settings = Settings(
        namespace=None if args.all_namespaces else args.namespace,
        workers=args.workers,
        cache_dir=args.cache_dir,
        probes_host=host,
        probes_port=port,
        shutdown_grace=args.shutdown_grace,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with kube_from(args) as kube:
        if args.config:
            await apply_config(kube, args.config)
        await Daemon(kube, settings).run(stop)
    return 0


async def apply_config(kube: Kube, path: Path) -> None:
    """Create or update the Environments in ``path``; all are validated before any is written."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"--config {path}: {exc}") from None
    envs: list[dict[str, Any]] = []
    for number, doc in enumerate(docs, 1):
        where = f"--config {path} (document {number})"
        if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
            raise CliError(f"{where}: expected apiVersion {API_VERSION}, kind {KIND}")
        try:
            parse_environment(doc)
        except SpecError as exc:
            raise CliError(f"{where}: {exc}") from None
        envs.append(doc)
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
