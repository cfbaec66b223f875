"""Running the e2e suite against a cluster the harness did not start: kind, or any other.

``existing`` turns a kubeconfig (``GITOPSD_E2E_KUBECONFIG``) into the ``ClusterInfo`` the test
fixtures yield. ``scripts/kind-e2e.sh`` creates a kind cluster from the configs here (IPv4,
IPv6, dual-stack), builds and loads the image, installs ``kwok-equivalent.yaml`` and runs the
suite against it (docs/kind.md).
"""
