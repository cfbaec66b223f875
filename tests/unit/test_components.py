"""Component command lines follow the cluster's IP family and wiring."""

from __future__ import annotations

from pathlib import Path

from e2e import components
from e2e.binaries import Binaries
from e2e.pki import ClusterPKI


def _bins() -> Binaries:
    return Binaries(*(Path(f"/bin/{n}") for n in ("etcd", "apiserver", "kcm", "sched", "kwok")))


def _tls() -> ClusterPKI:
    return ClusterPKI(*(Path(f"/pki/{i}") for i in range(11)))


def _layout(host: str, cidr: str) -> components.Layout:
    return components.Layout(
        directory=Path("/c"),
        host=host,
        etcd_port=2379,
        etcd_peer_port=2380,
        api_port=6443,
        service_cidr=cidr,
        pod_cidr="10.244.0.1/16",
        hpa_sync_period="5s",
        hpa_downscale_stabilization="30s",
    )


def test_ipv6_layout_brackets_urls_and_binds_the_ipv6_loopback() -> None:
    """On IPv6, etcd and kube-apiserver listen on [::1] and the service CIDR is IPv6."""
    lay = _layout("::1", "fd00:10:96::/112")
    assert lay.api_url == "https://[::1]:6443"
    etcd = components.etcd(_bins(), lay)
    assert "--listen-client-urls=http://[::1]:2379" in etcd
    assert "--initial-cluster=e2e=http://[::1]:2380" in etcd
    api = components.kube_apiserver(_bins(), lay, _tls())
    assert "--bind-address=::1" in api
    assert "--etcd-servers=http://[::1]:2379" in api
    assert "--service-cluster-ip-range=fd00:10:96::/112" in api


def test_aggregation_layer_and_hpa_flags_are_set() -> None:
    """The front-proxy wiring is on, routing goes through Services, and the HPA syncs quickly."""
    lay = _layout("127.0.0.1", "10.96.0.0/16")
    api = components.kube_apiserver(_bins(), lay, _tls())
    assert "--requestheader-allowed-names=front-proxy-client" in api
    assert any(a.startswith("--proxy-client-cert-file=") for a in api)
    assert "--enable-aggregator-routing=false" in api
    kcm = components.kube_controller_manager(_bins(), lay, _tls())
    assert "--horizontal-pod-autoscaler-sync-period=5s" in kcm
    assert "--controllers=*" in kcm
    # No fixed ports: several clusters must fit on one machine.
    assert "--secure-port=0" in kcm and "--secure-port=0" in components.kube_scheduler(_bins(), lay)
