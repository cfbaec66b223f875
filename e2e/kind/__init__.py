"""Running the e2e suite against a cluster the harness did not start: kind, or any other.

``existing`` turns a kubeconfig (``GITOPSD_E2E_KUBECONFIG``) into the ``ClusterInfo`` the test
fixtures yield; ``run`` (``python -m e2e.kind``) creates a kind cluster from the configs here
(IPv4, IPv6, dual-stack), builds and loads the image, installs ``manifests/`` and runs the
suite against it.
"""
