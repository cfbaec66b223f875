"""The render pipeline on plain directories: order, origins, namespaces by scope, every error (render/__init__.py)."""

from __future__ import annotations

import textwrap

import pytest

from gitopsd.kube.discovery import KnownScopes
from gitopsd.render import (
    DuplicateObject,
    InvalidManifest,
    MalformedManifest,
    MissingNamespace,
    OfflineScopes,
    PathNotFound,
    UnknownKind,
    UnknownVariable,
    render,
)
from tests.gitopsd.render.trees import REVISION, MemoryTree, options

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"

CRD = textwrap.dedent(
    """\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: {plural}.example.com
    spec:
      group: example.com
      scope: {scope}
      names: {{kind: {kind}, plural: {plural}}}
      versions: [{{name: v1, served: true, storage: true}}]
    """
)

OFFLINE = OfflineScopes()


def test_plain_directory_renders_recursively_in_path_then_document_order() -> None:
    """All YAML/JSON under the path, sorted by file then document; other files and other paths ignored."""
    tree = MemoryTree(
        {
            "deploy/b.yaml": CM.format(name="b1") + "---\n" + CM.format(name="b2"),
            "deploy/a/z.yml": CM.format(name="az"),
            "deploy/c.json": '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}',
            "deploy/README.md": "# not a manifest: a: b",
            "deploy/.github/ci.yaml": "on: push",
            "other/x.yaml": CM.format(name="elsewhere"),
        }
    )
    manifests = render(tree, options(), OFFLINE)
    assert [(m.origin, m.obj["metadata"]["name"]) for m in manifests] == [
        ("deploy/a/z.yml", "az"),
        ("deploy/b.yaml#1", "b1"),
        ("deploy/b.yaml#2", "b2"),
        ("deploy/c.json", "c"),
    ]
    assert tree.directory_calls == 0  # a plain directory never needs the tree on disk


def test_the_repository_root_is_a_path_too() -> None:
    """Path "" renders the whole repository."""
    tree = MemoryTree({"web.yaml": CM.format(name="web"), "sub/db.yaml": CM.format(name="db")})
    assert [m.origin for m in render(tree, options(""), OFFLINE)] == ["sub/db.yaml", "web.yaml"]


def test_lists_and_empty_documents() -> None:
    """A v1 List becomes its items; empty documents are skipped without an error."""
    tree = MemoryTree(
        {
            "deploy/list.yaml": """\
                ---
                ---
                apiVersion: v1
                kind: List
                items:
                - {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
                - {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}
                """
        }
    )
    manifests = render(tree, options(), OFFLINE)
    assert [(m.origin, m.ref.name) for m in manifests] == [
        ("deploy/list.yaml#2 items[0]", "one"),
        ("deploy/list.yaml#2 items[1]", "two"),
    ]


def test_missing_path_is_an_error_but_an_empty_one_renders_nothing() -> None:
    """A path that does not exist is PathNotFound; one with no manifests gives an empty list."""
    tree = MemoryTree({"deploy/README.md": "nothing to apply", "deploy/notes/.keep.yaml": "a: 1"})
    assert render(tree, options(), OFFLINE) == []
    with pytest.raises(PathNotFound) as err:
        render(tree, options("deploy/prod"), OFFLINE)
    assert str(err.value) == f"spec.source.path 'deploy/prod' is not a directory at {REVISION}"
    assert err.value.reason == "PathNotFound"


def test_target_namespace_goes_only_to_namespaced_objects_that_name_none() -> None:
    """targetNamespace fills in missing namespaces; explicit ones stay; cluster-scoped objects lose theirs."""
    tree = MemoryTree(
        {
            "deploy/all.yaml": """\
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: edge}
                ---
                apiVersion: rbac.authorization.k8s.io/v1
                kind: ClusterRole
                metadata: {name: reader, namespace: stray}
                ---
                apiVersion: v1
                kind: Namespace
                metadata: {name: shop}
                """
        }
    )
    by_kind = {m.kind: m.obj["metadata"] for m in render(tree, options(target_namespace="shop"), OFFLINE)}
    assert by_kind["Deployment"] == {"name": "web", "namespace": "shop"}
    assert by_kind["Service"] == {"name": "web", "namespace": "edge"}
    assert by_kind["ClusterRole"] == {"name": "reader"}
    assert by_kind["Namespace"] == {"name": "shop"}


def test_scope_comes_from_the_given_scopes_not_a_list_of_kinds() -> None:
    """A live cluster's discovery decides: a kind it says is cluster-scoped is treated so."""
    live = KnownScopes({("v1", "ConfigMap"): False, ("example.com/v1", "Widget"): True})
    tree = MemoryTree(
        {"deploy/a.yaml": CM.format(name="c") + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"}
    )
    manifests = render(tree, options(), live)
    assert [m.obj["metadata"].get("namespace") for m in manifests] == [None, "shop"]


def test_crds_in_the_render_define_the_scope_of_their_resources() -> None:
    """A CRD and its custom resources in one render: namespaced ones get the namespace, cluster ones do not."""
    tree = MemoryTree(
        {
            "deploy/crds.yaml": CRD.format(plural="widgets", kind="Widget", scope="Namespaced")
            + "---\n"
            + CRD.format(plural="gadgets", kind="Gadget", scope="Cluster"),
            "deploy/objs.yaml": """\
                apiVersion: example.com/v1
                kind: Widget
                metadata: {name: w}
                ---
                apiVersion: example.com/v1
                kind: Gadget
                metadata: {name: g, namespace: ignored}
                """,
        }
    )
    objs = {m.kind: m.obj["metadata"] for m in render(tree, options(), OFFLINE)}
    assert objs["Widget"] == {"name": "w", "namespace": "shop"}
    assert objs["Gadget"] == {"name": "g"}
    assert "namespace" not in objs["CustomResourceDefinition"]


def test_unknown_kind_names_file_and_kind() -> None:
    """A kind neither the scopes nor a CRD of the render define is refused with file, apiVersion and kind."""
    tree = MemoryTree(
        {"deploy/x.yaml": CM.format(name="a") + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"}
    )
    with pytest.raises(UnknownKind) as err:
        render(tree, options(), OFFLINE)
    assert str(err.value) == (
        "deploy/x.yaml#2: unknown kind Widget in example.com/v1: it is not a built-in Kubernetes type (rendered"
        " without a cluster) and no CustomResourceDefinition in this render defines it"
    )
    assert (err.value.api_version, err.value.kind, err.value.reason) == ("example.com/v1", "Widget", "UnknownKind")
    live = KnownScopes({("v1", "ConfigMap"): True})
    with pytest.raises(UnknownKind, match=r"Widget in example\.com/v1: the cluster does not serve it and no Custom"):
        render(tree, options(), live)


def test_crd_version_not_listed_is_still_unknown() -> None:
    """A custom resource at a version its CRD does not define is an unknown kind."""
    tree = MemoryTree(
        {
            "deploy/a.yaml": CRD.format(plural="widgets", kind="Widget", scope="Namespaced"),
            "deploy/b.yaml": "apiVersion: example.com/v2\nkind: Widget\nmetadata: {name: w}\n",
        }
    )
    with pytest.raises(UnknownKind, match=r"^deploy/b\.yaml: unknown kind Widget in example\.com/v2"):
        render(tree, options(), OFFLINE)


def test_a_kustomization_inside_a_plain_directory_gets_a_hint() -> None:
    """A kustomization.yaml below the path is not built; the error says where it must be."""
    tree = MemoryTree(
        {
            "deploy/web.yaml": CM.format(name="web"),
            "deploy/base/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "metadata: {name: base}\nresources: [x.yaml]\n",
        }
    )
    with pytest.raises(UnknownKind, match=r"only built when it sits directly in spec\.source\.path"):
        render(tree, options(), OFFLINE)


def test_namespaced_object_without_namespace_or_target_is_refused() -> None:
    """No metadata.namespace and no targetNamespace: an error, not a guess at "default"."""
    tree = MemoryTree({"deploy/web.yaml": CM.format(name="web")})
    with pytest.raises(MissingNamespace) as err:
        render(tree, options(target_namespace=None), OFFLINE)
    assert str(err.value).startswith("deploy/web.yaml: ConfigMap web is namespaced but sets no metadata.namespace")


@pytest.mark.parametrize(
    ("content", "origin", "words"),
    [
        ("kind: ConfigMap\nmetadata: {name: a}\n", "deploy/bad.yaml", "has no apiVersion"),
        (CM.format(name="ok") + "---\napiVersion: v1\nmetadata: {name: a}\n", "deploy/bad.yaml#2", "has no kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n", "deploy/bad.yaml", "has no metadata.name"),
        ("apiVersion: v1\nkind: ConfigMap\n", "deploy/bad.yaml", "has no metadata.name"),
        ("a: 1\n---\n- just\n- a list\n", "deploy/bad.yaml#2", "is a list, not a Kubernetes object"),
        ("just a string\n", "deploy/bad.yaml", "is a str, not a Kubernetes object"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n", "deploy/bad.yaml", "no metadata.name: gitopsd"),
        ("apiVersion: v1\nkind: Pod\nmetadata: [name, x]\n", "deploy/bad.yaml", "metadata must be a mapping"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: 7}\n",
            "deploy/bad.yaml",
            "namespace must be a string",
        ),
        ("apiVersion: 1\nkind: Pod\nmetadata: {name: a}\n", "deploy/bad.yaml", "has no apiVersion"),
    ],
)
def test_documents_that_are_not_objects_name_file_and_document(content: str, origin: str, words: str) -> None:
    """Missing apiVersion / kind / name, or a document that is not a mapping, names the file and document."""
    tree = MemoryTree({"deploy/bad.yaml": content})
    with pytest.raises(InvalidManifest) as err:
        render(tree, options(), OFFLINE)
    assert str(err.value).startswith(f"{origin}: ")
    assert words in str(err.value)
    assert err.value.reason == "InvalidManifest"


def test_a_crd_without_a_scope_is_refused_before_its_resources() -> None:
    """A CRD missing what decides its scope is named itself, not reported as an unknown kind for its CRs."""
    tree = MemoryTree(
        {
            "deploy/a.yaml": CRD.format(plural="widgets", kind="Widget", scope="Everywhere"),
            "deploy/b.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        }
    )
    with pytest.raises(InvalidManifest, match=r"^deploy/a\.yaml: CustomResourceDefinition spec\.scope must be"):
        render(tree, options(), OFFLINE)


def test_malformed_yaml_in_render_names_the_file_and_line() -> None:
    """A syntax error anywhere under the path stops the render with that file and line."""
    tree = MemoryTree({"deploy/a.yaml": CM.format(name="a"), "deploy/b.yaml": "apiVersion: v1\nkind: [ConfigMap\n"})
    with pytest.raises(MalformedManifest, match=r"^deploy/b\.yaml:3:\d+: invalid YAML"):
        render(tree, options(), OFFLINE)


def test_duplicates_name_both_files_after_namespaces_are_settled() -> None:
    """The same object twice is refused naming both places, also when one got its namespace from the target."""
    tree = MemoryTree(
        {
            "deploy/a.yaml": CM.format(name="web"),
            "deploy/z.yaml": CM.format(name="other") + "---\n" + CM.format(name="web") + "  namespace: shop\n",
        }
    )
    with pytest.raises(DuplicateObject) as err:
        render(tree, options(), OFFLINE)
    assert str(err.value) == "ConfigMap/shop/web is defined twice: in deploy/a.yaml and in deploy/z.yaml#2"
    assert err.value.reason == "DuplicateObject"


def test_same_name_in_other_namespaces_or_groups_is_not_a_duplicate() -> None:
    """Identity is group, kind, namespace and name: differing in any one is fine."""
    tree = MemoryTree(
        {
            "deploy/a.yaml": CM.format(name="web") + "---\n" + CM.format(name="web") + "  namespace: other\n",
            "deploy/b.yaml": "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: web}\n---\n"
            "apiVersion: v1\nkind: Event\nmetadata: {name: web}\n",
        }
    )
    assert len(render(tree, options(), OFFLINE)) == 4


def test_substitution_runs_before_identity_and_names_the_file() -> None:
    """Names may come from variables; an unknown one is an error naming file and variable."""
    tree = MemoryTree(
        {
            "deploy/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 'web-${GITOPSD_ENVIRONMENT}'}\n"
            "data: {image: '${REGISTRY}/web:${GITOPSD_REVISION_SHORT}'}\n"
        }
    )
    [manifest] = render(tree, options(substitute={"REGISTRY": "reg.example"}), OFFLINE)
    assert manifest.ref.name == "web-dev"
    assert manifest.obj["data"]["image"] == f"reg.example/web:{REVISION.short}"
    with pytest.raises(UnknownVariable, match=r"^deploy/web\.yaml: unknown variable \$\{REGISTRY\} in data\.image"):
        render(tree, options(), OFFLINE)


def test_absurd_nesting_is_refused_by_name() -> None:
    """A document nested hundreds of levels deep is refused with its file, not a RecursionError."""
    tree = MemoryTree(
        {"deploy/deep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: " + "[" * 500 + "]" * 500}
    )
    with pytest.raises(InvalidManifest, match=r"^deploy/deep\.yaml: is nested more than 200 levels deep"):
        render(tree, options(), OFFLINE)


def test_each_render_returns_fresh_objects() -> None:
    """Two renders of one tree are equal but share no objects (callers may mutate theirs)."""
    tree = MemoryTree({"deploy/a.yaml": CM.format(name="a")})
    first, second = render(tree, options(), OFFLINE), render(tree, options(), OFFLINE)
    assert first == second
    first[0].obj["metadata"]["labels"] = {"x": "y"}
    assert "labels" not in second[0].obj["metadata"]
