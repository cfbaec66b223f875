"""Rendering for a remote target asks the target, not the management cluster: which kinds are
namespaced (a CRD served only by the target) and what Helm's ``.Capabilities`` say."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from e2e.binaries import ensure_helm
from gitopsd.desired import Desired
from gitopsd.model import Revision
from gitopsd.render.errors import UnknownKind
from gitopsd.render.helm import HELM_VARIABLE
from gitopsd.sources import GitSources
from gitopsd.spec import Environment, parse_environment
from tests.fakes import FakeKube
from tests.fakes.kinds import Kind

REVISION = Revision("main", "a" * 40)
WIDGET = Kind("example.com", "v1", "Widget", "widgets", namespaced=True)


class DirectoryTree:
    """A source tree on disk (the ``Tree`` a Git mirror gives)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, path: str) -> dict[str, bytes]:
        base = self.root / path
        if not base.is_dir():
            raise FileNotFoundError(path)
        return {str(f.relative_to(self.root)): f.read_bytes() for f in sorted(base.rglob("*")) if f.is_file()}

    def directory(self) -> Path:
        return self.root


class Sources:
    """Stands in for ``GitSources``: every revision is the directory given."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.tree_ = DirectoryTree(root)
        self.cache_dir = cache / "git"

    async def tree(self, source: Any, creds: Any, revision: Revision) -> DirectoryTree:
        return self.tree_


def environment() -> Environment:
    return parse_environment(
        {"metadata": {"name": "shop", "namespace": "apps", "uid": "u1", "generation": 1},
         "spec": {"source": {"url": "https://git.example.com/x.git", "branch": "main", "path": "deploy"},
                  "targetNamespace": "shop", "kubeConfig": {"secretRef": {"name": "prod"}}}}
    )  # fmt: skip


def clusters() -> tuple[FakeKube, FakeKube]:
    """The management cluster, and a target that alone serves the Widget CRD."""
    target = FakeKube(namespaces=("apps", "shop"), server="https://prod.example")
    target.kinds.register(WIDGET)
    return FakeKube(namespaces=("apps",)), target


def desired(management: FakeKube, root: Path, tmp_path: Path) -> Desired:
    return Desired(management, cast(GitSources, Sources(root, tmp_path / "cache")))


async def test_a_crd_kind_served_only_by_the_target_renders_with_the_targets_scopes(tmp_path: Path) -> None:
    """Widget is namespaced on the target: placed in targetNamespace there; the management cluster never knew it."""
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / "deploy/widget.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    management, target = clusters()
    with pytest.raises(UnknownKind):  # asked of the management cluster, as before
        await desired(management, root, tmp_path).render(environment(), REVISION, None)
    management.stats.reset()
    manifests, _ = await desired(management, root, tmp_path).render(environment(), REVISION, None, cluster=target)
    assert [(m.obj["kind"], m.obj["metadata"].get("namespace")) for m in manifests] == [("Widget", "shop")]
    assert management.stats.snapshot() == {}  # no discovery of the management cluster at all


async def test_a_kubeconfig_naming_another_cluster_renders_again_for_it(tmp_path: Path) -> None:
    """The same commit and spec for another cluster (a rewritten Secret) is not served from the kept render."""
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / "deploy/widget.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    management, target = clusters()
    elsewhere = FakeKube(namespaces=("apps",), server="https://elsewhere.example")
    elsewhere.kinds.register(Kind("example.com", "v1", "Widget", "widgets", namespaced=False))
    renders = desired(management, root, tmp_path)
    first, _ = await renders.render(environment(), REVISION, None, cluster=target)
    again, _ = await renders.render(environment(), REVISION, None, cluster=elsewhere)
    assert first[0].obj["metadata"].get("namespace") == "shop"
    assert "namespace" not in again[0].obj["metadata"]  # cluster-scoped there


async def test_helm_capabilities_are_the_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart's ``.Capabilities.APIVersions.Has`` answers for the target (its CRD), not the management cluster."""
    monkeypatch.setenv(HELM_VARIABLE, str(ensure_helm()))
    root = tmp_path / "repo"
    (root / "deploy/templates").mkdir(parents=True)
    (root / "deploy/Chart.yaml").write_text("apiVersion: v2\nname: shop\nversion: 1.0.0\n")
    (root / "deploy/templates/cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n"
        '  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}\n'
        '  widgetsGroup: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}\n'
    )
    management, target = clusters()
    on_management, _ = await desired(management, root, tmp_path).render(environment(), REVISION, None)
    assert on_management[0].obj["data"] == {"widgets": "false", "widgetsGroup": "false"}
    management.stats.reset()
    on_target, _ = await desired(management, root, tmp_path).render(environment(), REVISION, None, cluster=target)
    assert on_target[0].obj["data"] == {"widgets": "true", "widgetsGroup": "true"}
    assert management.stats.snapshot() == {}  # neither /version nor discovery asked of it
    assert "GET /version" in target.stats.snapshot()
