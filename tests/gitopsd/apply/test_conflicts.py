"""Reading the API server's field conflicts: who owns what, and whether it was a hand edit."""

from __future__ import annotations

from gitopsd.apply.conflicts import FieldOwner, all_updates, parse


def test_update_manager_through_scale_subresource() -> None:
    """`kubectl scale` shows as an Update manager through /scale: drift we may take back."""
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl" with subresource "scale" using apps/v1 at 2026-01-02T03:04:05Z',
            "field": ".spec.replicas",
        }
    ]
    (owner,) = parse(causes)
    assert owner == FieldOwner(".spec.replicas", "kubectl", update=True, subresource="scale")
    assert all_updates([owner])


def test_apply_manager_is_not_an_update() -> None:
    """Another server-side applier is named without 'using': a disagreement, not drift."""
    causes = [
        {"reason": "FieldManagerConflict", "message": 'conflict with "helm"', "field": ".data.key"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using v1', "field": ".data.b"},
    ]
    owners = parse(causes)
    assert [(o.manager, o.update, o.field) for o in owners] == [
        ("helm", False, ".data.key"),
        ("kubectl-edit", True, ".data.b"),
    ]
    assert not all_updates(owners)
    assert "helm" in str(owners[0]) and "Apply" in str(owners[0]) and ".data.key" in str(owners[0])


def test_message_only_single_conflict() -> None:
    """Without causes, the one-conflict message form is read."""
    owners = parse([], 'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas')
    assert owners == [FieldOwner(".spec.replicas", "kubectl-patch", update=True)]


def test_message_only_several_conflicts() -> None:
    """Without causes, the multi-conflict message lists fields under each manager."""
    message = (
        'Apply failed with 3 conflicts: conflicts with "argocd":\n- .spec.a\n- .spec.b\n'
        'conflicts with "kubectl-edit" using apps/v1:\n- .spec.c'
    )
    owners = parse([], message)
    assert [(o.manager, o.update, o.field) for o in owners] == [
        ("argocd", False, ".spec.a"),
        ("argocd", False, ".spec.b"),
        ("kubectl-edit", True, ".spec.c"),
    ]


def test_nothing_recognisable_is_no_owner() -> None:
    """An unrelated 409 yields no owners (the caller refuses it with the server's message)."""
    assert parse([{"reason": "Other", "message": "x"}], "the object has been modified") == []
    assert not all_updates([])
