"""The object label index: indexed selection agrees with a plain scan, through adds, label changes and deletes."""

from __future__ import annotations

import itertools

from metrics_adapter.kube.mapper import ResourceInfo
from metrics_adapter.kube.objects import _Store
from metrics_adapter.selectors import parse

PODS = ResourceInfo("", "v1", "pods", "pod", "Pod", True)
SELECTORS = [
    "",
    "app=web",
    "app==web,tier=front",
    "app in (web,batch)",
    "app notin (web)",
    "tier",
    "!tier",
    "app=web,tier notin (front)",
    "app in (web),!canary",
    "app=nothing",
    "app!=web",
    "shard>1",
]


def _pod(name: str, ns: str, labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}}


def _scan(store: _Store, ns: str, text: str) -> list[str]:
    sel = parse(text)
    return sorted(n for n, labels in store.objects.get(ns, {}).items() if sel.matches(labels))


def test_indexed_selection_matches_a_scan() -> None:
    """For every selector form, the index returns exactly what scanning every object returns."""
    store = _Store(PODS)
    apps, tiers = ["web", "batch", "api"], ["front", "back", None]
    for i, (app, tier) in enumerate(itertools.product(apps, tiers)):
        labels = {"app": app, "shard": str(i % 4)}
        if tier:
            labels["tier"] = tier
        if i % 5 == 0:
            labels["canary"] = "true"
        store.apply("ADDED", _pod(f"p{i}", "a", labels))
    store.apply("ADDED", _pod("other", "b", {"app": "web"}))
    for text in SELECTORS:
        assert store.select("a", parse(text)) == _scan(store, "a", text), text
    # Change labels and delete: the index follows.
    store.apply("MODIFIED", _pod("p0", "a", {"app": "batch"}))
    store.apply("DELETED", _pod("p1", "a", {}))
    for text in SELECTORS:
        assert store.select("a", parse(text)) == _scan(store, "a", text), text
    assert store.select("b", parse("app=web")) == ["other"]


def test_generation_changes_only_when_labels_change() -> None:
    """Status-only updates (same labels) leave the namespace generation alone, so memoised answers stay valid."""
    store = _Store(PODS)
    store.apply("ADDED", _pod("p", "a", {"app": "web"}))
    gen = store.generations["a"]
    store.apply("MODIFIED", _pod("p", "a", {"app": "web"}))
    assert store.generations["a"] == gen
    store.apply("MODIFIED", _pod("p", "a", {"app": "api"}))
    assert store.generations["a"] != gen
