"""``gitopsd run``'s assembly: config file, secrets, leader election, shard, webhooks and notifiers.

Kept apart from ``run`` (the command's flow) so each part is decided in one place. Everything
a user can get wrong is checked before the daemon starts or writes anything: flags and the
config file first (exit 2), then the Secrets the config names (exit 1, naming the field).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from dataclasses import dataclass

from gitopsd import config as daemon_config
from gitopsd import secretstore, sharding
from gitopsd.cli.common import CliError, UsageError, exit_code, seconds
from gitopsd.config import ConfigError, ConfigFile, DaemonConfig
from gitopsd.daemon import Daemon, Service, Settings
from gitopsd.kube import Kube, KubeError
from gitopsd.kube.secrets import SecretError
from gitopsd.leader import Elector, LeaderElector, LeaseSettings, NoElection, default_identity
from gitopsd.metrics import Metrics
from gitopsd.notify.dispatcher import Notifications
from gitopsd.releases import signing
from gitopsd.secretstore import SecretRef, SecretStore
from gitopsd.webhooks.receiver import Receiver, ReceiverSettings
from gitopsd.webhooks.signatures import Provider


def add_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("webhooks, leader election and sharding")
    group.add_argument(
        "--webhook-bind-address",
        default=":8081",
        help="address of the webhook receiver, started when the DaemonConfig configures webhooks (default :8081)",
    )
    group.add_argument(
        "--webhook-advertise-url",
        help="this replica's receiver URL as other replicas reach it, for forwarding (default http://$POD_IP:PORT)",
    )
    group.add_argument(
        "--webhook-read-timeout",
        type=seconds("--webhook-read-timeout", maximum=600),
        default=10.0,
        help="seconds a webhook request may take to arrive: its body (else 408), its headers (else the "
        "connection is closed) (default 10)",
    )
    group.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reconcile only while holding a Lease (default: the DaemonConfig's leaderElection.enabled, else off)",
    )
    group.add_argument(
        "--shard-selector", help="reconcile only Environments with these labels (e.g. gitopsd.dev/shard=a)"
    )


def address(flag: str, text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{flag} {text!r}: expected HOST:PORT or :PORT (a port up to 65535)")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


def load_config(args: argparse.Namespace) -> ConfigFile:
    """The config file (or an empty one), validated: exit 2 naming the document and field."""
    if not args.config:
        return ConfigFile(DaemonConfig(), [])
    try:
        return daemon_config.load(args.config)
    except ConfigError as exc:
        raise CliError(str(exc), code=2) from None


@dataclass(frozen=True, slots=True)
class Plan:
    settings: Settings
    lease: LeaseSettings | None  # None: leader election off
    receiver: ReceiverSettings


def plan(args: argparse.Namespace, cfg: ConfigFile, base: Settings) -> Plan:
    """Settings and Lease from flags and config, checked before anything runs."""
    selector = None
    if args.shard_selector:
        try:
            selector = sharding.check_selector(args.shard_selector)
        except ValueError as exc:
            raise CliError(f"--shard-selector: {exc}", code=2) from None
    hooks = bool(cfg.daemon.webhooks)
    host, port = address("--webhook-bind-address", args.webhook_bind_address)
    receiver = ReceiverSettings(read_timeout=args.webhook_read_timeout)
    settings = dataclasses.replace(
        base,
        label_selector=selector,
        webhook_host=host,
        webhook_port=port if hooks else None,
        webhook_idle_timeout=args.webhook_read_timeout,
    )
    election = cfg.daemon.leader_election
    enabled = args.leader_elect if args.leader_elect is not None else bool(election.enabled)
    if not enabled:
        return Plan(settings, None, receiver)
    namespace = election.namespace or os.environ.get("POD_NAMESPACE") or base.namespace
    if not namespace:
        raise CliError(
            "leader election needs a namespace for its Lease: set leaderElection.namespace in the DaemonConfig, "
            "POD_NAMESPACE, or --namespace",
            code=2,
        )
    lease = LeaseSettings(
        namespace=namespace,
        name=sharding.lease_name(election.lease_name, selector),
        identity=default_identity(),
        lease_duration=election.lease_duration,
        renew_deadline=election.renew_deadline,
        retry_period=election.retry_period,
        webhook_url=(args.webhook_advertise_url or _advertise(host, port)) if hooks else None,
    )
    return Plan(settings, lease, receiver)


async def load_secrets(args: argparse.Namespace, cfg: ConfigFile, kube: Kube) -> SecretStore:
    """Every Secret the config names, read; exit 1 naming the config field of the first missing one."""
    own = signing.daemon_namespace(args.namespace)  # the release signing key (docs/releases.md)
    try:
        await signing.ensure_key(kube, own)
    except (signing.SigningKeyError, KubeError) as exc:
        code = exit_code(exc) if isinstance(exc, KubeError) else 1  # unreachable: 2, as everywhere
        raise CliError(f"release signing key {own}/{signing.KEY_SECRET}: {exc}", code=code) from None
    for ref, where in secret_fields(cfg.daemon).items():
        try:
            await secretstore.read(kube, ref)
        except (SecretError, KubeError) as exc:
            raise CliError(f"--config {args.config}: {where}: {exc}") from None
    store = SecretStore(kube, secret_fields(cfg.daemon))
    await store.load()
    return store


def build(kube: Kube, cfg: ConfigFile, chosen: Plan, store: SecretStore, metrics: Metrics | None = None) -> Daemon:
    """The daemon with its elector, notifiers and webhook receiver wired in."""
    metrics = metrics or Metrics()
    elector: Elector = LeaderElector(kube, chosen.lease) if chosen.lease else NoElection()
    notifications = Notifications(
        cfg.daemon.notifiers,
        store.get,
        registry=metrics.registry,
        listed_only=chosen.settings.tenancy.no_cross_namespace_refs,
    )
    services: list[Service] = [store.keep_fresh, notifications.run]
    daemon = Daemon(kube, chosen.settings, metrics=metrics, announcer=notifications, leader=elector, services=services)
    notifications.subscriptions = daemon.subscriptions
    if chosen.settings.webhook_port is not None:
        hooks = cfg.daemon.webhooks

        def secrets(provider: Provider) -> tuple[bytes, ...] | None:
            ref = hooks.get(provider)
            value = store.get(ref) if ref is not None else None
            return (value,) if value else None

        receiver = Receiver(daemon, secrets, leadership=elector, settings=chosen.receiver, registry=metrics.registry)
        daemon.webhooks = receiver.app
    return daemon


def secret_fields(cfg: DaemonConfig) -> dict[SecretRef, str]:
    """Every Secret key the config names, with the first field naming it (for error messages)."""
    fields: dict[SecretRef, str] = {}
    for provider, ref in cfg.webhooks.items():
        fields.setdefault(ref, f"webhooks.{provider}.secretRef")
    for index, notifier in enumerate(cfg.notifiers):
        if notifier.secret_ref is not None:
            fields.setdefault(notifier.secret_ref, f"notifiers[{index}].secretRef")
    return fields


def _advertise(host: str, port: int) -> str:
    ip = os.environ.get("POD_IP") or (host if host not in ("0.0.0.0", "::", "") else socket.gethostname())  # noqa: S104
    return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"
