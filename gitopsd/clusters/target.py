"""``Target``: what the reconciles of one cluster share (client, applier, ledgers, apply memos).

The management cluster's own target (``in-cluster``) is made of the ``Services``' parts; each
remote one is built by ``registry.Registry`` from its kubeconfig Secret. A run resolves its
target once (``RunContext.target``) and takes from it everything that touches what it deploys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gitopsd.apply import Applier, ApplyMemo
from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.liveness import Liveness
from gitopsd.kube.port import KubeAPI
from gitopsd.releases import Ledgers

#: Appliers kept for impersonated accounts (least recently used dropped first; one is cheap to
#: make again): a team renaming its account in a loop cannot grow the daemon.
MAX_IDENTITIES = 1024


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class Target:
    """One cluster as the engine writes to it (``name``: ``namespace/secret`` or ``in-cluster``)."""

    name: str
    kube: KubeAPI
    applier: Applier
    ledgers: Ledgers
    memos: dict[str, ApplyMemo] = field(default_factory=dict)
    appliers: dict[str, Applier] = field(default_factory=dict)
    breaker: Breaker | None = None
    #: Asks a remote target that has not answered lately whether it is there (``liveness``).
    liveness: Liveness | None = None
    #: The kubeconfig (key and bytes) it was built from, hashed: a change rebuilds the target.
    fingerprint: str = ""
    close_: Callable[[], Awaitable[None]] = _nothing
    #: Runs using it now, and when it was last used (an idle target is closed).
    users: int = 0
    last_used: float = 0.0
    #: Namespaces seen to exist there (the records' namespaces), so each is checked once.
    namespaces: set[str] = field(default_factory=set)

    @property
    def remote(self) -> bool:
        return self.breaker is not None

    def applier_for(self, user: str | None) -> Applier:
        """The applier acting as ``user`` (None: gitopsd's own identity), sharing the cache."""
        if user is None:
            return self.applier
        applier = self.appliers.pop(user, None)
        if applier is None:
            applier = self.applier.acting_as(self.kube.impersonating(user))
        self.appliers[user] = applier  # most recently used last
        while len(self.appliers) > MAX_IDENTITIES:
            self.appliers.pop(next(iter(self.appliers)))
        return applier

    def memo(self, uid: str, identity: str | None = None) -> ApplyMemo:
        """The applier's memory of what it last applied for Environment ``uid`` as ``identity``
        (a new identity starts empty: every object is dry-run again as it)."""
        memo = self.memos.get(uid)
        if memo is None or memo.identity != identity:
            memo = self.memos[uid] = ApplyMemo(identity=identity)
        return memo

    def forget(self, uid: str) -> None:
        self.memos.pop(uid, None)
        self.ledgers.forget(uid)

    async def close(self) -> None:
        await self.close_()


__all__ = ["MAX_IDENTITIES", "Target"]
