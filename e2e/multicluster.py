"""Several clusters for one gitopsd: target clusters, the kubeconfig Secrets that reach them, outages.

A management cluster (where gitopsd and the Environments live) deploys into target clusters
through kubeconfig Secrets (``spec.kubeConfig.secretRef``). This module starts targets
(``LocalCluster``, each in its own directory, one kwok node: they only hold applied objects and
release records), makes credentials on them (a client certificate signed by the target's CA, or
a ServiceAccount's token that can be revoked), and writes the kubeconfig a Secret carries:
everything embedded, ``https://`` server, nothing that points at a file.

A :class:`Route` puts a :class:`~e2e.tcpproxy.TcpProxy` between gitopsd and a target, so a test
can make the target refuse connections (``down``) or vanish (``blackhole``) without touching
the target itself, and move the route (``retarget``) as when a load balancer's backend changes.
Tests and benches still read the target directly through ``info.kubeconfig`` (the admin's).

Command line (for trying things by hand)::

    python -m e2e.multicluster up --dir /tmp/mc     # two targets (ipv4, ipv6), prints their kubeconfigs
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from e2e import bootstrap, pki, procs
from e2e.binaries import Binaries
from e2e.cluster import ClusterInfo, IPFamily, LocalCluster, new_cluster_dir
from e2e.tcpproxy import TcpProxy

# The key a kubeconfig Secret holds it under by default (Flux's; ``value.yaml`` is the fallback).
KUBECONFIG_KEY = "value"


@dataclass(frozen=True, slots=True)
class Credential:
    """How a kubeconfig authenticates: a client certificate and key (PEM), or a bearer token."""

    user: str
    cert_pem: bytes = b""
    key_pem: bytes = b""
    token: str = ""

    def kubeconfig_user(self) -> dict[str, str]:
        if self.token:
            return {"token": self.token}
        return {
            "client-certificate-data": _b64(self.cert_pem),
            "client-key-data": _b64(self.key_pem),
        }


@dataclass(slots=True)
class Target:
    """One running target cluster (ours to stop)."""

    name: str
    cluster: LocalCluster
    info: ClusterInfo

    @property
    def ca_pem(self) -> bytes:
        return self.info.ca_cert.read_bytes()

    def api(self) -> bootstrap.Api:
        """The admin's client, straight to the API server (never through a route)."""
        ctx = ssl.create_default_context(cafile=str(self.info.ca_cert))
        ctx.load_cert_chain(str(self.info.admin_cert), str(self.info.admin_key))
        return bootstrap.Api(self.info.api_url, ctx)


@dataclass(slots=True)
class Route:
    """A TCP proxy in front of a target's API server: what gitopsd's kubeconfig points at."""

    target: Target
    proxy: TcpProxy

    @property
    def server(self) -> str:
        return f"https://{self.proxy.address}"

    def down(self) -> None:
        """Connections refused (the API server stopped)."""
        self.proxy.down()

    def up(self) -> None:
        self.proxy.up()

    def blackhole(self) -> None:
        """Connections accepted and never answered (the host gone from the network)."""
        self.proxy.blackhole()

    def forward(self) -> None:
        self.proxy.forward()

    def retarget(self, target: Target) -> None:
        """Send new connections to another target's API server (open ones are cut)."""
        self.proxy.down()
        self.proxy.target = _host_port(target.info.api_url)
        self.target = target
        self.proxy.up()

    def close(self) -> None:
        self.proxy.down()


@dataclass(slots=True)
class Targets:
    """Target clusters started together, by name."""

    by_name: dict[str, Target] = field(default_factory=dict)
    _routes: list[Route] = field(default_factory=list)

    def __getitem__(self, name: str) -> Target:
        return self.by_name[name]

    def __iter__(self) -> Iterator[Target]:
        return iter(self.by_name.values())

    def route(self, target: Target) -> Route:
        """A new proxy in front of ``target`` (closed by ``close_routes`` or ``stop``)."""
        host, port = _host_port(target.info.api_url)
        route = Route(target, TcpProxy(host, port, host=host).up())
        self._routes.append(route)
        return route

    def close_routes(self) -> None:
        routes, self._routes = self._routes, []
        for route in routes:
            route.close()

    def stop(self) -> None:
        self.close_routes()
        for target in self.by_name.values():
            target.cluster.stop(remove=True)


def start_targets(
    families: Mapping[str, IPFamily],
    *,
    binaries: Binaries | None = None,
    nodes: int = 1,
    timeout: float = 300.0,
    directory: Path | None = None,
) -> Targets:
    """Start one LocalCluster per name, side by side; all or none are left running."""
    clusters = {
        name: LocalCluster(
            (directory / name) if directory else new_cluster_dir(f"target-{name}"),
            family,
            nodes=nodes,
            binaries=binaries,
            tie_to_parent=directory is None,
        )
        for name, family in families.items()
    }
    started = Targets()
    # One after the other, from this thread: PR_SET_PDEATHSIG ties each component to the thread
    # that started it, so starting them from a pool's threads would kill them when those end.
    try:
        for name, cluster in clusters.items():
            started.by_name[name] = Target(name, cluster, cluster.start(timeout))
    except BaseException:
        for cluster in clusters.values():
            cluster.stop(remove=directory is None)
        raise
    return started


# -- credentials -----------------------------------------------------------------------------


def client_certificate(target: Target, user: str, groups: Sequence[str] = ()) -> Credential:
    """A client certificate for ``user`` (in ``groups``, e.g. ``system:masters``) signed by the target's CA.

    The API server cannot revoke a certificate: to take one's rights away, delete the
    (Cluster)RoleBinding that names ``user``.
    """
    ca_cert, ca_key = pki.load_ca(target.info.ca_cert, target.info.ca_key)
    cert, key = pki.issue(ca_cert, ca_key, user, org=",".join(groups) or None, client=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credential(user, cert.public_bytes(serialization.Encoding.PEM), key_pem)


def bind_cluster_role(target: Target, subject: Mapping[str, str], role: str = "cluster-admin") -> str:
    """A ClusterRoleBinding of ``role`` to ``subject`` (``{"kind": "User", "name": ...}``); its name."""
    name = f"e2e-{role}-{subject['name'].replace(':', '-')}"[:63].rstrip("-.")
    subj = dict(subject)
    if subj["kind"] != "ServiceAccount":
        subj["apiGroup"] = "rbac.authorization.k8s.io"
    target.api().post(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subj],
        },
    )
    return name


def service_account_token(
    target: Target, namespace: str, account: str, *, secret: str | None = None, timeout: float = 60.0
) -> tuple[Credential, str]:
    """A long-lived token of ServiceAccount ``namespace/account`` (created if missing) on the target.

    The token lives in a ``kubernetes.io/service-account-token`` Secret (returned second):
    deleting that Secret revokes the token at once, which is what a rotation test needs.
    """
    api = target.api()
    if api.get(f"/api/v1/namespaces/{namespace}") is None:
        api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    if api.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}") is None:
        api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
        )
    name = secret or f"{account}-token-{time.monotonic_ns() % 10**8}"
    api.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": account}},
        },
    )
    found: dict[str, str] = {}

    def filled() -> bool:
        data = (api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}") or {}).get("data") or {}
        if data.get("token"):
            found["token"] = base64.b64decode(data["token"]).decode()
            return True
        return False

    procs.wait_until(f"the token of Secret {namespace}/{name}", filled, timeout=timeout)
    return Credential(f"system:serviceaccount:{namespace}:{account}", token=found["token"]), name


def revoke_token(target: Target, namespace: str, secret: str) -> None:
    """Delete a token Secret: the API server refuses the token from now on."""
    target.api().delete(f"/api/v1/namespaces/{namespace}/secrets/{secret}")


# -- kubeconfigs and Secrets ------------------------------------------------------------------


def kubeconfig(
    server: str, ca_pem: bytes, credential: Credential, *, name: str = "target", namespace: str | None = None
) -> dict[str, Any]:
    """A self-contained kubeconfig: CA and credential embedded, one context, current."""
    context: dict[str, str] = {"cluster": name, "user": credential.user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": credential.user, "user": credential.kubeconfig_user()}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
    }


def kubeconfig_secret(
    name: str, namespace: str, config: Mapping[str, Any] | str | bytes, *, key: str = KUBECONFIG_KEY
) -> dict[str, Any]:
    """A Secret carrying a kubeconfig under ``key`` (a dict is dumped as YAML; text or bytes as is)."""
    if isinstance(config, Mapping):
        raw = yaml.safe_dump(dict(config), sort_keys=False).encode()
    else:
        raw = config.encode() if isinstance(config, str) else config
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(raw).decode()},
    }


def admin_credential(target: Target, user: str = "gitopsd-e2e") -> Credential:
    """A client certificate in ``system:masters``: every right on the target, impersonation included."""
    return client_certificate(target, user, groups=("system:masters",))


def own_admin(info: ClusterInfo) -> Credential:
    """The harness admin's certificate of ``info``: to reach a cluster as a remote target of itself
    (a kubeconfig Secret pointing back at the management cluster, e.g. for the dashboard test)."""
    return Credential("kubernetes-admin", info.admin_cert.read_bytes(), info.admin_key.read_bytes())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.multicluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start two target clusters (ipv4 'a', ipv6 'b') and leave them running")
    up.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    targets = start_targets({"a": "ipv4", "b": "ipv6"}, directory=directory)
    out: dict[str, Any] = {}
    for target in targets:
        config = kubeconfig(target.info.api_url, target.ca_pem, admin_credential(target))
        path = directory / f"{target.name}.kubeconfig.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        out[target.name] = {"api": target.info.api_url, "kubeconfig": str(path), "dir": str(target.info.directory)}
    print(json.dumps(out, indent=2))
    print(f"stop with: python -m e2e.cluster down --dir {directory}/a (and /b)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
