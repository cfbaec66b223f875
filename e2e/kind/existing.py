"""A cluster started elsewhere, described as the harness describes its own.

``GITOPSD_E2E_KUBECONFIG=PATH`` makes the test fixtures use the cluster of that kubeconfig
instead of starting one. What the tests may assume then depends on what the cluster is:

- a harness cluster of this machine (``python -m e2e.cluster up --dir DIR``, kubeconfig
  ``DIR/kubeconfig``): everything, since its PKI, logs and kwok nodes are there and its API
  server reaches ``localhost``;
- anything else (kind): the API server cannot reach processes on this machine and its nodes
  are real. The test session skips what needs the former, and ``kwok-equivalent.yaml`` gives
  pods the kwok behaviour the suite relies on (any image runs, never-ready pods stay unready).

The IP families are read from the cluster's ``kubernetes`` Service: ``cluster_ipv4`` and
``cluster_ipv6`` yield this cluster for the families it serves (both for dual-stack).
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from e2e.bootstrap import Api
from e2e.cluster import MARKER_FILE, ClusterInfo, IPFamily

ENV_KUBECONFIG = "GITOPSD_E2E_KUBECONFIG"
# Set to 0 to treat a harness cluster like a remote one (to exercise the skips without kind).
ENV_HARNESS = "GITOPSD_E2E_HARNESS"
# The gitopsd image the cluster's nodes can run (set by `python -m e2e.kind`); unset on the
# harness, whose kwok nodes run no image at all.
ENV_IMAGE = "GITOPSD_E2E_IMAGE"

_LOOPBACK: dict[IPFamily, str] = {"ipv4": "127.0.0.1", "ipv6": "::1"}


class ExistingClusterError(Exception):
    """The kubeconfig cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True, slots=True)
class ExistingCluster:
    kubeconfig: Path
    harness: bool  # a harness cluster of this machine: its API server reaches localhost
    families: tuple[IPFamily, ...]
    infos: dict[IPFamily, ClusterInfo] = field(default_factory=dict)
    image: str | None = None

    def describe(self) -> str:
        kind = "harness cluster" if self.harness else "cluster"
        return f"{kind} of {self.kubeconfig} ({', '.join(self.families)})"


def from_environment(workdir: Path) -> ExistingCluster | None:
    """The cluster named by ``GITOPSD_E2E_KUBECONFIG``, or None when it is not set."""
    path = os.environ.get(ENV_KUBECONFIG, "").strip()
    if not path:
        return None
    return load(Path(path), workdir, image=os.environ.get(ENV_IMAGE) or None)


def load(kubeconfig: Path, workdir: Path, *, image: str | None = None) -> ExistingCluster:
    """Describe the cluster of ``kubeconfig``; files it embeds are written to ``workdir``."""
    where = f"{ENV_KUBECONFIG}={kubeconfig}"
    try:
        config = yaml.safe_load(kubeconfig.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ExistingClusterError(f"{where}: cannot read it: {exc}") from None
    cluster, user = _current(config, where)
    server = str(cluster.get("server") or "")
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ExistingClusterError(f"{where}: cluster.server {server!r} is not an https:// URL")
    directory = kubeconfig.parent
    harness = (directory / MARKER_FILE).exists() and os.environ.get(ENV_HARNESS, "1") != "0"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    if (directory / MARKER_FILE).exists():
        pki = directory / "pki"
        ca_cert, ca_key = pki / "ca.crt", pki / "ca.key"
        admin_cert, admin_key = pki / "admin.crt", pki / "admin.key"
    else:
        base = kubeconfig.parent
        ca_cert = _material(cluster, "certificate-authority", workdir / "ca.crt", base, where)
        admin_cert = _material(user, "client-certificate", workdir / "admin.crt", base, where)
        admin_key = _material(user, "client-key", workdir / "admin.key", base, where)
        ca_key = workdir / "ca.key"  # not known: only the harness's own serving certificates need it
    families, nodes = _inspect(server, ca_cert, admin_cert, admin_key, where)
    infos = {
        family: ClusterInfo(
            directory=directory if harness else workdir,
            ip_family=family,
            host=_LOOPBACK[family],
            api_url=server.rstrip("/"),
            kubeconfig=kubeconfig,
            ca_cert=ca_cert,
            ca_key=ca_key,
            admin_cert=admin_cert,
            admin_key=admin_key,
            node_names=nodes,
        )
        for family in families
    }
    return ExistingCluster(kubeconfig, harness, families, infos, image)


def _current(config: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    name = config.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    if name not in contexts:
        raise ExistingClusterError(f"{where}: current-context {name!r} is not among its contexts")
    context = contexts[name]
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []}
    if context.get("cluster") not in clusters:
        raise ExistingClusterError(f"{where}: context {name!r} names cluster {context.get('cluster')!r}, not defined")
    return clusters[context["cluster"]], users.get(context.get("user"), {})


def _material(section: dict[str, Any], key: str, target: Path, base: Path, where: str) -> Path:
    """``key`` as a file: the ``key-data`` written to ``target``, or the path ``key`` names."""
    data = section.get(f"{key}-data")
    if data:
        target.write_bytes(base64.b64decode(data))
        target.chmod(0o600)
        return target
    path = section.get(key)
    if path:
        resolved = Path(path) if Path(path).is_absolute() else base / path
        if not resolved.exists():
            raise ExistingClusterError(f"{where}: {key} {resolved} does not exist")
        return resolved
    raise ExistingClusterError(
        f"{where}: no {key}(-data); the e2e suite needs an admin client certificate "
        "(kind's kubeconfig has one: kind get kubeconfig --name NAME)"
    )


def _inspect(server: str, ca: Path, cert: Path, key: Path, where: str) -> tuple[tuple[IPFamily, ...], tuple[str, ...]]:
    """The cluster's IP families (from the kubernetes Service) and its node names."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    api = Api(server.rstrip("/"), ctx)
    try:
        svc = api.get("/api/v1/namespaces/default/services/kubernetes") or {}
        nodes = api.get("/api/v1/nodes") or {}
    except (OSError, RuntimeError) as exc:
        raise ExistingClusterError(f"{where}: cannot reach the API server at {server}: {exc}") from None
    spec = svc.get("spec") or {}
    names = spec.get("ipFamilies") or ["IPv6" if ":" in str(spec.get("clusterIP", "")) else "IPv4"]
    pairs: tuple[tuple[IPFamily, str], ...] = (("ipv4", "IPv4"), ("ipv6", "IPv6"))
    families = tuple(family for family, label in pairs if label in names)
    node_names = tuple(sorted(str((n.get("metadata") or {}).get("name")) for n in nodes.get("items") or []))
    return families, node_names
