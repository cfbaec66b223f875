"""Phases, waves and delete policies read from Argo CD's, Helm's and our annotations (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.model import Manifest
from gitopsd.phases.classify import BadAnnotation, Phase, Policy, classify, is_hook, synced_objects
from gitopsd.render.errors import InvalidManifest
from gitopsd.render.objects import check_identity


def obj(name: str, kind: str = "ConfigMap", generate: bool = False, **annotations: str) -> Manifest:
    meta: dict[str, Any] = {"namespace": "shop", "annotations": annotations}
    meta["generateName" if generate else "name"] = name
    api = "batch/v1" if kind == "Job" else "v1"
    return Manifest({"apiVersion": api, "kind": kind, "metadata": meta}, f"deploy/{name}.yaml")


def names(manifests: Any) -> list[str]:
    return [m.obj["metadata"].get("name") or m.obj["metadata"]["generateName"] for m in manifests]


def test_waves_ascend_with_negatives_and_default_zero() -> None:
    """Argo CD sync-waves -1, 0 (unset), 1 and 5 sort ascending; input order kept within a wave."""
    phases = classify(
        [
            obj("five", **{"argocd.argoproj.io/sync-wave": "5"}),
            obj("plain"),
            obj("first", **{"argocd.argoproj.io/sync-wave": "-1"}),
            obj("one", **{"gitopsd.dev/sync-wave": " 1 "}),
            obj("also-zero", **{"argocd.argoproj.io/sync-wave": "0"}),
        ]
    )
    assert [w.number for w in phases.waves] == [-1, 0, 1, 5]
    assert [names(w.manifests) for w in phases.waves] == [["first"], ["plain", "also-zero"], ["one"], ["five"]]
    assert phases.ordered and not phases.has_hooks


def test_one_wave_without_hooks_is_a_plain_sync() -> None:
    """No annotations: one wave 0, nothing ordered (rollout makes the single Applier.sync it always made)."""
    phases = classify([obj("a"), obj("b")])
    assert [w.number for w in phases.waves] == [0] and not phases.ordered


def test_argo_hooks_by_phase_with_default_before_hook_creation() -> None:
    """PreSync, Sync, PostSync, SyncFail; a comma list runs in each phase; BeforeHookCreation by default."""
    migrate = obj("migrate-", "Job", generate=True, **{"argocd.argoproj.io/hook": "PreSync"})
    policy = {"argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed"}
    smoke = obj("smoke-", "Job", generate=True, **{"argocd.argoproj.io/hook": "PostSync", **policy})
    cleanup = obj("cleanup", "Job", **{"argocd.argoproj.io/hook": "SyncFail"})
    both = obj("notify", "Job", **{"argocd.argoproj.io/hook": "PreSync, PostSync"})
    during = obj("during", "Job", **{"argocd.argoproj.io/hook": "Sync", "argocd.argoproj.io/sync-wave": "2"})
    phases = classify([migrate, smoke, cleanup, both, during, obj("app")])
    assert [h.name for h in phases.pre_sync] == ["Job/migrate-", "Job/notify"]
    assert [h.name for h in phases.post_sync] == ["Job/notify", "Job/smoke-"]
    assert [h.name for h in phases.sync_fail] == ["Job/cleanup"]
    assert [(w.number, [h.name for h in w.hooks]) for w in phases.waves] == [(0, []), (2, ["Job/during"])]
    assert phases.pre_sync[0].policies == {Policy.BEFORE_HOOK_CREATION} and phases.pre_sync[0].generated
    assert phases.post_sync[1].policies == {Policy.HOOK_SUCCEEDED, Policy.HOOK_FAILED}
    assert names(phases.synced) == ["app"]
    assert names(synced_objects([migrate, smoke, obj("app")])) == ["app"]


def test_hooks_run_in_wave_then_kind_then_name_order() -> None:
    """Within a phase: wave (Helm: weight) first, then kind and name."""
    hooks = [
        obj("b", "Job", **{"gitopsd.dev/hook": "PreSync", "gitopsd.dev/sync-wave": "1"}),
        obj("z", "Job", **{"gitopsd.dev/hook": "PreSync", "gitopsd.dev/sync-wave": "-3"}),
        obj("a", "Job", **{"gitopsd.dev/hook": "PreSync", "gitopsd.dev/sync-wave": "1"}),
        obj("c", "ConfigMap", **{"gitopsd.dev/hook": "PreSync", "gitopsd.dev/sync-wave": "1"}),
    ]
    assert [h.name for h in classify(hooks).pre_sync] == ["Job/z", "ConfigMap/c", "Job/a", "Job/b"]


def test_helm_hooks_map_to_phases_and_the_rest_is_skipped() -> None:
    """pre-install/pre-upgrade → PreSync, post-* → PostSync, weights order; delete, rollback and test hooks skipped."""
    pre = obj("pre", "Job", **{"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-5",
                               "helm.sh/hook-delete-policy": "hook-succeeded"})  # fmt: skip
    post = obj("post", "Job", **{"helm.sh/hook": "post-upgrade"})
    test = obj("test", "Pod", **{"helm.sh/hook": "test"})
    gone = obj("gone", "Job", **{"helm.sh/hook": "pre-delete,post-rollback"})
    phases = classify([pre, post, test, gone, obj("app", **{"helm.sh/hook-weight": "3"})])
    assert [(h.name, h.wave, h.policies) for h in phases.pre_sync] == [("Job/pre", -5, {Policy.HOOK_SUCCEEDED})]
    assert [(h.name, h.policies) for h in phases.post_sync] == [("Job/post", {Policy.BEFORE_HOOK_CREATION})]
    skipped = {m.obj["metadata"]["name"]: why for m, why in phases.skipped}
    assert "test hook" in skipped["test"] and "pre-delete" in skipped["gone"] and "rollback" in skipped["gone"]
    assert [w.number for w in phases.waves] == [3]  # a weight on a plain object orders it like a sync-wave


def test_ours_win_over_argo_and_argo_over_helm() -> None:
    """The first vocabulary with a hook annotation decides alone."""
    both = obj("x", "Job", **{"argocd.argoproj.io/hook": "PostSync", "helm.sh/hook": "pre-install"})
    ours = obj("y", "Job", **{"gitopsd.dev/hook": "SyncFail", "argocd.argoproj.io/hook": "PreSync"})
    phases = classify([both, ours])
    assert [h.name for h in phases.post_sync] == ["Job/x"] and [h.name for h in phases.sync_fail] == ["Job/y"]
    assert not phases.pre_sync


def test_skip_is_never_applied_nor_inventoried() -> None:
    """argocd.argoproj.io/hook: Skip leaves the object out of every phase."""
    skipped = obj("manual", **{"argocd.argoproj.io/hook": "Skip"})
    phases = classify([skipped, obj("app")])
    assert names(phases.synced) == ["app"] and [m for m, _ in phases.skipped] == [skipped]
    assert is_hook(skipped.obj) and not phases.ordered


@pytest.mark.parametrize(
    ("annotations", "words"),
    [
        ({"argocd.argoproj.io/sync-wave": "first"}, "argocd.argoproj.io/sync-wave: 'first' is not an integer"),
        ({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "1.5"}, "helm.sh/hook-weight: '1.5' is not an integer"),
        ({"argocd.argoproj.io/hook": "PreSynk"}, "argocd.argoproj.io/hook: unknown hook 'PreSynk'"),
        ({"helm.sh/hook": "pre-instal"}, "helm.sh/hook: unknown hook 'pre-instal'"),
        ({"gitopsd.dev/hook": "PreSync", "gitopsd.dev/hook-delete-policy": "Always"}, "unknown policy 'Always'"),
        ({"helm.sh/hook": "post-install", "helm.sh/hook-delete-policy": "HookSucceeded"}, "unknown policy"),
    ],
)
def test_bad_annotations_name_the_object_and_annotation(annotations: dict[str, str], words: str) -> None:
    """A wave that is not an integer or an unknown hook or policy: the object, its file, the annotation."""
    with pytest.raises(BadAnnotation) as caught:
        classify([obj("web", "Job", **annotations)])
    assert words in caught.value.message and "Job shop/web (deploy/web.yaml)" in caught.value.message
    with pytest.raises(InvalidManifest) as rendered:  # the render refuses it, naming the file
        check_identity(obj("web", "Job", **annotations).obj, "deploy/web.yaml")
    assert words in str(rendered.value) and "deploy/web.yaml" in str(rendered.value)


def test_generate_name_only_on_hooks() -> None:
    """The render accepts generateName on a hook and still refuses it on an object applied by name."""
    check_identity(obj("migrate-", "Job", generate=True, **{"argocd.argoproj.io/hook": "PreSync"}).obj, "a.yaml")
    with pytest.raises(InvalidManifest, match="only hooks"):
        check_identity(obj("web-", "Job", generate=True).obj, "b.yaml")


def test_hook_identity_is_stable_per_environment() -> None:
    """The label value finding a hook's earlier instances: same hook same value, other Environment another."""
    hook = classify([obj("migrate-", "Job", generate=True, **{"gitopsd.dev/hook": "PreSync"})]).pre_sync[0]
    again = classify([obj("migrate-", "Job", generate=True, **{"gitopsd.dev/hook": "PreSync"})]).pre_sync[0]
    assert hook.identity("a.shop") == again.identity("a.shop") != hook.identity("b.shop")
    assert len(hook.identity("a.shop")) <= 63 and hook.phase is Phase.PRE_SYNC
