"""The files of a source at one revision → the list of objects to apply.

One pipeline, in this order, each step in its own module:

1. read: a plain directory (``documents``: every ``*.yaml`` / ``*.yml`` / ``*.json`` under the
   path, recursively, hidden entries skipped), or, when the path holds a ``Chart.yaml``, the
   output of ``helm template`` (``helm``), or, when it holds a kustomization, the output of
   ``kustomize build`` (``kustomize``);
2. flatten ``List`` objects, drop empty documents;
3. substitute ``${NAME}`` (``substitute``), only when the options carry values (None: off);
4. check identity, set or strip namespaces by scope, refuse duplicates (``objects``,
   ``scopes``).

One ``limits.Budget`` follows the whole render (every file, kustomize's output, every ``List``
item): a file over 8 MiB, more than 64 MiB of manifests or rendered objects, more than 10,000
objects or YAML aliases adding more than a million values stop it with an error naming the file
and the limit, before anything is applied.

The result keeps a stable order (file path, then document; kustomize's own order for a
kustomization), and each ``Manifest.origin`` says where an object came from. An empty list is a
valid result (the path exists but holds no objects): whether that may prune is the applier's
decision (``allowEmpty``), not the renderer's.

``render`` blocks (it reads the tree and may run kustomize); the daemon calls it in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitopsd.errors import GitopsdError
from gitopsd.model import Manifest, Revision, Scopes, Tree
from gitopsd.render import helm, kustomize
from gitopsd.render.documents import Document, file_documents, flatten_lists, is_manifest_file, parse
from gitopsd.render.errors import (
    AliasExpansionTooLarge,
    DuplicateObject,
    FileTooLarge,
    InvalidManifest,
    KustomizeError,
    KustomizeTimeout,
    KustomizeUnavailable,
    LimitExceeded,
    MalformedManifest,
    MissingNamespace,
    PathNotFound,
    RenderError,
    RenderTooLarge,
    TooManyObjects,
    UnknownKind,
    UnknownVariable,
)
from gitopsd.render.helm import HelmOptions
from gitopsd.render.limits import Budget, Limits
from gitopsd.render.objects import check_identity, place_namespace, reject_duplicates, require_mapping
from gitopsd.render.scopes import OfflineScopes, crd_scopes
from gitopsd.render.substitute import SUBSTITUTE_ANNOTATION, Variables, substitute, variables

__all__ = [
    "SUBSTITUTE_ANNOTATION",
    "AliasExpansionTooLarge",
    "DuplicateObject",
    "FileTooLarge",
    "HelmOptions",
    "InvalidManifest",
    "KustomizeError",
    "KustomizeTimeout",
    "KustomizeUnavailable",
    "LimitExceeded",
    "Limits",
    "MalformedManifest",
    "MissingNamespace",
    "OfflineScopes",
    "PathNotFound",
    "RenderError",
    "RenderOptions",
    "RenderTooLarge",
    "TooManyObjects",
    "UnknownKind",
    "UnknownVariable",
    "render",
]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    path: str  # repository-relative directory, already normalised by spec.py ("" is the root)
    environment: str  # the Environment's name: ${GITOPSD_ENVIRONMENT}
    revision: Revision | None  # None when rendering a local directory (`gitopsd render --path`)
    #: ``${NAME}`` values; None turns substitution off (the text is applied as written).
    substitute: Mapping[str, str] | None = None
    target_namespace: str | None = None
    kustomize_timeout: float = 60.0  # also helm template's
    limits: Limits = field(default_factory=Limits)
    #: How a chart is rendered (None: release named after the Environment, Helm's defaults).
    helm: HelmOptions | None = None


def render(tree: Tree, options: RenderOptions, scopes: Scopes) -> list[Manifest]:
    """The objects to apply, in a stable order; raises a ``RenderError`` naming the file."""
    try:
        files = tree.files(options.path)
    except FileNotFoundError as exc:
        if isinstance(exc, GitopsdError):  # the tree already said what is wrong, and where
            raise PathNotFound(f"spec.source.path: {exc}") from None
        at = f" at {options.revision}" if options.revision else ""
        raise PathNotFound(f"spec.source.path {options.path or '.'!r} is not a directory{at}") from None
    budget = Budget(options.limits)
    kustomization = kustomize.kustomization_file(files, options.path)
    if helm.chart_file(files, options.path):
        documents = _helm_documents(tree, options, budget)
    elif kustomization:
        documents = _kustomize_documents(tree, options, kustomization, budget)
    else:
        documents = _directory_documents(files, options.path, budget)
    flat = [doc for listed in documents for doc in flatten_lists(listed, budget)]

    values = (
        None if options.substitute is None else variables(options.substitute, options.environment, options.revision)
    )
    objects = [(_substituted(doc, values), doc.origin) for doc in flat]
    for obj, origin in objects:
        check_identity(obj, origin)
    render_crds = crd_scopes(objects)
    manifests = []
    for obj, origin in objects:
        place_namespace(obj, origin, scopes, render_crds, options.target_namespace)
        manifests.append(Manifest(obj, origin))
    reject_duplicates(manifests)
    return manifests


def _directory_documents(files: Mapping[str, bytes], path: str, budget: Budget) -> list[Document]:
    prefix = f"{path}/" if path else ""
    return [
        doc
        for name in sorted(files)
        if is_manifest_file(name.removeprefix(prefix))
        for doc in file_documents(name, files[name], budget)
    ]


def _kustomize_documents(tree: Tree, options: RenderOptions, kustomization: str, budget: Budget) -> list[Document]:
    output = kustomize.build(
        tree.directory(), options.path, kustomization, options.kustomize_timeout, budget.limits.rendered_bytes
    )
    origin = f"{kustomization} (kustomize output)"
    budget.read_output(origin, len(output))
    return [
        Document(obj, _kustomized_origin(kustomization, obj, number))
        for number, obj in parse(origin, output, budget=budget)
    ]


def _helm_documents(tree: Tree, options: RenderOptions, budget: Budget) -> list[Document]:
    settings = options.helm or HelmOptions(release_name=options.environment, namespace=options.target_namespace)
    rendered = helm.template(
        tree.directory(), options.path, settings, options.kustomize_timeout, budget.limits.rendered_bytes
    )
    documents = []
    for template, text in rendered:
        origin = f"{template} (helm output)"
        budget.read_output(origin, len(text))
        parsed = parse(origin, text, budget=budget)
        documents += [Document(obj, _kustomized_origin(template, obj, number)) for number, obj in parsed]
    return documents


def _kustomized_origin(kustomization: str, obj: object, number: int) -> str:
    """kustomize does not say which file an object came from: name the kustomization and the object."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict) and isinstance(obj.get("kind"), str) and meta.get("name"):
            namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
            return f"{kustomization} ({obj['kind']} {namespace}{meta['name']})"
    return f"{kustomization}#{number}"


def _substituted(doc: Document, values: Variables | None) -> dict[str, Any]:
    return substitute(require_mapping(doc.obj, doc.origin), values, doc.origin)
