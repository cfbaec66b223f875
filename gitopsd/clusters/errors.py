"""What can go wrong reaching another cluster, as the conditions a user sees.

::

    kube.Unreachable
    └── ClusterUnreachable        the target cluster did not answer (or its circuit is open):
                                  transient, the Environment keeps Reconciling and backs off
    kube.ConfigError
    └── KubeConfigInvalid         the kubeconfig Secret cannot be used: Stalled until fixed

Both name the cluster (the Secret's ``namespace/name``) and never hold a credential: messages
are built from what was wrong, never from the Secret's values.
"""

from __future__ import annotations

from gitopsd.kube.errors import ConfigError, Unreachable


class ClusterUnreachable(Unreachable):
    """The target cluster did not answer in time, or its circuit breaker is open."""

    reason = "ClusterUnreachable"
    transient = True

    def __init__(self, cluster: str, message: str, *, reason: str | None = None, transient: bool | None = None) -> None:
        super().__init__(f"cluster {cluster}: {message}", reason=reason, transient=transient)
        self.cluster = cluster


class KubeConfigInvalid(ConfigError):
    """``spec.kubeConfig.secretRef`` names a Secret that holds no usable kubeconfig."""

    reason = "KubeConfigInvalid"
    transient = False


__all__ = ["ClusterUnreachable", "KubeConfigInvalid"]
