"""The chart parts that need no cluster: spec parsing, revisions, helm template, repository fetching."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from e2e.helmrepo import HelmRepo, OciRegistry
from gitopsd.errors import SpecError
from gitopsd.model import Revision
from gitopsd.render import HelmOptions, RenderOptions, render
from gitopsd.render.errors import HelmError, ValuesFileNotFound
from gitopsd.render.helm import clean_error
from gitopsd.render.helmspec import parse_chart, parse_helm
from gitopsd.render.scopes import OfflineScopes
from gitopsd.sources import LocalTree
from gitopsd.sources.charts import Charts
from gitopsd.sources.charts_http import (
    ChartAuthenticationFailed,
    ChartDigestMismatch,
    ChartRepositoryUnreachable,
    ChartVersionNotFound,
    Login,
)
from gitopsd.spec import parse_spec
from tests.gitopsd.helm.conftest import shop_chart


def test_chart_spec_and_helm_spec_are_read_and_checked() -> None:
    """spec.chart needs a repository URL without credentials and a valid range; source and chart exclude each other."""
    chart = parse_chart({"repository": "oci://r.example/charts/", "name": "shop", "version": "~1.2"})
    assert chart is not None and chart.oci and chart.repository == "oci://r.example/charts"
    assert parse_chart({"repository": "https://h/c", "name": "shop"}).version == "*"  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"chart\.repository"):
        parse_chart({"repository": "https://user:pw@h/c", "name": "shop"})
    with pytest.raises(SpecError, match=r"chart\.version"):
        parse_chart({"repository": "https://h/c", "name": "shop", "version": ">>1"})
    with pytest.raises(SpecError, match="exactly one of source, chart"):
        parse_spec(
            {"source": {"url": "https://h/r", "branch": "main"}, "chart": {"repository": "https://h", "name": "a"}}
        )
    helm = parse_helm(
        {"releaseName": "web", "valuesFiles": ["v.yaml"], "valuesFrom": [{"kind": "Secret", "name": "s"}]}
    )
    assert helm.release_name == "web" and helm.values_from[0].key == "values.yaml"
    with pytest.raises(SpecError, match=r"helm.valuesFiles\[0\]"):
        parse_helm({"valuesFiles": ["../outside.yaml"]})
    with pytest.raises(SpecError, match=r"helm\.releaseName"):
        parse_helm({"releaseName": "Not_A_Name"})


def test_chart_revisions_print_and_parse_as_name_at_version() -> None:
    """shop@1.2.3 round-trips and stays apart from Git revisions."""
    revision = Revision("shop", "1.2.3", chart=True)
    assert str(revision) == "shop@1.2.3" and revision.short == "1.2.3"
    assert Revision.parse("shop@1.2.3") == revision
    assert Revision.parse("main@sha1:abc1234") == Revision("main", "abc1234")
    with pytest.raises(ValueError, match="not a revision"):
        Revision.parse("main@latest")


def test_helm_errors_keep_file_and_line_and_drop_noise(tmp_path: Path) -> None:
    """helm's multi-line template error reads as one line naming the template, without hints or temp paths."""
    stderr = (
        f"walk.go:75: found symbolic link in path: {tmp_path}/x\n"
        'Error: shop/templates/bad.yaml:2:13\n  executing "shop/templates/bad.yaml" at <.Values.a.b>:\n'
        "    nil pointer evaluating interface {}.b\n\nUse --debug flag to render out invalid YAML\n"
    )
    text = clean_error(stderr, tmp_path)
    assert text.startswith("shop/templates/bad.yaml:2:13 executing") and "--debug" not in text and "walk.go" not in text


def test_helm_template_renders_a_chart_directory_offline(tmp_path: Path) -> None:
    """Values files then extra values, origins naming templates, crds/ included or skipped, errors named."""
    crd = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: ws.example.com}\n"
        "spec: {group: example.com, scope: Namespaced, names: {plural: ws, kind: W}, versions: [{name: v1}]}\n"
    )
    shop_chart(tmp_path / "deploy", "0.1.0", extra={"values-prod.yaml": "greeting: prod\n", "crds/w.yaml": crd})
    tree = LocalTree(tmp_path)
    settings = HelmOptions(
        "web",
        "apps",
        "v1.33.0",
        ("apps/v1", "apps/v1/Deployment"),
        True,
        ("values-prod.yaml",),
        (("spec.helm.values", '{"replicas": 4}'),),
    )
    options = RenderOptions(path="deploy", environment="e", revision=None, target_namespace="apps", helm=settings)
    crds, manifest = render(tree, options, OfflineScopes())
    assert crds.kind == "CustomResourceDefinition" and crds.origin.startswith("deploy/crds/w.yaml")
    without = replace(options, helm=replace(settings, include_crds=False))
    assert [m.kind for m in render(tree, without, OfflineScopes())] == ["ConfigMap"]
    assert manifest.origin == "deploy/templates/config.yaml (ConfigMap web-config)"
    assert manifest.obj["metadata"]["namespace"] == "apps"
    assert manifest.obj["data"] | {} == {
        "greeting": "prod",
        "replicas": "4",
        "chart": "0.1.0",
        "namespace": "apps",
        "kube": "v1.33.0",
        "hasDeployments": "true",
    }
    with pytest.raises(ValuesFileNotFound, match=r"valuesFiles\[0\]: deploy/nope.yaml"):
        render(
            tree,
            RenderOptions("deploy", "e", None, helm=HelmOptions("web", values_files=("nope.yaml",))),
            OfflineScopes(),
        )
    (tmp_path / "deploy/templates/bad.yaml").write_text("{{ if }}\n")
    with pytest.raises(HelmError, match=r"deploy/Chart.yaml: helm template failed: .*templates/bad.yaml:1"):
        render(tree, options, OfflineScopes())


def test_one_index_fetch_per_interval_and_one_download_per_version(tmp_path: Path) -> None:
    """Fifty concurrent resolves and renders of one chart: one index fetch, one archive download;
    a range with no match lists what exists; a tampered archive fails its digest; a stopped repository is
    unreachable (transient)."""
    repo = HelmRepo(tmp_path / "repo").start()
    try:
        repo.publish(shop_chart(tmp_path / "c1", "1.0.0"))
        repo.publish(shop_chart(tmp_path / "c2", "1.1.0"))
        chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.x"})
        assert chart is not None

        async def scenario() -> None:
            charts = Charts(tmp_path / "cache")
            try:
                revisions = await asyncio.gather(*(charts.resolve(chart, None, max_age=60) for _ in range(50)))
                assert {str(r) for r in revisions} == {"shop@1.1.0"}
                trees = await asyncio.gather(*(charts.tree(chart, revisions[0], None) for _ in range(50)))
                assert {path for _, path in trees} == {"shop"}
                assert (repo.counts["/index.yaml"], repo.counts["/shop-1.1.0.tgz"]) == (1, 1)
                await charts.resolve(chart, None, max_age=0)  # fresh: asks again
                assert repo.counts["/index.yaml"] == 2
                none = parse_chart({"repository": repo.url, "name": "shop", "version": ">=3"})
                assert none is not None
                with pytest.raises(ChartVersionNotFound, match=r"newest listed: 1.1.0, 1.0.0"):
                    await charts.resolve(none, None, max_age=60)
                (repo.root / "shop-1.0.0.tgz").write_bytes(b"not the archive the index announced")
                with pytest.raises(ChartDigestMismatch):
                    await charts.tree(chart, Revision("shop", "1.0.0", chart=True), None)
                repo.stop()
                with pytest.raises(ChartRepositoryUnreachable) as unreachable:
                    await charts.resolve(chart, None, max_age=0)
                assert unreachable.value.transient
            finally:
                await charts.close()

        asyncio.run(scenario())
    finally:
        repo.stop()


def test_oci_tags_choose_the_version_and_the_layer_is_fetched(tmp_path: Path) -> None:
    """Tags of a real registry ('+' pushed as '_'), the newest in range, and the chart layer unpacked."""
    registry = OciRegistry(tmp_path / "logs").start()
    try:
        registry.push(shop_chart(tmp_path / "a", "0.9.0"), tmp_path / "pkg")
        registry.push(shop_chart(tmp_path / "b", "1.0.0+build.7", greeting="built"), tmp_path / "pkg")
        chart = parse_chart({"repository": registry.url, "name": "shop", "version": ">=0.9.0"})
        assert chart is not None

        async def scenario() -> None:
            charts = Charts(tmp_path / "cache")
            try:
                revision = await charts.resolve(chart, None, max_age=0)
                assert str(revision) == "shop@1.0.0+build.7"
                tree, path = await charts.tree(chart, revision, None)
                assert b"greeting: built" in tree.files(path)[f"{path}/values.yaml"]
            finally:
                await charts.close()

        asyncio.run(scenario())
    finally:
        registry.stop()


def test_the_cache_never_serves_a_private_chart_to_other_credentials(tmp_path: Path) -> None:
    """A listing and archive fetched with a valid login are not reused for a wrong or missing login."""
    repo = HelmRepo(tmp_path / "repo", login="ci:letmein").start()
    try:
        repo.publish(shop_chart(tmp_path / "c", "1.0.0"))
        chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.0.0"})
        assert chart is not None

        async def scenario() -> None:
            charts = Charts(tmp_path / "cache")
            good, bad = Login("ci", "letmein"), Login("ci", "guess")
            revision = await charts.resolve(chart, good, max_age=3600)
            await charts.tree(chart, revision, good)
            for login in (bad, None):
                with pytest.raises(ChartAuthenticationFailed, match=r"chart\.secretRef"):
                    await charts.resolve(chart, login, max_age=3600)
                with pytest.raises(ChartAuthenticationFailed):
                    await charts.tree(chart, revision, login)

        asyncio.run(scenario())
    finally:
        repo.stop()
