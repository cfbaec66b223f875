"""Several clusters from one gitopsd: an Environment with ``spec.kubeConfig`` deploys into another cluster.

The Environment, its status and its Events stay on the management cluster (where gitopsd
runs); everything that touches what it deploys lives with the **target**: discovery, the watch
cache, apply, prune, health, and the release records (``records_namespace``). Each target has
its own connection pool, short timeouts and a circuit breaker (``breaker``), and the daemon
caps each cluster's share of workers (``share``), so a dead or black-holed cluster costs its own
Environments time and nothing else.

Parts: ``spec`` (the field), ``kubeconfig`` (Secret → connection, embedded credentials only),
``kube`` (the breaker-guarded client), ``registry`` (one ``Target`` per Secret, rebuilt when the
Secret changes), ``share`` (workers per cluster), ``errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitopsd.clusters.errors import ClusterUnreachable, KubeConfigInvalid
from gitopsd.clusters.kube import TargetKube
from gitopsd.clusters.kubeconfig import connection_of
from gitopsd.clusters.spec import KubeConfigRef
from gitopsd.kube.secrets import SecretNotFound, read

if TYPE_CHECKING:  # gitopsd.spec imports clusters.spec, so this package loads before it
    from gitopsd.kube.port import KubeAPI
    from gitopsd.spec import Environment

IN_CLUSTER = "in-cluster"
WHERE = "spec.kubeConfig.secretRef"


def cluster_name(env: Environment) -> str:
    """What ``status.cluster`` and the CLUSTER column show: the kubeconfig Secret's name, else ``in-cluster``."""
    ref = env.spec.kube_config
    return ref.name if ref is not None else IN_CLUSTER


def cluster_key(env: Environment) -> str:
    """The cluster's identity (registry, worker share, metrics label): ``namespace/secret`` or ``in-cluster``."""
    ref = env.spec.kube_config
    return f"{env.namespace}/{ref.name}" if ref is not None else IN_CLUSTER


def records_namespace(env: Environment) -> str:
    """Where the target keeps ``env``'s release records: the namespace of the same name as the
    Environment's own (records stay keyed by the Environment's namespace/name, so whichever
    gitopsd drives the target later finds them; see ``registry``)."""
    return env.namespace


async def connect(management: KubeAPI, env: Environment) -> TargetKube | None:
    """A client of ``env``'s target cluster (None: in-cluster), built from the kubeconfig Secret; the
    caller closes it. ``KubeConfigInvalid`` names the Secret and the problem."""
    ref = env.spec.kube_config
    if ref is None:
        return None
    try:
        secret = await read(management, env.namespace, ref.name, where=WHERE)
    except SecretNotFound as exc:
        raise KubeConfigInvalid(str(exc)) from None
    return TargetKube(connection_of(secret, ref), cluster=cluster_key(env))


__all__ = [
    "IN_CLUSTER",
    "ClusterUnreachable",
    "KubeConfigInvalid",
    "KubeConfigRef",
    "TargetKube",
    "cluster_key",
    "cluster_name",
    "connect",
    "records_namespace",
]
