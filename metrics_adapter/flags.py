"""The flags and error helpers ``metrics-adapter`` and ``metrics-adapter check`` share.

Both commands take the same Prometheus flags, refuse the same prometheus-adapter flags they
cannot honour, ignore the same harmless ones with one warning line, and report errors the same
way (one ``error:`` line, kubectl's exit codes); kept apart from the command line itself so ``check`` does not
import ``cli``, which starts it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from gitopsd.usage import EXIT_USAGE, one_line
from metrics_adapter.errors import ConfigError
from metrics_adapter.sources.prometheus import PrometheusSettings

EXIT_PIPE = 141  # 128 + SIGPIPE

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


# Flags of prometheus-adapter we cannot honour: refused by name, by the server and by `check`.
REFUSED = {
    "--prometheus-auth-config": "use --prometheus-token-file / --prometheus-ca-file / --prometheus-client-tls-*",
    "--prometheus-auth-incluster": "use --prometheus-token-file with the service account token path",
    "--client-ca-file": "only front-proxy client certificates and bearer tokens are accepted; "
    "other clients authenticate with tokens",
}

# Flags of prometheus-adapter's deployment (its own, klog's, the generic API server's) that change
# nothing a client sees here: accepted, and named in one warning line. Each takes a value.
IGNORED = (
    "--audit-log-path",
    "--audit-log-maxage",
    "--audit-log-maxbackup",
    "--audit-log-maxsize",
    "--audit-log-format",
    "--audit-log-mode",
    "--audit-log-compress",
    "--audit-policy-file",
    "--audit-webhook-config-file",
    "--audit-webhook-mode",
    "--vmodule",
    "--log-flush-frequency",
    "--log-dir",
    "--log-file",
    "--stderrthreshold",
)
# Boolean ones (`--logtostderr`, `--logtostderr=false`); --disable-http2 is what this server does anyway.
IGNORED_SWITCHES = ("--logtostderr", "--alsologtostderr", "--profiling", "--contention-profiling", "--disable-http2")


def compat_flags(p: argparse.ArgumentParser) -> None:
    """The refused and the ignored prometheus-adapter flags (hidden from --help)."""
    for flag in ("--prometheus-auth-config", "--prometheus-auth-incluster"):
        p.add_argument(flag, nargs="?", const="true", help=argparse.SUPPRESS)
    p.add_argument("--client-ca-file", help=argparse.SUPPRESS)
    for flag in IGNORED:
        p.add_argument(flag, help=argparse.SUPPRESS)
    for flag in IGNORED_SWITCHES:
        p.add_argument(flag, nargs="?", const="true", help=argparse.SUPPRESS)


def _given(args: argparse.Namespace, flag: str) -> bool:
    return getattr(args, flag[2:].replace("-", "_"), None) is not None


def refuse(args: argparse.Namespace) -> None:
    """Raise ConfigError for a flag metrics-adapter cannot honour, naming it and what to use."""
    for flag, advice in REFUSED.items():
        if _given(args, flag):
            raise ConfigError(f"{flag} is not supported by metrics-adapter: {advice}")


def ignored(args: argparse.Namespace) -> list[str]:
    """The ignored flags given, in the order of IGNORED / IGNORED_SWITCHES."""
    return [f for f in (*IGNORED, *IGNORED_SWITCHES) if _given(args, f)]


def warn_ignored(args: argparse.Namespace, extra: Sequence[str] = ()) -> None:
    """One ``warning:`` line on stderr naming every ignored flag given (none: nothing printed)."""
    names = [*ignored(args), *extra]
    if names:
        print(
            f"warning: ignoring prometheus-adapter flags that change nothing here: {', '.join(names)}", file=sys.stderr
        )
