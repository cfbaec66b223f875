"""What the Environment informer keeps of each Environment, and what each change asks for."""

from __future__ import annotations

import json
from typing import Any

from gitopsd.informer import Wake, kept, wake


def environment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {
            "name": "web",
            "namespace": "ops",
            "uid": "u-1",
            "generation": 2,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}',
                "gitopsd.dev/requested-at": "t1",
            },
            "managedFields": [
                {"manager": "gitopsd", "operation": "Apply", "subresource": "status", "fieldsV1": {"f:status": {}}},
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}},
            ],
        },
        "spec": {"source": {"url": "https://git.example/apps.git", "path": "apps/web"}},
        "status": status,
    }


def test_kept_drops_managed_fields_and_the_last_applied_annotation() -> None:
    """managedFields and kubectl's copy of the object go; spec, status and other annotations stay unchanged."""
    raw = environment(release=3, inventory=[{"kind": "ConfigMap", "name": "a"}])
    out = kept(raw)
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["annotations"] == {"gitopsd.dev/requested-at": "t1"}
    assert out["spec"] == raw["spec"]
    assert out["status"] == raw["status"]
    assert {k: v for k, v in out["metadata"].items() if k != "annotations"} == {
        "name": "web",
        "namespace": "ops",
        "uid": "u-1",
        "generation": 2,
    }
    assert "managedFields" in raw["metadata"], "the input is not modified"


def test_kept_shares_strings_between_environments() -> None:
    """Two Environments decoded apart hold one copy of each key and short value."""
    text = json.dumps(environment(release=1))
    one, two = kept(json.loads(text)), kept(json.loads(text))
    assert one["spec"]["source"]["url"] is two["spec"]["source"]["url"]
    assert next(iter(one["spec"])) is next(iter(two["spec"]))


def test_wake_is_unchanged_by_what_kept_drops() -> None:
    """A change only in managedFields or the last-applied annotation asks for nothing."""
    old = environment(release=1)
    new = environment(release=1)
    new["metadata"]["managedFields"].append({"manager": "x", "operation": "Update"})
    new["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    assert wake(kept(old), kept(new)) == Wake()
