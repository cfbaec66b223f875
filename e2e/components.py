"""Command lines of the control-plane components, as pure functions of the cluster's layout.

Kept apart from process management so the flags can be read (and unit-tested) in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.binaries import Binaries
from e2e.pki import ClusterPKI
from e2e.procs import url_host

KWOK_STAGES = Path(__file__).with_name("kwok") / "stages.yaml"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one cluster's parts listen and keep their files."""

    directory: Path
    host: str  # 127.0.0.1 or ::1
    etcd_port: int
    etcd_peer_port: int
    api_port: int
    service_cidr: str
    pod_cidr: str
    hpa_sync_period: str
    hpa_downscale_stabilization: str

    @property
    def etcd_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.etcd_port}"

    @property
    def api_url(self) -> str:
        return f"https://{url_host(self.host)}:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"


def etcd(bins: Binaries, lay: Layout) -> list[str]:
    peer = f"http://{url_host(lay.host)}:{lay.etcd_peer_port}"
    return [
        str(bins.etcd),
        "--name=e2e",
        f"--data-dir={lay.directory / 'etcd'}",
        f"--listen-client-urls={lay.etcd_url}",
        f"--advertise-client-urls={lay.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=e2e={peer}",
        # A throwaway store: durability costs start-up time and buys nothing here.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def kube_apiserver(bins: Binaries, lay: Layout, tls: ClusterPKI, extra: Sequence[str] = ()) -> list[str]:
    """The kube-apiserver command line; ``extra`` flags come last, so they win over ours."""
    return [
        str(bins.kube_apiserver),
        f"--bind-address={lay.host}",
        f"--advertise-address={lay.host}",
        f"--secure-port={lay.api_port}",
        f"--etcd-servers={lay.etcd_url}",
        f"--cert-dir={lay.directory / 'apiserver'}",
        f"--tls-cert-file={tls.apiserver_cert}",
        f"--tls-private-key-file={tls.apiserver_key}",
        f"--client-ca-file={tls.ca_cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={tls.sa_pub}",
        f"--service-account-signing-key-file={tls.sa_key}",
        f"--service-cluster-ip-range={lay.service_cidr}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        # The aggregation layer, wired as kubeadm does it.
        f"--requestheader-client-ca-file={tls.front_proxy_ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={tls.front_proxy_client_cert}",
        f"--proxy-client-key-file={tls.front_proxy_client_key}",
        # Route to APIServices through their Service (ExternalName → localhost), not Endpoints.
        "--enable-aggregator-routing=false",
        # The "kubernetes" Service cannot have loopback endpoints, and no pod here needs them.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def _client_flags(lay: Layout) -> list[str]:
    # One instance each, so no leader election; no serving port, so no clash between clusters.
    return [f"--kubeconfig={lay.kubeconfig}", "--leader-elect=false", "--secure-port=0"]


def kube_controller_manager(bins: Binaries, lay: Layout, tls: ClusterPKI) -> list[str]:
    return [
        str(bins.kube_controller_manager),
        *_client_flags(lay),
        "--controllers=*",
        # Each controller acts as its own service account, as in a real cluster (RBAC applies).
        "--use-service-account-credentials=true",
        f"--root-ca-file={tls.ca_cert}",
        f"--service-account-private-key-file={tls.sa_key}",
        f"--cluster-signing-cert-file={tls.ca_cert}",
        f"--cluster-signing-key-file={tls.ca_key}",
        f"--service-cluster-ip-range={lay.service_cidr}",
        "--allocate-node-cidrs=false",
        f"--horizontal-pod-autoscaler-sync-period={lay.hpa_sync_period}",
        f"--horizontal-pod-autoscaler-downscale-stabilization={lay.hpa_downscale_stabilization}",
        "--v=1",
    ]


def kube_scheduler(bins: Binaries, lay: Layout) -> list[str]:
    return [str(bins.kube_scheduler), *_client_flags(lay), "--v=1"]


def kwok(bins: Binaries, lay: Layout) -> list[str]:
    return [
        str(bins.kwok),
        f"--kubeconfig={lay.kubeconfig}",
        f"--config={KWOK_STAGES}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={lay.pod_cidr}",
        f"--node-ip={lay.host}",
        # Renew node Leases: without them the node lifecycle controller sees no heartbeat within
        # its grace period (~50 s after start), calls the nodes NotReady and marks every pod
        # running then not Ready, and kwok never plays the ready stage for those pods again.
        "--node-lease-duration-seconds=40",
    ]
