"""Where the cluster is and how to authenticate: kubeconfig or in-cluster, read once.

The ``kubernetes`` package already understands every kubeconfig form (embedded or file
certificates, tokens, exec plugins, in-cluster service accounts), so it reads the file here;
its blocking HTTP client is not used (see ``client``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitopsd.kube.errors import ConfigError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything the HTTP client needs: the server URL, TLS material and credentials."""

    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    tls_server_name: str | None
    # Returns the current "Bearer ..." header value (tokens from exec plugins and projected
    # service-account tokens rotate, so it is asked for on every request), or None.
    authorization: Callable[[], str | None]
    context: str

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def load(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Connection:
    """Read ``kubeconfig`` (else ``$KUBECONFIG``, else ~/.kube/config, else in-cluster)."""
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration

    cfg = Configuration()
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    try:
        if path or default.exists() or not IN_CLUSTER_TOKEN.exists():
            source = path or str(default)
            if not Path(source).exists():
                raise ConfigError(f"kubeconfig {source} does not exist (give --kubeconfig or set KUBECONFIG)")
            problem = kubeconfig_problem(source)
            if problem:
                raise ConfigError(problem)
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=source, context=context, client_configuration=cfg, persist_config=False
            )
            used_context = context or _current_context(source)
        else:
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            used_context = "in-cluster"
    except ConfigError:
        raise
    except Exception as exc:  # the loader raises ConfigException, ValueError, KeyError, yaml errors...
        raise ConfigError(f"cannot use kubeconfig {path or default}: {exc}") from exc

    def authorization() -> str | None:
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        # The kubernetes package keeps a bearer token (kubeconfig "token", in-cluster service
        # account) under "BearerToken" since v30 and under "authorization" before; the value
        # already starts with "Bearer ".
        value = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        return str(value) if value else None

    return Connection(
        server=str(cfg.host).rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify=bool(cfg.verify_ssl),
        tls_server_name=getattr(cfg, "tls_server_name", None),
        authorization=authorization,
        context=used_context,
    )


def kubeconfig_problem(path: str) -> str | None:
    """What makes the kubeconfig file ``path`` unusable, as one line (None if nothing is wrong with its form).

    The kubernetes loader's own words for these are a multi-line parser dump, a Python
    ``TypeError`` ("list indices must be integers") or "Invalid kube-config file"; gitopsd and
    metrics-adapter both ask here first, and each raises its own error with the answer.
    """
    import yaml

    from gitopsd import yamlerrors

    p = Path(path)
    if not p.exists():
        return f"kubeconfig {path} does not exist"
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return f"kubeconfig {path}: cannot read it: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        return f"kubeconfig {path}: not UTF-8 text (byte {exc.start})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return f"kubeconfig {yamlerrors.describe(exc, path)}"
    if data is not None and not isinstance(data, dict):
        return (
            f"kubeconfig {path}: not a kubeconfig (expected a mapping with clusters, contexts and users,"
            f" got a {type(data).__name__})"
        )
    return None


def _current_context(path: str) -> str:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("current-context", ""))
