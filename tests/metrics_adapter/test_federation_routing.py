"""Which provider answers a name, and what discovery lists: the router's decisions on plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import CollectorRegistry

from metrics_adapter import api
from metrics_adapter.federation.router import Federation
from metrics_adapter.provider import Provider
from metrics_adapter.rules.config import parse

PROVIDERS = """
externalProviders:
- {name: keda, url: 'https://keda', insecureSkipTLSVerify: true, metrics: ['s0-*', 'jobs_*', exact_one]}
- {name: other, url: 'https://other', insecureSkipTLSVerify: true, metrics: ['jobs_*', 'other_*']}
- {name: rest, url: 'https://rest', insecureSkipTLSVerify: true}
"""


@dataclass
class _Snapshot:
    external: dict[str, Any]


@dataclass
class _Catalog:
    snapshot: _Snapshot | None
    config: Any


@dataclass
class _Ours:
    """What the router reads of our provider: queue names and discovered externalRules names."""

    queues: dict[str, Any]
    catalog: _Catalog


def _ours(queues: tuple[str, ...] = (), discovered: tuple[str, ...] | None = (), rules: bool = False) -> Provider:
    snapshot = None if discovered is None else _Snapshot(dict.fromkeys(discovered))
    config = type("C", (), {"external_rules": ("rule",) if rules else ()})()
    return cast(Provider, _Ours({q: [] for q in queues}, _Catalog(snapshot, config)))


def _federation(text: str = PROVIDERS) -> Federation:
    return Federation(parse(text, "cfg.yaml").external_providers, CollectorRegistry(), "cfg.yaml")


def _name(fed: Federation, metric: str, ours: Provider) -> str | None:
    upstream = fed.route(metric, ours)
    return upstream.cfg.name if upstream else None


def test_exact_names_then_globs_in_order_then_the_catch_all() -> None:
    """An exact name wins; globs go to the first provider listing one; the rest to the catch-all."""
    fed, ours = _federation(), _ours()
    assert _name(fed, "exact_one", ours) == "keda"
    assert _name(fed, "s0-rabbitmq-orders", ours) == "keda"
    assert _name(fed, "jobs_backlog", ours) == "keda"  # both globs match: config order
    assert _name(fed, "other_x", ours) == "other"
    assert _name(fed, "anything", ours) == "rest"


def test_our_names_win_over_globs_and_the_catch_all() -> None:
    """A queue or a discovered externalRules name is ours whatever the providers' globs say."""
    fed = _federation()
    ours = _ours(queues=("jobs_mine",), discovered=("s0-from-prometheus",), rules=True)
    assert _name(fed, "jobs_mine", ours) is None
    assert _name(fed, "s0-from-prometheus", ours) is None
    assert _name(fed, "s0-other", ours) == "keda"


def test_before_our_discovery_only_exact_names_are_forwarded() -> None:
    """With externalRules not yet discovered, a glob match may be ours: it is not forwarded."""
    fed, ours = _federation(), _ours(discovered=None, rules=True)
    assert _name(fed, "exact_one", ours) == "keda"
    assert _name(fed, "s0-rabbitmq-orders", ours) is None
    assert _name(fed, "anything", ours) is None


def test_without_a_catch_all_unlisted_names_are_ours() -> None:
    """A name no provider lists is not forwarded (we answer 404 ourselves)."""
    fed = _federation(
        "externalProviders:\n- {name: keda, url: 'https://keda', insecureSkipTLSVerify: true, metrics: ['s0-*']}\n"
    )
    assert _name(fed, "unknown", _ours()) is None


def test_discovery_lists_ours_and_each_providers_routed_names() -> None:
    """Exact names are listed before the provider answers; discovered names only where routed to it."""
    fed = _federation()
    ours = _ours(queues=("jobs_mine",))
    keda, other, rest = fed.upstreams
    keda.discovered = ("s0-rabbitmq-orders", "jobs_mine", "unrelated")  # jobs_mine: ours; unrelated: not listed
    other.discovered = ("jobs_x", "other_y")  # jobs_x goes to keda (first glob), so other does not list it
    rest.discovered = ("free_name",)
    ours_list = [api.resource_entry("jobs_mine", True, "ExternalMetricValueList")]
    names = [r["name"] for r in fed.merge(ours_list, ours)]
    assert names == ["exact_one", "free_name", "jobs_mine", "other_y", "s0-rabbitmq-orders"]


def test_a_provider_without_a_list_yet_contributes_its_exact_names() -> None:
    """Before any discovery answer (or while it is down) exact names are still listed."""
    fed = _federation()
    assert [r["name"] for r in fed.merge([], _ours())] == ["exact_one"]
