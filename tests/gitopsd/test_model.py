"""Unit tests for the shared values (gitopsd/model.py)."""

from __future__ import annotations

import pytest

from gitopsd.model import ObjectRef, Revision


def test_revision_round_trip() -> None:
    """Revisions print in Flux's notation and parse back, pinned commits without a ref."""
    for rev in (Revision("main", "a" * 40), Revision("v1.2.0", "b" * 40), Revision("", "c" * 40)):
        assert Revision.parse(str(rev)) == rev
    assert str(Revision("main", "abc")) == "main@sha1:abc"
    with pytest.raises(ValueError, match="not a revision"):
        Revision.parse("main:abc")


@pytest.mark.parametrize(
    "ref",
    [
        ObjectRef("apps", "Deployment", "shop-prod", "web"),
        ObjectRef("", "Namespace", "", "shop-prod"),
        ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "system:aggregate_to_view"),
    ],
)
def test_inventory_id_round_trip(ref: ObjectRef) -> None:
    """Inventory ids use Flux's format and parse back, even for names holding '_'."""
    assert ObjectRef.from_id(ref.id) == ref


def test_inventory_id_format_matches_flux() -> None:
    """A Deployment's id is namespace_name_group_kind."""
    assert ObjectRef("apps", "Deployment", "shop-prod", "web").id == "shop-prod_web_apps_Deployment"


def test_object_ref_from_object() -> None:
    """Group comes from apiVersion; the core group is empty."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    assert ObjectRef.of(obj) == ObjectRef("", "ConfigMap", "n", "c")
    assert str(ObjectRef.of(obj)) == "ConfigMap/n/c"
