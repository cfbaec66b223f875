"""Secrets read again and again (Git credentials, at every reconcile) served from a watch by name.

An idle daemon resolves each Environment on its interval, and each resolve needs the
credentials of ``spec.source.secretRef`` before it can ask the remote anything. Reading that
Secret with a GET every time is a request per Environment per interval for a value that almost
never changes. ``SecretWatch`` does what controller-runtime's cached client does, narrowed to the
Secrets actually asked for (a daemon may read only a few Secrets of a namespace full of them):

- the first ``read`` of a name starts one list+watch of that Secret alone (``fieldSelector
  metadata.name=<name>`` in its namespace) and waits for its first list (``first_list_timeout``;
  slower than that, it answers with a GET meanwhile);
- later reads answer from memory: no request. A change or a deletion arrives by the watch, so
  rotated credentials are used at the next reconcile, without a restart; ``subscribe`` tells
  who must act at once (the daemon queues the Environments of a rotated kubeconfig Secret);
- a name not read for ``idle`` seconds has its watch stopped and its values forgotten: the
  watches (and the Secret data in memory) are bounded by the names in use;
- a watch the API server refuses (RBAC without ``list``/``watch`` on secrets) is no failure:
  reads in that namespace fall back to a GET each (for ``retry_refused`` seconds, then a watch
  is tried again) and one warning says which verbs to grant.

Values never reach a log. ``PlainSecretReader`` is the GET-per-read reader: the CLI's, and
the fallback's. Both satisfy ``SecretReader``, the port the engine reads credentials through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from gitopsd.kube import secrets as kube_secrets
from gitopsd.kube.client import Kube
from gitopsd.kube.reflector import Change, Reflector
from gitopsd.kube.secrets import SECRETS, Getter, SecretData, SecretNotFound

log = structlog.get_logger("gitopsd.kube.secretwatch")

Key = tuple[str, str]  # (namespace, name)


class SecretReader(Protocol):
    """Reads a Secret's decoded values; ``SecretNotFound`` when it does not exist."""

    async def read(self, namespace: str, name: str, *, where: str = "") -> SecretData: ...


@dataclass(frozen=True, slots=True)
class PlainSecretReader:
    """One GET per read (``kube.secrets.read``)."""

    kube: Getter

    async def read(self, namespace: str, name: str, *, where: str = "") -> SecretData:
        return await kube_secrets.read(self.kube, namespace, name, where=where)


@dataclass(slots=True)
class _Watched:
    reflector: Reflector
    task: asyncio.Task[None]
    last_read: float
    #: A read found its first list in: later changes are news (the first list's ADDED is not).
    primed: bool = field(default=False)


#: Told ``(namespace, name)`` of a watched Secret whose data changed, or that appeared or went.
OnChange = Callable[[str, str], None]


class SecretWatch:
    """Secrets served from a watch per name (see the module docstring); ``close`` stops every watch.

    ``kube`` answers the GETs of the fallback; ``watch_client`` (default ``kube``) carries the
    watches, so that long requests never wait behind short ones in one connection pool.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        watch_client: Kube | None = None,
        idle: float = 1800.0,
        first_list_timeout: float = 10.0,
        retry_refused: float = 1800.0,
        watch_timeout: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle <= 0 or first_list_timeout <= 0 or retry_refused <= 0:
            raise ValueError("secret watch: idle, first_list_timeout and retry_refused must be more than 0")
        self.plain = PlainSecretReader(kube)
        self.watch_client = watch_client or kube
        self.idle = idle
        self.first_list_timeout = first_list_timeout
        self.retry_refused = retry_refused
        self.watch_timeout = watch_timeout
        self._clock = clock
        self._watched: dict[Key, _Watched] = {}
        self._refused: dict[str, float] = {}  # namespace -> when a watch may be tried again
        self._warned = False
        self._janitor: asyncio.Task[None] | None = None
        self._closed = False
        self._subscribers: list[OnChange] = []

    def subscribe(self, on_change: OnChange) -> None:
        """Call ``on_change(namespace, name)`` when a watched Secret's data changes, or it is
        created or deleted, as the watch sees it (not for its first list; not for an edit of its
        labels or annotations alone). Secrets read by GET (a refused watch) tell nobody."""
        self._subscribers.append(on_change)

    def watching(self) -> list[Key]:
        """The (namespace, name) of every Secret watched now."""
        return sorted(self._watched)

    async def read(self, namespace: str, name: str, *, where: str = "") -> SecretData:
        """Secret ``namespace/name`` decoded, as ``kube.secrets.read`` returns it (and the same
        ``SecretNotFound``), from the watch of that name once its first list arrived."""
        now = self._clock()
        self._sweep(now)
        if self._closed or self._is_refused(namespace, now):
            return await self.plain.read(namespace, name, where=where)
        watched = self._watched.get((namespace, name)) or self._start(namespace, name, now)
        watched.last_read = now
        reflector = watched.reflector
        if not reflector.synced and reflector.failure is None:
            await self._first_list(reflector)
        if reflector.failure is not None:
            self._refuse(namespace, reflector.failure, now)
            return await self.plain.read(namespace, name, where=where)
        if not reflector.synced:  # the first list is slow: answer now, the watch serves later reads
            return await self.plain.read(namespace, name, where=where)
        watched.primed = True
        obj = reflector.get(namespace, name)
        if obj is None:
            raise SecretNotFound(f"{SecretData(namespace, name, {}, where).label} not found")
        return kube_secrets.decode(obj, namespace, name, where)

    async def close(self) -> None:
        """Stop every watch and forget every value; later reads are GETs."""
        self._closed = True
        tasks = [w.task for w in self._watched.values()]
        if self._janitor is not None:
            tasks.append(self._janitor)
        self._watched.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- watches ---------------------------------------------------------------------------

    def _start(self, namespace: str, name: str, now: float) -> _Watched:
        def changed(change: Change) -> None:
            watched = self._watched.get((namespace, name))
            if watched is None or not watched.primed or watched.reflector is not reflector:
                return
            old, new = change.old, change.new
            if old is not None and new is not None and old.get("data") == new.get("data"):
                return
            for subscriber in list(self._subscribers):
                try:
                    subscriber(namespace, name)
                except Exception:  # one subscriber's bug must not stop the watch
                    log.exception("secret change subscriber failed", secret=f"{namespace}/{name}")

        reflector = Reflector(
            self.watch_client,
            SECRETS,
            namespace,
            changed,
            field_selector=f"metadata.name={name}",
            retry_failed=self.retry_refused,
            watch_timeout=self.watch_timeout,
        )
        task = asyncio.create_task(reflector.run(), name=f"watch secret {namespace}/{name}")
        watched = _Watched(reflector, task, now)
        self._watched[(namespace, name)] = watched
        if self._janitor is None:
            self._janitor = asyncio.create_task(self._sweep_forever(), name="secret watch janitor")
        return watched

    async def _first_list(self, reflector: Reflector) -> None:
        """Wait until the first list arrived, the watch failed, or ``first_list_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.first_list_timeout
        # A refused list never sets ``synced``: look at ``failure`` between short waits.
        while not await reflector.wait_synced(min(0.1, max(deadline - loop.time(), 0.0))):
            if reflector.failure is not None or loop.time() >= deadline:
                return

    def _stop(self, keys: list[Key]) -> None:
        for key in keys:
            watched = self._watched.pop(key, None)
            if watched is not None:
                watched.task.cancel()

    def _sweep(self, now: float) -> None:
        """Stop the watches of names not read for ``idle`` seconds."""
        self._stop([key for key, w in self._watched.items() if now - w.last_read >= self.idle])

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.idle / 4)
            self._sweep(self._clock())

    # -- refusal ---------------------------------------------------------------------------

    def _is_refused(self, namespace: str, now: float) -> bool:
        until = self._refused.get(namespace)
        if until is None:
            return False
        if now < until:
            return True
        del self._refused[namespace]
        return False

    def _refuse(self, namespace: str, reason: str, now: float) -> None:
        """Watches in ``namespace`` fail: stop them all, and read there with GETs for a while."""
        self._refused[namespace] = now + self.retry_refused
        self._stop([key for key in self._watched if key[0] == namespace])
        report = log.warning if not self._warned else log.info
        self._warned = True
        report(
            "Secrets cannot be watched; reading them with a GET at each use",
            namespace=namespace,
            reason=reason.splitlines()[0][:300],
            fix="grant gitopsd's ServiceAccount the verb 'watch' (and 'list') on secrets",
            retry_in=self.retry_refused,
        )


__all__ = ["PlainSecretReader", "SecretReader", "SecretWatch"]
