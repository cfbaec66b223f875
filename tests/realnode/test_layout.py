"""The real node's names, addresses and config files, as pure functions of its slot (no cluster)."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest

from e2e.realnode import config
from e2e.realnode.layout import NodeLayout

FAMILIES = ("ipv4", "ipv6")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_slot_owns_disjoint_ranges_and_valid_names(family: str) -> None:
    """Pod, Service and link ranges never overlap between slots; link names fit IFNAMSIZ; sockets fit sun_path."""
    deep = Path("/tmp/pytest-of-root/pytest-1234/test_some_rather_long_test_name_0/cluster")
    lays = [NodeLayout(deep, slot, family) for slot in range(256)]  # type: ignore[arg-type]
    nets = []
    for lay in lays:
        assert len(lay.host_veth) <= 15 and len(lay.node_veth) <= 15
        assert len(str(lay.containerd_socket)) < 104
        link = ipaddress.ip_network(f"{lay.host_ip}/{lay.prefix_len}", strict=False)
        assert ipaddress.ip_address(lay.node_ip) in link
        pods, services = ipaddress.ip_network(lay.pod_subnet), ipaddress.ip_network(lay.service_cidr)
        assert ipaddress.ip_address(lay.pod_gateway) in pods and ipaddress.ip_address(lay.service_ip) in services
        assert all(n.is_private for n in (link, pods, services))
        nets += [link, pods, services]
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b), (a, b)


def test_the_component_configs_point_inside_the_node_directory() -> None:
    """containerd's state, runc's root, CNI and the kubelet's directories are all under the node's own paths."""
    lay = NodeLayout(Path("/tmp/c"), 7, "ipv4")
    toml = config.containerd_toml(lay, "overlayfs", "/usr/lib/cni")
    assert 'root = "/tmp/c/node/containerd/root"' in toml and 'Root = "/tmp/c/node/runc"' in toml
    assert "netns_mounts_under_state_dir = true" in toml
    kubelet = config.kubelet_config(lay, 10250)
    assert kubelet["cgroupRoot"] == "/gitopsd-rn7" and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["podLogsDir"].startswith("/tmp/c/node/")
    cni = config.cni_conflist(lay)
    bridge = cni["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.248.7.0/24", "gateway": "10.248.7.1"}]]
    proxy = config.kube_proxy_config(lay, Path("/tmp/c/node/kube-proxy.kubeconfig"))
    assert proxy["mode"] == "iptables" and proxy["clusterCIDR"] == "10.248.7.0/24"
