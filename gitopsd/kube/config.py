"""Where the cluster is and how to authenticate: kubeconfig or in-cluster, read once.

gitopsd and metrics-adapter both start here, so ``--kubeconfig`` means the same to both, and
what kubectl means by it: an explicit file; else every file listed in ``$KUBECONFIG``, merged
(the first file to name a cluster, context or user wins it; ``current-context`` comes from the
first file that sets one; listed files that do not exist are skipped); else ~/.kube/config;
else the Pod's service account.

The ``kubernetes`` package reads the chosen files (embedded or file certificates relative to
the file that names them, tokens, exec plugins, auth providers, in-cluster tokens); its
blocking HTTP client is not used (see ``transport``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.kube.errors import ConfigError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
SERVICEACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_HINT = "(give --kubeconfig or set KUBECONFIG)"


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything the HTTP transport needs: the server URL, TLS material and credentials."""

    server: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    tls_server_name: str | None
    # Returns the current "Bearer ..." header value, or None. Tokens from exec plugins and
    # projected service-account tokens rotate, so it is asked again while the program runs.
    authorization: Callable[[], str | None]
    context: str
    namespace: str = "default"
    # Whether ``authorization`` may block (run an exec plugin, read a token file) and so is
    # called off the event loop; False for static tokens and client certificates alone.
    refreshes: bool = False
    # Embedded TLS material (a kubeconfig read from a Secret: ``gitopsd.clusters.kubeconfig``),
    # used instead of the files above; kept out of ``repr`` so no log line can show it.
    ca_data: str | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        if self.ca_data:
            ctx = ssl.create_default_context(cadata=self.ca_data)
        elif self.ca_file:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        else:
            ctx = ssl.create_default_context()
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_data and self.key_data:
            _load_embedded_chain(ctx, self.cert_data, self.key_data)
        elif self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def _load_embedded_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` reads only files: write them to a private directory, load, remove at once."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gitopsd-tls-") as tmp:  # mode 0700
        cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        ctx.load_cert_chain(str(cert_path), str(key_path))


@dataclass(frozen=True, slots=True)
class Located:
    """The kubeconfig files to merge, in order; none means the in-cluster service account."""

    files: tuple[str, ...]
    origin: str  # "--kubeconfig", "KUBECONFIG", "~/.kube/config" or "in-cluster"

    @property
    def in_cluster(self) -> bool:
        return not self.files


def locate(kubeconfig: str | os.PathLike[str] | None = None) -> Located:
    """Which files (or the service account) to read, by kubectl's precedence.

    Raises ConfigError, naming the file(s), when none is usable and no service account is mounted.
    """
    if kubeconfig:
        path = os.fspath(kubeconfig)
        if not Path(path).exists():
            raise ConfigError(f"kubeconfig {path} does not exist {_HINT}")
        return Located((path,), "--kubeconfig")
    listed = [os.path.expanduser(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        present = tuple(dict.fromkeys(p for p in listed if Path(p).exists()))
        if present:
            return Located(present, "KUBECONFIG")
        if IN_CLUSTER_TOKEN.exists():
            return Located((), "in-cluster")
        if len(listed) == 1:
            raise ConfigError(f"kubeconfig {listed[0]} does not exist {_HINT}")
        raise ConfigError(f"no file listed in KUBECONFIG exists ({', '.join(listed)}) {_HINT}")
    home = Path.home() / ".kube" / "config"
    if home.exists():
        return Located((str(home),), "~/.kube/config")
    if IN_CLUSTER_TOKEN.exists():
        return Located((), "in-cluster")
    raise ConfigError(f"kubeconfig {home} does not exist {_HINT}")


def merge(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Kubeconfig documents merged as kubectl merges $KUBECONFIG's files (first one wins)."""
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": []}
    for doc in documents:
        for section in ("clusters", "contexts", "users"):
            seen = {entry.get("name") for entry in merged[section]}
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in seen:
                    merged[section].append(entry)
                    seen.add(entry.get("name"))
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def context_namespace(config: Mapping[str, Any], context: str | None) -> tuple[str, str] | None:
    """The namespace set on ``context`` (else the current one) of a merged config, and that context."""
    wanted = context or config.get("current-context")
    for entry in config.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            namespace = (entry.get("context") or {}).get("namespace")
            if namespace:
                return str(namespace), str(wanted)
    return None


def default_namespace(kubeconfig: str | os.PathLike[str] | None, context: str | None) -> tuple[str, str]:
    """The namespace kubectl would use without ``-n``, and where it came from.

    The context's namespace; in a Pod (the service account chosen by ``locate``) the Pod's own
    namespace; else ``default``. Never raises: connecting says what is wrong with the files.
    """
    try:
        located = locate(kubeconfig)
    except ConfigError:
        return "default", "default"
    if located.in_cluster:
        own = _pod_namespace()
        return (own, "the Pod's namespace") if own else ("default", "default")
    found = context_namespace(merge(_documents(located.files)), context)
    if found:
        return found[0], f"kubeconfig context {found[1]}"
    return "default", "default"


def load(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Connection:
    """The connection ``locate`` chooses; ConfigError, one line naming the file, when it is unusable."""
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration

    located = locate(kubeconfig)
    cfg = Configuration()
    where = f"kubeconfig {', '.join(located.files)}" if located.files else "the in-cluster service account"
    try:
        if located.in_cluster:
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            used_context, namespace = "in-cluster", _pod_namespace() or "default"
        else:
            for path in located.files:
                problem = kubeconfig_problem(path)
                if problem:
                    raise ConfigError(problem)
            merged = merge(_documents(located.files))
            _load_files(located.files, merged.get("current-context"), context, cfg)
            used_context = context or str(merged.get("current-context") or "")
            found = context_namespace(merged, used_context)
            namespace = found[0] if found else "default"
    except ConfigError:
        raise
    except Exception as exc:  # the loader raises ConfigException, ValueError, KeyError, yaml errors...
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot use {where}: {detail}") from exc

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
        namespace=namespace,
        refreshes=cfg.refresh_api_key_hook is not None,
    )


def _load_files(files: Sequence[str], current: object, context: str | None, cfg: Any) -> None:
    """Fill ``cfg`` from ``files`` through the kubernetes package, merged kubectl's way."""
    from kubernetes.config import kube_config

    # The package's merger keeps the first cluster/context/user of each name (and each entry's
    # own file, for relative certificate paths) but takes current-context from the *last* file
    # that sets one; kubectl takes the first.
    merger = kube_config.KubeConfigMerger(os.pathsep.join(files))  # type: ignore[no-untyped-call]
    if current:
        merger.config.value["current-context"] = current
    loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
        config_dict=merger.config, active_context=context, config_base_path=None
    )
    loader.load_and_set(cfg)  # type: ignore[no-untyped-call]


def _documents(files: Sequence[str]) -> list[Mapping[str, Any]]:
    """Each file's mapping; one that cannot be read counts as empty (``load`` names the problem)."""
    import yaml

    docs: list[Mapping[str, Any]] = []
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            docs.append(data)
    return docs


def _pod_namespace() -> str:
    try:
        return SERVICEACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return ""


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
