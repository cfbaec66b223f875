"""Names, addresses and paths of one real node, as pure functions of its slot number.

Every real node on the machine takes a free slot ``n`` (0-255). The slot names everything the
node creates outside its directory, so two nodes never clash and ``down`` (or the reaper after a
SIGKILL) finds all of it again from the slot alone:

- a network namespace ``gitopsd-rn<n>`` holding containerd, kubelet, kube-proxy, the CNI bridge
  and kube-proxy's iptables rules (so they never touch the host's tables);
- a veth pair ``grn<n>h`` (host) / ``grn<n>n`` (node) on a private link network, with a host
  route to the pod network; the node namespace has no default route, so nothing leaves the
  machine; host routes send the pod and Service ranges to the node (kube-proxy's rules apply);
- a cgroup ``/gitopsd-rn<n>`` in every cgroup-v1 hierarchy, the kubelet's cgroup root;
- ``/run/gitopsd-realnode/<n>.json`` (who owns the slot) and ``n<n>/`` (containerd's sockets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IPFamily = Literal["ipv4", "ipv6"]
# Slot records and the nodes' sockets (a unix socket path must stay under ~104 bytes, which a
# cluster directory under pytest's tmp_path does not).
RUN_ROOT = Path("/run/gitopsd-realnode")
NODE_NAME = "real-node"
NODE_LABEL = "e2e.gitopsd.dev/real-node"


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Where one real node keeps its files and which names and addresses it owns."""

    directory: Path  # the cluster's directory; the node's files live in directory / "node"
    slot: int
    ip_family: IPFamily

    @property
    def root(self) -> Path:
        return self.directory / "node"

    @property
    def netns(self) -> str:
        return f"gitopsd-rn{self.slot}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_veth(self) -> str:
        return f"grn{self.slot}h"

    @property
    def node_veth(self) -> str:
        return f"grn{self.slot}n"

    @property
    def cgroup_root(self) -> str:
        return f"/gitopsd-rn{self.slot}"

    # -- addresses ------------------------------------------------------------------------

    @property
    def prefix_len(self) -> int:
        """Prefix length of the host-node link."""
        return 30 if self.ip_family == "ipv4" else 64

    @property
    def host_ip(self) -> str:
        """The host's end of the link: where pods reach the API server and host services."""
        return f"10.249.{self.slot}.1" if self.ip_family == "ipv4" else f"fd00:10:249:{self.slot:x}::1"

    @property
    def node_ip(self) -> str:
        """The node's InternalIP (kubelet, kube-proxy)."""
        return f"10.249.{self.slot}.2" if self.ip_family == "ipv4" else f"fd00:10:249:{self.slot:x}::2"

    @property
    def pod_subnet(self) -> str:
        return f"10.248.{self.slot}.0/24" if self.ip_family == "ipv4" else f"fd00:10:248:{self.slot:x}::/64"

    @property
    def pod_gateway(self) -> str:
        return f"10.248.{self.slot}.1" if self.ip_family == "ipv4" else f"fd00:10:248:{self.slot:x}::1"

    @property
    def service_cidr(self) -> str:
        """The cluster's Service range: one per slot, so the host can route each cluster's
        ClusterIPs to its own node (the API server reaches aggregated APIs through them)."""
        return f"10.97.{self.slot}.0/24" if self.ip_family == "ipv4" else f"fd00:10:97:{self.slot:x}::/112"

    @property
    def service_ip(self) -> str:
        """The first Service IP (the ``kubernetes`` Service)."""
        return f"10.97.{self.slot}.1" if self.ip_family == "ipv4" else f"fd00:10:97:{self.slot:x}::1"

    @property
    def wildcard(self) -> str:
        """The API server's bind address when a real node must reach it."""
        return "0.0.0.0" if self.ip_family == "ipv4" else "::"  # noqa: S104 - the node is on a private link

    # -- files ----------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """Short-path directory of the node's sockets."""
        return RUN_ROOT / f"n{self.slot}"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"
