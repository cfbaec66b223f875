"""Kustomizations built by the installed kubectl or kustomize: overlays, offline, deadline, errors."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.render import KustomizeError, KustomizeTimeout, KustomizeUnavailable, OfflineScopes, render
from gitopsd.render.kustomize import clean_error, command
from tests.gitopsd.render.trees import REVISION, MemoryTree, options

BASE = {
    "deploy/base/kustomization.yaml": "resources: [web.yaml, config.yaml]\n",
    "deploy/base/web.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - {name: web, image: "${REGISTRY}/web:${GITOPSD_REVISION_SHORT}"}
        """,
    "deploy/base/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: base}\n",
}


@pytest.fixture
def trees() -> Iterator[list[MemoryTree]]:
    made: list[MemoryTree] = []
    yield made
    for tree in made:
        tree.close()


def _tree(trees: list[MemoryTree], files: dict[str, str | bytes]) -> MemoryTree:
    tree = MemoryTree(files)
    trees.append(tree)
    return tree


def test_overlay_is_built_then_substituted_and_namespaced(trees: list[MemoryTree]) -> None:
    """An overlay over ../../base builds; variables and targetNamespace apply to kustomize's output."""
    tree = _tree(
        trees,
        {
            **BASE,
            "deploy/overlays/prod/kustomization.yaml": """\
                resources: [../../base]
                namePrefix: prod-
                patches:
                - patch: |
                    apiVersion: v1
                    kind: ConfigMap
                    metadata: {name: settings}
                    data: {mode: prod}
                """,
            "deploy/overlays/prod/README.md": "docs",
        },
    )
    manifests = render(tree, options("deploy/overlays/prod", substitute={"REGISTRY": "reg.example"}), OfflineScopes())
    assert [(m.kind, m.ref.name, m.ref.namespace) for m in manifests] == [
        ("ConfigMap", "prod-settings", "shop"),
        ("Deployment", "prod-web", "shop"),
    ]
    assert manifests[0].obj["data"] == {"mode": "prod"}
    container = manifests[1].obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"reg.example/web:{REVISION.short}"
    assert manifests[1].origin == "deploy/overlays/prod/kustomization.yaml (Deployment prod-web)"


@pytest.mark.parametrize("name", ["kustomization.yml", "Kustomization"])
def test_every_kustomization_file_name_is_recognised(trees: list[MemoryTree], name: str) -> None:
    """kustomization.yml and Kustomization trigger a build like kustomization.yaml."""
    tree = _tree(
        trees,
        {f"app/{name}": "resources: [cm.yaml]\nnamespace: team\n", "app/cm.yaml": BASE["deploy/base/config.yaml"]},
    )
    [manifest] = render(tree, options("app"), OfflineScopes())
    assert manifest.ref.namespace == "team"  # kustomize's own namespace: field, not targetNamespace
    assert manifest.origin == f"app/{name} (ConfigMap team/settings)"


def test_crd_and_custom_resource_in_one_kustomization(trees: list[MemoryTree]) -> None:
    """A CRD built by kustomize decides the scope of its resources built alongside it."""
    tree = _tree(
        trees,
        {
            "k/kustomization.yaml": "resources: [crd.yaml, widget.yaml]\n",
            "k/crd.yaml": """\
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata: {name: widgets.example.com}
                spec:
                  group: example.com
                  scope: Namespaced
                  names: {kind: Widget, plural: widgets}
                  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
                """,
            "k/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        },
    )
    by_kind = {m.kind: m.ref.namespace for m in render(tree, options("k"), OfflineScopes())}
    assert by_kind == {"CustomResourceDefinition": "", "Widget": "shop"}


def test_build_failure_carries_kustomizes_message_with_repository_paths(trees: list[MemoryTree]) -> None:
    """A missing resource: the error names the kustomization and says what kustomize said, without tmp paths."""
    tree = _tree(trees, {"k/kustomization.yaml": "resources: [missing.yaml]\n"})
    with pytest.raises(KustomizeError) as err:
        render(tree, options("k"), OfflineScopes())
    message = str(err.value)
    assert message.startswith("k/kustomization.yaml: kustomize build failed: ")
    assert "missing.yaml" in message
    assert str(tree.directory()) not in message and "run.go" not in message
    assert err.value.reason == "KustomizeFailed"


@pytest.mark.parametrize(
    "resource",
    ["https://example.invalid/manifests/app.yaml", "github.com/example/repo//deploy?ref=v1.0.0"],
)
def test_remote_resources_and_bases_are_refused_offline(trees: list[MemoryTree], resource: str) -> None:
    """URLs and Git bases fail without network access, with a message saying to vendor them."""
    tree = _tree(trees, {"k/kustomization.yaml": f"resources: ['{resource}']\n"})
    with pytest.raises(KustomizeError) as err:
        render(tree, options("k"), OfflineScopes())
    assert "builds kustomizations offline: remote bases and URLs are not fetched" in str(err.value)


def test_files_outside_the_kustomization_root_and_helm_are_refused(trees: list[MemoryTree]) -> None:
    """The load restrictor keeps a generator from reading ../ files; Helm charts are not enabled."""
    outside = _tree(
        trees,
        {
            "secret.txt": "hunter2",
            "k/kustomization.yaml": "configMapGenerator:\n- name: leak\n  files: [../secret.txt]\n",
        },
    )
    with pytest.raises(KustomizeError, match=r"security; file '.*secret\.txt' is not in or below"):
        render(outside, options("k"), OfflineScopes())
    helm = _tree(trees, {"h/kustomization.yaml": "helmCharts:\n- name: x\n  repo: https://charts.example\n"})
    with pytest.raises(KustomizeError, match="enable-helm"):
        render(helm, options("h"), OfflineScopes())


def _children() -> set[int]:
    me = str(os.getpid())
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                kids.add(int(entry.name))
    return kids


def test_build_past_its_deadline_is_killed(trees: list[MemoryTree]) -> None:
    """A build slower than the timeout is stopped and reported; no process is left behind."""
    tree = _tree(trees, {**BASE})
    before = _children()
    with pytest.raises(KustomizeTimeout) as err:
        render(tree, options("deploy/base", kustomize_timeout=0.001), OfflineScopes())
    assert (
        str(err.value) == "deploy/base/kustomization.yaml: kustomize build did not finish within 0.001s and was stopped"
    )
    assert err.value.reason == "KustomizeTimeout"
    assert _children() <= before


def test_no_kustomize_and_no_kubectl_is_a_clear_error(
    trees: list[MemoryTree], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With neither binary on PATH the error says so instead of failing on exec."""
    tree = _tree(trees, {**BASE})
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KUBECTL", raising=False)
    with pytest.raises(KustomizeUnavailable, match="neither kustomize nor kubectl is installed") as err:
        render(tree, options("deploy/base"), OfflineScopes())
    assert err.value.reason == "KustomizeUnavailable"


def test_standalone_kustomize_is_preferred_when_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A kustomize binary on PATH is used as ``kustomize build``; otherwise ``kubectl kustomize``."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is a requirement (docs/development.md)"
    assert command(tmp_path)[:2] == [kubectl, "kustomize"] or shutil.which("kustomize")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "kustomize").write_text("#!/bin/sh\n")
    (fake / "kustomize").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    assert command(tmp_path) == [
        str(fake / "kustomize"),
        "build",
        "--load-restrictor=LoadRestrictionsRootOnly",
        str(tmp_path),
    ]


def test_kubectl_log_prefix_is_removed_and_long_errors_truncated() -> None:
    """Both klog forms (quoted and block) reduce to kustomize's text; long text is cut."""
    root = Path("/tmp/tree-1")
    quoted = 'E1122 20:09:01.19 22883 run.go:72] "command failed" err="accumulating: \\"x\\" in /tmp/tree-1/k/a.yaml"'
    assert clean_error(quoted, root) == 'accumulating: "x" in k/a.yaml'
    block = 'E1122 run.go:72] "command failed" err=<\n\taccumulating: bad\n\tsecond line\n >'
    assert clean_error(block, root) == "accumulating: bad second line"
    assert clean_error("Error: " + "y" * 2000, root).endswith("…")
    assert len(clean_error("Error: " + "y" * 2000, root)) == 800
