"""A real Kubernetes node for the local cluster: containerd, runc, CNI, kubelet and kube-proxy.

Started by ``python -m e2e.cluster up --real-node`` (or ``LocalCluster(real_node=True)``) next
to the kwok nodes; see :mod:`e2e.realnode.node` for the order of things and
:mod:`e2e.realnode.layout` for what it creates on the host.
"""
