"""Secret values the daemon config points at (webhook secrets, notifier tokens), read from the cluster.

The config file names Secrets, never holds their values. They are read once before the daemon
starts (a missing Secret or key is a config error naming both, and nothing starts), then
re-read every ``refresh`` seconds so a rotated secret takes effect without a restart. A Secret
that disappears later keeps its last value and is logged, rather than silently turning a
webhook endpoint off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gitopsd.aio import wait_set
from gitopsd.kube import KubeAPI, KubeError
from gitopsd.kube import secrets as kube_secrets

log = structlog.get_logger("gitopsd.secrets")


@dataclass(frozen=True, slots=True)
class SecretRef:
    namespace: str
    name: str
    key: str

    def __str__(self) -> str:
        return f"Secret {self.namespace}/{self.name} key {self.key!r}"


async def read(kube: KubeAPI, ref: SecretRef) -> bytes:
    """The value of ``ref``; ``kube.secrets.SecretError`` names the Secret and key when missing or empty."""
    value = (await kube_secrets.read_key(kube, ref.namespace, ref.name, ref.key)).strip()
    if not value:
        raise kube_secrets.SecretError(f"{ref} is empty")
    return value


class SecretStore:
    """The current value of every referenced Secret key."""

    def __init__(self, kube: KubeAPI, refs: Iterable[SecretRef], *, refresh: float = 60.0) -> None:
        self.kube = kube
        self.refs = tuple(dict.fromkeys(refs))
        self.refresh_every = refresh
        self._values: dict[SecretRef, bytes] = {}

    def get(self, ref: SecretRef) -> bytes | None:
        return self._values.get(ref)

    async def load(self) -> None:
        """Read every value; raise at the first missing one (used before the daemon starts)."""
        values = await asyncio.gather(*(read(self.kube, ref) for ref in self.refs))
        self._values = dict(zip(self.refs, values, strict=True))

    async def keep_fresh(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await wait_set(stop, self.refresh_every):
                return
            for ref in self.refs:
                try:
                    self._values[ref] = await read(self.kube, ref)
                except (kube_secrets.SecretError, KubeError) as exc:
                    log.warning("secret not refreshed; keeping the last value", secret=str(ref), error=str(exc))
