"""The ``metrics-adapter`` command: serve the metrics APIs, or ``check`` a config before switching.

Flag names follow prometheus-adapter (and the generic Kubernetes API server flags it inherits)
where one exists, so a Deployment's args carry over: ``--config``, ``--prometheus-url``,
``--prometheus-ca-file``, ``--prometheus-token-file``, ``--prometheus-header``,
``--metrics-relist-interval``, ``--secure-port``, ``--cert-dir``, ``--tls-cert-file``... Flags we
cannot honour are refused by name instead of ignored.

Errors follow kubectl: one ``error: ...`` line on stderr, no usage dump, no traceback. Exit
codes: 0 success, 1 runtime failure (an upstream unreachable at start-up, a port taken), 2 bad
flags, config or kubeconfig, 141 stdout closed early (``check ... | head``: what the shell reports
for kubectl or any program killed by SIGPIPE; neither "passed" nor "failed").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from gitopsd.usage import Parser
from metrics_adapter import __version__
from metrics_adapter.cache import DEFAULT_MAX_ENTRIES
from metrics_adapter.errors import ConfigError
from metrics_adapter.flags import (
    compat_flags,
    duration,
    fail,
    prometheus_flags,
    prometheus_settings,
    refuse,
    warn_ignored,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="metrics-adapter",
        allow_abbrev=False,  # as pflag: --v is not --vmodule
        description="Aggregated API server for custom.metrics.k8s.io and external.metrics.k8s.io "
        "(prometheus-adapter's config format, plus queue backlogs). "
        "Subcommand: 'metrics-adapter check --config F --prometheus-url URL' validates a config "
        "against a live Prometheus.",
    )
    p.add_argument("--version", action="version", version=f"metrics-adapter {__version__}")
    p.add_argument("--config", required=True, help="rules / externalRules / queues file (prometheus-adapter format)")
    prometheus_flags(p)
    s = p.add_argument_group("serving")
    s.add_argument("--secure-port", type=int, default=6443)
    s.add_argument(
        "--bind-address", action="append", default=[], help="address to listen on; repeatable (default: all)"
    )
    s.add_argument("--cert-dir", help="directory for a generated self-signed certificate when no files are given")
    s.add_argument("--tls-cert-file")
    s.add_argument("--tls-private-key-file")
    s.add_argument("--tls-cipher-suites", metavar="NAMES", help="comma-separated IANA names of TLS 1.2 suites allowed")
    s.add_argument("--tls-min-version", metavar="VERSION", help="VersionTLS12 (default) or VersionTLS13")
    s.add_argument(
        "--refresh-interval",
        type=duration,
        default=10.0,
        metavar="DURATION",
        help="how often values asked for recently are re-read from their source (default 10s)",
    )
    s.add_argument(
        "--max-staleness",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="older values are refused with 503 naming the source (default 30s)",
    )
    s.add_argument(
        "--idle-after",
        type=duration,
        default=120.0,
        metavar="DURATION",
        help="stop refreshing values nobody asked for this long (default 2m)",
    )
    s.add_argument(
        "--max-cached-values",
        type=_positive_int,
        default=DEFAULT_MAX_ENTRIES,
        metavar="N",
        help=f"distinct questions (queries, queues) whose values are kept; the least recently asked is dropped "
        f"beyond (default {DEFAULT_MAX_ENTRIES})",
    )
    k = p.add_argument_group("Kubernetes")
    for flag in ("--kubeconfig", "--lister-kubeconfig", "--authentication-kubeconfig", "--authorization-kubeconfig"):
        k.add_argument(
            flag,
            help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)"
            if flag == "--kubeconfig"
            else argparse.SUPPRESS,
        )
    k.add_argument("--kube-startup-timeout", type=duration, default=60.0, metavar="DURATION")
    k.add_argument(
        "--authorization-always-allow-paths",
        default="/healthz,/readyz,/livez",
        help="comma-separated paths served without authentication (default /healthz,/readyz,/livez)",
    )
    k.add_argument(
        "--insecure-skip-auth",
        action="store_true",
        help="DANGER, local development only: serve everyone without authentication or authorization",
    )
    lg = p.add_argument_group("logging")
    lg.add_argument("--v", "-v", type=int, default=0, help="verbosity (4 and up: debug)")
    compat_flags(p)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"count {text!r} must be at least 1")
    return value


def _kubeconfig(args: argparse.Namespace) -> str | None:
    given = {
        f: getattr(args, f)
        for f in ("kubeconfig", "lister_kubeconfig", "authentication_kubeconfig", "authorization_kubeconfig")
    }
    values = {v for v in given.values() if v}
    if len(values) > 1:
        raise ConfigError(
            "--kubeconfig, --lister-kubeconfig, --authentication-kubeconfig and --authorization-kubeconfig "
            "must name the same file: this adapter uses one connection to Kubernetes"
        )
    return values.pop() if values else None


def _serve(argv: Sequence[str]) -> int:
    from metrics_adapter import daemon
    from metrics_adapter.kube.client import load_settings
    from metrics_adapter.rules import config as rules_config
    from metrics_adapter.tls import serving_files
    from metrics_adapter.tlspolicy import parse as tls_policy

    args = build_parser().parse_args(argv)
    daemon.configure_logging(args.v)
    try:
        refuse(args)
        policy, notes = tls_policy(args.tls_cipher_suites, args.tls_min_version)
        warn_ignored(args, notes)
        config = rules_config.load(args.config)
        prom = prometheus_settings(args)
        if (config.rules or config.external_rules) and prom is None:
            raise ConfigError(f"{args.config} has 'rules' or 'externalRules': give --prometheus-url")
        if args.max_staleness < args.refresh_interval:
            raise ConfigError(
                f"--max-staleness ({args.max_staleness:g}s) must be at least "
                f"--refresh-interval ({args.refresh_interval:g}s)"
            )
        if not 0 < args.secure_port < 65536:
            raise ConfigError(f"--secure-port {args.secure_port}: must be 1-65535")
        kube = load_settings(_kubeconfig(args))
        opts = daemon.Options(
            config=config,
            prometheus=prom,
            kube=kube,
            serving=serving_files(args.tls_cert_file, args.tls_private_key_file, args.cert_dir),
            port=args.secure_port,
            bind=tuple(args.bind_address),
            relist_interval=args.metrics_relist_interval,
            max_age=args.metrics_max_age,
            refresh_interval=args.refresh_interval,
            max_staleness=args.max_staleness,
            idle_after=args.idle_after,
            max_cached_values=args.max_cached_values,
            kube_startup_timeout=args.kube_startup_timeout,
            insecure_skip_auth=args.insecure_skip_auth,
            tls_policy=policy,
            always_allow=frozenset(p.strip() for p in args.authorization_always_allow_paths.split(",") if p.strip()),
        )
        return asyncio.run(daemon.run(opts))
    except ConfigError as exc:
        return fail(str(exc))
    except daemon.StartupError as exc:
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check":
        from metrics_adapter import check

        return check.main(args[1:])
    if args and not args[0].startswith("-"):
        return fail(f"unknown command {args[0]!r}: the only subcommand is 'check' (see 'metrics-adapter --help')")
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
