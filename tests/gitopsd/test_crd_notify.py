"""spec.notify in the CRD: the schema and spec.py accept and refuse the same subscriptions, naming the same field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.gitopsd.test_crd import _dry_run, _parser_error, api, crd, namespace  # noqa: F401 (fixtures)

pytestmark = pytest.mark.cluster
SOURCE = {"url": "https://git.example.com/shop.git", "branch": "main"}

GOOD: list[list[dict[str, Any]]] = [
    [],
    [{"notifier": "team-slack"}],
    [{"notifier": "audit", "events": ["deploy.failed", "rollback.performed", "revision.held"], "severity": "error"}],
    [{"notifier": "a", "severity": "info"}, {"notifier": "b", "events": ["verification.failed", "freeze.blocked"]}],
]
BAD: list[tuple[str, list[Any]]] = [
    ("spec.notify[0].notifier", [{"events": ["deploy.failed"]}]),
    ("spec.notify[0].notifier", [{"notifier": "Team_Slack"}]),
    ("spec.notify[0].events[1]", [{"notifier": "a", "events": ["deploy.failed", "deploy.exploded"]}]),
    ("spec.notify[0].events", [{"notifier": "a", "events": []}]),
    ("spec.notify[0].severity", [{"notifier": "a", "severity": "warning"}]),
    ("spec.notify", [{"notifier": "a"}, {"notifier": "a", "severity": "error"}]),
]


@pytest.mark.parametrize("notify", GOOD, ids=[json.dumps(n)[:50] for n in GOOD])
def test_schema_and_parser_accept_the_same_subscriptions(
    api: client.ApiClient,  # noqa: F811
    namespace: str,  # noqa: F811
    notify: list[dict[str, Any]],
) -> None:
    """Every subscription list spec.py accepts passes admission."""
    spec = {"source": SOURCE, "notify": notify}
    assert _parser_error(spec) is None
    assert _dry_run(api, namespace, spec) is None


@pytest.mark.parametrize(("field", "notify"), BAD, ids=[f for f, _ in BAD])
def test_schema_and_parser_refuse_the_same_subscriptions(
    api: client.ApiClient,  # noqa: F811
    namespace: str,  # noqa: F811
    field: str,
    notify: list[Any],
) -> None:
    """A bad subscription is refused by both, naming the same field."""
    spec = {"source": SOURCE, "notify": notify}
    parsed = _parser_error(spec)
    assert parsed is not None and str(parsed).startswith(f"{field}:"), f"spec.py said: {parsed}"
    message = _dry_run(api, namespace, spec)
    assert message is not None, "the API server accepted it"
    assert f"{field}:" in message, message
