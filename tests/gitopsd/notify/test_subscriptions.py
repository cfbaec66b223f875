"""spec.notify: parsing with field-named errors, and which events a subscription wants."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import SpecError
from gitopsd.notify.subscriptions import Subscription, parse_subscriptions
from tests.gitopsd.notify.events import event


def test_parse() -> None:
    """Defaults: every event, severity info; events become a set."""
    subs = parse_subscriptions([{"notifier": "team"}, {"notifier": "audit", "events": ["deploy.failed"],
                                                       "severity": "error"}])  # fmt: skip
    assert subs == (Subscription("team"), Subscription("audit", frozenset({"deploy.failed"}), "error"))
    assert parse_subscriptions(None) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"notifier": "a"}, "spec.notify: must be a list of subscriptions (got an object)"),
        (["team"], "spec.notify[0]: must be an object (got 'team')"),
        ([{}], "spec.notify[0].notifier: is required"),
        ([{"notifier": 3}], "spec.notify[0].notifier: must be a string (got 3; quote it in YAML)"),
        ([{"notifier": "Team"}], "spec.notify[0].notifier: 'Team' is not a notifier name (lowercase letters"),
        ([{"notifier": "a", "channel": "#x"}], "spec.notify[0].channel: unknown field (known: notifier, events"),
        ([{"notifier": "a", "event": []}], "spec.notify[0].event: unknown field (did you mean 'events'?)"),
        ([{"notifier": "a", "events": "deploy.failed"}], "spec.notify[0].events: must be a list of event types"),
        ([{"notifier": "a", "events": []}], "spec.notify[0].events: must not be empty (omit it for every event)"),
        ([{"notifier": "a", "events": ["deploy.failed", "oops"]}], "spec.notify[0].events[1]: must be deploy.started,"),
        ([{"notifier": "a", "severity": "warn"}], "spec.notify[0].severity: must be info or error (got 'warn')"),
        ([{"notifier": "a"}, {"notifier": "a"}], "spec.notify: lists a notifier twice ('a')"),
        ([{"notifier": f"n{i}"} for i in range(33)], "spec.notify: at most 32"),
    ],
)
def test_bad_subscriptions_name_the_field(raw: Any, message: str) -> None:
    """Each mistake is a SpecError naming the field."""
    with pytest.raises(SpecError) as info:
        parse_subscriptions(raw)
    assert str(info.value).startswith(message), str(info.value)


def test_wants_filters_by_type_and_severity() -> None:
    """An events list picks types; severity error keeps failures, rollbacks and holds only."""
    failures = Subscription("a", severity="error")
    assert failures.wants(event("health.failed")) and failures.wants(event("revision.held"))
    assert not failures.wants(event("deploy.succeeded")) and not failures.wants(event("deploy.started"))
    picked = Subscription("a", frozenset({"deploy.succeeded", "deploy.failed"}))
    assert picked.wants(event("deploy.succeeded")) and not picked.wants(event("health.failed"))
    both = Subscription("a", frozenset({"deploy.succeeded", "deploy.failed"}), "error")
    assert both.wants(event("deploy.failed")) and not both.wants(event("deploy.succeeded"))
    assert Subscription("a").wants(event("resumed"))


def test_the_dispatcher_drops_an_immediate_repeat_of_the_same_event() -> None:
    """The same event id twice in a row for one Environment is sent once; after another event it is sent again."""
    from gitopsd.config import NotifierConfig
    from gitopsd.notify.dispatcher import Notifications

    notifications = Notifications(
        [NotifierConfig("audit", "webhook", "https://audit.example.com", None)],
        lambda _ref: None,
        subscriptions=lambda _ns, _name: (Subscription("audit"),),
    )
    queue = notifications.deliveries["audit"]._queue
    failed, succeeded = event("health.failed"), event("deploy.succeeded")
    for e in (failed, failed, succeeded, failed):
        notifications.announce(e)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [failed, succeeded, failed]


@pytest.mark.parametrize(
    ("namespaces", "listed_only", "sent"),
    [
        (None, False, True),  # any namespace: today's behaviour
        (None, True, False),  # --no-cross-namespace-refs: a notifier must list the namespace
        (("ops",), True, True),
        (("ops",), False, True),
        (("payments",), False, False),  # its list holds whatever the flag says
        (("payments",), True, False),
    ],
)
def test_a_notifier_serves_only_the_namespaces_it_lists(
    namespaces: tuple[str, ...] | None, listed_only: bool, sent: bool
) -> None:
    """An Environment of namespace ``ops`` subscribed to ``audit``: delivered or not by the notifier's
    ``namespaces`` and --no-cross-namespace-refs."""
    from gitopsd.config import NotifierConfig
    from gitopsd.notify.dispatcher import Notifications

    config = NotifierConfig("audit", "webhook", "https://audit.example.com", None, namespaces=namespaces)
    notifications = Notifications(
        [config], lambda _ref: None, subscriptions=lambda _ns, _name: (Subscription("audit"),), listed_only=listed_only
    )
    notifications.announce(event("deploy.failed"))
    assert notifications.deliveries["audit"]._queue.qsize() == (1 if sent else 0)


def test_notifier_namespaces_are_checked_when_the_config_is_read() -> None:
    from gitopsd.config import ConfigError, parse_daemon_config

    def parse(notifier: dict[str, Any]) -> Any:
        return parse_daemon_config({"notifiers": [notifier]}, pod_namespace="gitopsd-system").notifiers[0]

    base = {"name": "audit", "type": "webhook", "url": "https://audit.example.com", "secretRef": {"name": "s"}}
    assert parse(base).namespaces is None
    assert parse({**base, "namespaces": ["ops", "web"]}).namespaces == ("ops", "web")
    with pytest.raises(ConfigError, match=r"notifiers\[0\]\.namespaces\[1\]: 'Web!' is not a namespace name"):
        parse({**base, "namespaces": ["ops", "Web!"]})
    with pytest.raises(ConfigError, match=r"notifiers\[0\]\.namespaces: must be a list"):
        parse({**base, "namespaces": "ops"})
