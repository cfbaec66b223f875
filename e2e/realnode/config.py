"""Configuration files of the real node's components, as pure functions of its layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from e2e.realnode.images import PAUSE_IMAGE
from e2e.realnode.layout import NODE_LABEL, NODE_NAME, NodeLayout

CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
RUNC = "/usr/sbin/runc"


def containerd_toml(lay: NodeLayout, snapshotter: str, cni_bin_dir: str, runc: str = RUNC) -> str:
    """containerd 1.6 config (version 2): every path under the node's directory, CRI on."""
    c = lay.root / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
# Snapshotters and services a test node has no use for (and that probe the host at start).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{lay.containerd_socket}"

[ttrpc]
  address = "{lay.run_dir / "containerd.ttrpc.sock"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Pod network namespaces are mounted under the state directory, so `down` finds them.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "{snapshotter}"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  Root = "{lay.root / "runc"}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{cni_bin_dir}"
  conf_dir = "{lay.cni_conf_dir}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{c / "certs.d"}"
"""


def cni_conflist(lay: NodeLayout) -> dict[str, Any]:
    """A bridge with host-local addresses; no masquerade (the node namespace has no way out)."""
    default_dst = "0.0.0.0/0" if lay.ip_family == "ipv4" else "::/0"
    return {
        "cniVersion": "0.4.0",
        "name": "gitopsd-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": lay.pod_subnet, "gateway": lay.pod_gateway}]],
                    "routes": [{"dst": default_dst}],
                    "dataDir": str(lay.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(lay: NodeLayout, port: int) -> dict[str, Any]:
    """KubeletConfiguration: cgroupfs on cgroups v1, own cgroup root, own ports and directories."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": lay.cgroup_root,
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{lay.containerd_socket}",
        "imageServiceEndpoint": f"unix://{lay.containerd_socket}",
        "address": lay.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # The API server reaches the kubelet (logs, exec) without a client certificate; the
        # kubelet is only reachable from the host and its own pods.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(lay.root / "pod-logs"),
        "resolvConf": str(lay.root / "resolv.conf"),
        "registerNode": True,
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        # Shared disks run nearly full on busy machines: evict only when really out of space.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "maxPods": 60,
    }


def kubelet_argv(kubelet: Path, lay: NodeLayout, config: Path, kubeconfig: Path) -> list[str]:
    return [
        str(kubelet),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={lay.kubelet_dir}",
        f"--cert-dir={lay.kubelet_dir / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={lay.node_ip}",
        f"--node-labels={NODE_LABEL}=true",
        "--v=1",
    ]


def kube_proxy_config(lay: NodeLayout, kubeconfig: Path) -> dict[str, Any]:
    localhost = "127.0.0.1" if lay.ip_family == "ipv4" else "[::1]"
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "bindAddress": lay.node_ip,
        "clusterCIDR": lay.pod_subnet,
        "healthzBindAddress": f"{localhost}:10256",
        "metricsBindAddress": f"{localhost}:10249",
        # Pod → Service → pod on the same bridge: SNAT so the reply comes back through the node.
        "iptables": {"masqueradeAll": True, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        # nf_conntrack_max is read-only outside the initial namespace: leave it alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
    }


def node_kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    """A kubeconfig that reaches the API server at its pod-network address.

    The server certificate names ``kubernetes`` but not that address, so the client checks the
    name instead (``tls-server-name``).
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "e2e",
                "cluster": {"server": server, "certificate-authority": str(ca), "tls-server-name": "kubernetes"},
            }
        ],
        "users": [{"name": "node", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "node"}}],
        "current-context": "e2e",
    }


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
