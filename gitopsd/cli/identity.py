"""Who is at the keyboard, as the cluster sees them: recorded with rollbacks and freeze overrides.

Asked of the API server (a ``SelfSubjectReview``, GA since Kubernetes 1.28) rather than read
from the kubeconfig, whose user entry is only a local nickname. A server that cannot answer
gives the kubeconfig's user name, marked as such.
"""

from __future__ import annotations

import getpass

from gitopsd.kube import Kube, KubeError

_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


async def whoami(kube: Kube) -> str:
    try:
        review = await kube.create(_PATH, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    except KubeError:
        review = {}
    name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
    if isinstance(name, str) and name:
        return name
    try:
        local = getpass.getuser()
    except (KeyError, OSError):
        local = "unknown"
    return f"{local} (local user; the cluster did not say)"
