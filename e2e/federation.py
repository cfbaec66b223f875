"""Two metrics-adapters in front of each other, as the federation tests and bench run them.

The *provider* serves Redis queues and is registered nowhere; the *front* lists it under
``externalProviders`` with a service-account token that may read external metrics (the
provider authorizes it with a SubjectAccessReview, as any caller). Both are the real program.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from e2e.cluster import ClusterInfo

_RBAC = """
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: forwarder, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-external-metrics-reader}}
rules:
- apiGroups: [external.metrics.k8s.io]
  resources: ["*"]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-external-metrics-reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-external-metrics-reader}}
subjects:
- {{kind: ServiceAccount, name: forwarder, namespace: {ns}}}
"""


def _kubectl(cluster: ClusterInfo, *args: str, input: str | None = None) -> str:
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        raise RuntimeError("kubectl not found: install it or set KUBECTL")
    out = subprocess.run(
        [binary, f"--kubeconfig={cluster.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def forwarder_token(cluster: ClusterInfo, directory: Path) -> Path:
    """A file holding a token of a new service account allowed to read every external metric."""
    ns = f"fed-{uuid.uuid4().hex[:6]}"
    _kubectl(cluster, "apply", "-f", "-", input=_RBAC.format(ns=ns))
    token = _kubectl(cluster, "create", "token", "forwarder", "-n", ns, "--duration=2h").strip()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "token"
    path.write_text(token)
    return path


def provider_entry(name: str, port: int, cluster: ClusterInfo, token: Path, metrics: list[str]) -> str:
    """One ``externalProviders`` entry (YAML flow mapping) pointing at an adapter on localhost."""
    listed = ", ".join(f"'{m}'" for m in metrics)
    return (
        f"- {{name: {name}, url: 'https://localhost:{port}', caFile: '{cluster.ca_cert}', "
        f"tokenFile: '{token}', metrics: [{listed}]}}"
    )
