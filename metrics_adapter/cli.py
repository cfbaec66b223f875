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
import os
import re
import sys
from collections.abc import Sequence

from gitopsd.usage import EXIT_USAGE, Parser, one_line
from metrics_adapter import __version__
from metrics_adapter.errors import ConfigError
from metrics_adapter.sources.prometheus import PrometheusSettings

EXIT_PIPE = 141  # 128 + SIGPIPE

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_REFUSED = {
    "--prometheus-auth-config": "use --prometheus-token-file / --prometheus-ca-file / --prometheus-client-tls-*",
    "--prometheus-auth-incluster": "use --prometheus-token-file with the service account token path",
    "--client-ca-file": "only front-proxy client certificates and bearer tokens are accepted; "
    "other clients authenticate with tokens",
}


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``error: message`` on one line to stderr; return ``code``."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code


def stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly.

    stdout is pointed at /dev/null so the interpreter's final flush of what is still buffered
    does not fail again ("Exception ignored ... BrokenPipeError"), as the Python docs advise.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE


def duration(text: str) -> float:
    """A Go duration (``90s``, ``10m``, ``1h30m``, ``500ms``) or plain seconds, as seconds."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        pos, value = 0, 0.0
        for m in _DURATION.finditer(t):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 30s, 10m, 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be positive")
    return value


def prometheus_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Prometheus")
    g.add_argument("--prometheus-url", help="Prometheus base URL, e.g. http://prometheus.monitoring:9090")
    g.add_argument("--prometheus-ca-file", help="CA bundle to verify an https Prometheus")
    g.add_argument("--prometheus-client-tls-cert-file", help="client certificate for Prometheus")
    g.add_argument("--prometheus-client-tls-key-file", help="client key for Prometheus")
    g.add_argument("--prometheus-token-file", help="file holding a bearer token for Prometheus (re-read on every call)")
    g.add_argument("--prometheus-header", action="append", default=[], metavar="K=V", help="extra header; repeatable")
    g.add_argument("--prometheus-verb", default="GET", type=str.upper, choices=("GET", "POST"))
    g.add_argument(
        "--prometheus-timeout", type=duration, default=5.0, metavar="DURATION", help="per query (default 5s)"
    )
    g.add_argument(
        "--metrics-relist-interval",
        type=duration,
        default=600.0,
        metavar="DURATION",
        help="how often to re-discover series (default 10m)",
    )
    g.add_argument(
        "--metrics-max-age",
        type=duration,
        default=None,
        metavar="DURATION",
        help="how far back discovery looks for series (default: the relist interval)",
    )
    for flag in ("--prometheus-auth-config", "--prometheus-auth-incluster"):
        g.add_argument(flag, nargs="?", const="true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="metrics-adapter",
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
    k.add_argument("--client-ca-file", help=argparse.SUPPRESS)
    lg = p.add_argument_group("logging")
    lg.add_argument("--v", "-v", type=int, default=0, help="verbosity (4 and up: debug)")
    lg.add_argument(
        "--logtostderr", nargs="?", const="true", help="accepted for compatibility; logs always go to stderr"
    )
    return p


def _refuse(args: argparse.Namespace) -> None:
    for flag, advice in _REFUSED.items():
        if getattr(args, flag[2:].replace("-", "_"), None):
            raise ConfigError(f"{flag} is not supported by metrics-adapter: {advice}")


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


def prometheus_settings(args: argparse.Namespace) -> PrometheusSettings | None:
    if not args.prometheus_url:
        return None
    if not re.match(r"^https?://[^/]", args.prometheus_url):
        raise ConfigError(f"--prometheus-url {args.prometheus_url!r}: must be an http:// or https:// URL")
    headers = {}
    for h in args.prometheus_header:
        key, sep, value = h.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--prometheus-header {h!r}: expected NAME=VALUE")
        headers[key.strip()] = value
    if bool(args.prometheus_client_tls_cert_file) != bool(args.prometheus_client_tls_key_file):
        raise ConfigError("--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file go together")
    return PrometheusSettings(
        url=args.prometheus_url,
        token_file=args.prometheus_token_file,
        ca_file=args.prometheus_ca_file,
        client_cert=args.prometheus_client_tls_cert_file,
        client_key=args.prometheus_client_tls_key_file,
        headers=headers,
        verb=args.prometheus_verb,
        timeout=args.prometheus_timeout,
    )


def _serve(argv: Sequence[str]) -> int:
    from metrics_adapter import daemon
    from metrics_adapter.kube.client import load_settings
    from metrics_adapter.rules import config as rules_config
    from metrics_adapter.tls import serving_files

    args = build_parser().parse_args(argv)
    daemon.configure_logging(args.v)
    try:
        _refuse(args)
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
            kube_startup_timeout=args.kube_startup_timeout,
            insecure_skip_auth=args.insecure_skip_auth,
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
