"""The reconciler's ``Announcer``: each event goes to the notifiers its Environment subscribed to.

``announce`` runs on the reconcile path, so it only looks up the subscriptions and appends to
queues; an event identical (same id) to the one just announced for the same Environment is
dropped, so a failure reported twice in other words (a health check that "timed out", then is
"not ready") reaches people once; the requests are built (with the current secret values) and sent by each notifier's
``Delivery`` task. Events exist only for state transitions, which the Environment's persisted
status records, so a restarted daemon does not announce (or send) them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from gitopsd.config import NotifierConfig
from gitopsd.lifecycle import LifecycleEvent
from gitopsd.notify import messages
from gitopsd.notify.delivery import Delivery, NotificationMetrics, RetryPolicy
from gitopsd.notify.messages import Request
from gitopsd.notify.subscriptions import Subscription
from gitopsd.secretstore import SecretRef

log = structlog.get_logger("gitopsd.notify")

Lookup = Callable[[str, str], Sequence[Subscription]]


class Notifications:
    def __init__(
        self,
        notifiers: Sequence[NotifierConfig],
        secret: Callable[[SecretRef], bytes | None],
        *,
        registry: CollectorRegistry | None = None,
        subscriptions: Lookup | None = None,
        drain: float = 5.0,
        listed_only: bool = False,
    ) -> None:
        """``listed_only`` (--no-cross-namespace-refs): a notifier serves only the namespaces it lists."""
        self.secret = secret
        self.configs = {n.name: n for n in notifiers}
        self.listed_only = listed_only
        self.subscriptions: Lookup = subscriptions or (lambda _ns, _name: ())
        self.metrics = NotificationMetrics(registry or CollectorRegistry())
        self.deliveries = {
            n.name: Delivery(
                n.name,
                self._renderer(n),
                self.metrics,
                policy=RetryPolicy(retries=n.retries, timeout=n.timeout, base=n.backoff),
                queue_size=n.queue_size,
                drain=drain,
            )
            for n in notifiers
        }
        self._missing: set[tuple[str, str, str]] = set()
        self._last: dict[str, str] = {}  # Environment uid -> id of the last event announced

    def announce(self, event: LifecycleEvent) -> None:
        if self._last.get(event.uid) == event.id:
            log.debug("repeated event not sent again", environment=event.environment, event_type=event.type)
            return
        self._last[event.uid] = event.id
        if len(self._last) > 100_000:  # bounded: forget the oldest Environment
            self._last.pop(next(iter(self._last)))
        try:
            subscriptions = self.subscriptions(event.namespace, event.environment)
        except Exception:  # the Announcer contract: never raise into the reconciler
            log.exception("subscriptions not read", environment=f"{event.namespace}/{event.environment}")
            return
        for sub in subscriptions:
            delivery = self.deliveries.get(sub.notifier)
            if delivery is None:
                self._refuse(event, sub.notifier, "names a notifier the daemon config does not define",
                             defined=sorted(self.deliveries))  # fmt: skip
                continue
            config = self.configs[sub.notifier]
            if not config.serves(event.namespace, listed_only=self.listed_only):
                rule = "the notifier's namespaces" if config.namespaces else "--no-cross-namespace-refs"
                self._refuse(event, sub.notifier, "names a notifier that does not serve this namespace: not sent",
                             namespaces=list(config.namespaces or ()), rule=rule)  # fmt: skip
                continue
            if sub.wants(event):
                delivery.offer(event)

    def _refuse(self, event: LifecycleEvent, notifier: str, problem: str, **detail: object) -> None:
        """One warning per Environment and notifier: ``spec.notify`` ``problem``."""
        key = (event.namespace, event.environment, notifier)
        if key in self._missing:
            return
        self._missing.add(key)
        log.warning(
            f"spec.notify {problem}", environment=f"{event.namespace}/{event.environment}", notifier=notifier, **detail
        )

    async def run(self, stop: asyncio.Event) -> None:
        if not self.deliveries:
            await stop.wait()
            return
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(d.run(stop, session) for d in self.deliveries.values()))

    def _renderer(self, notifier: NotifierConfig) -> Callable[[LifecycleEvent], Request | None]:
        def secret_value() -> bytes | None:
            if notifier.secret_ref is None:
                return None
            value = self.secret(notifier.secret_ref)
            if value is None:
                raise LookupError(f"notifier {notifier.name}: {notifier.secret_ref} has no value")
            return value

        def render(event: LifecycleEvent) -> Request | None:
            if notifier.type == "webhook":
                assert notifier.url is not None
                return messages.webhook(event, notifier.url, secret_value())
            if notifier.type == "slack":
                value = secret_value()
                url = value.decode() if value else notifier.url
                assert url is not None
                return messages.slack(event, url)
            token = secret_value()
            assert token is not None and notifier.url is not None
            return messages.commit_status(notifier.type, event, notifier.url, token, notifier.repository)

        return render
