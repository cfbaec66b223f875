"""The cluster an Environment deploys into, for the commands that read or diff what it deployed.

An Environment with ``spec.kubeConfig`` lives on the management cluster (the one ``--kubeconfig``
names) but deploys into a target cluster, which holds its objects and its release records.
``history``, ``rollback``, ``diff`` and ``render`` read those from the target, connecting the
way the daemon does: through the kubeconfig Secret (which the user must be allowed to read),
embedded credentials only. The Environment itself, its status, rollback and verify requests,
the Git credentials and the render stay on the management cluster. Records on a target are
signed with that target's key (``gitopsd-system/gitopsd-release-signing`` there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gitopsd import clusters
from gitopsd.cli.common import CliError
from gitopsd.clusters.records import TargetStore
from gitopsd.clusters.registry import KEY_NAMESPACE
from gitopsd.kube import Kube, KubeAPI
from gitopsd.releases import ReleaseStore, signing
from gitopsd.spec import Environment


@asynccontextmanager
async def target_of(management: Kube, env: Environment) -> AsyncIterator[KubeAPI]:
    """``management`` itself for an in-cluster Environment, else a client of its target (closed after).

    A Secret that cannot be used is a ``CliError`` naming the Environment, the Secret and the problem.
    """
    try:
        remote = await clusters.connect(management, env)
    except clusters.KubeConfigInvalid as exc:
        raise CliError(f"Environment {env.namespace}/{env.name}: spec.kubeConfig: {exc}") from None
    if remote is None:
        yield management
        return
    async with remote:
        yield remote


def remote_store(target: KubeAPI) -> ReleaseStore:
    """The release records kept on a target, checked with the target's own signing key (read only)."""
    return TargetStore(target, keys=signing.Keyring(target, KEY_NAMESPACE, create=False, required=False))


__all__ = ["remote_store", "target_of"]
