"""Why a render failed, as exceptions whose ``reason`` becomes the Environment's condition reason.

Every message starts with where the problem is (a file, ``file#N`` for its N-th document, or
the kustomization and object) so a user can go straight to it::

    RenderError (GitopsdError)      RenderFailed
    ├── PathNotFound                PathNotFound          spec.source.path is not a directory
    ├── MalformedManifest           MalformedManifest     not YAML/JSON: file:line:column
    ├── InvalidManifest             InvalidManifest       no apiVersion / kind / metadata.name: file, document
    ├── UnknownVariable             SubstitutionFailed    ${NAME} with no value, or ${...} not a name
    ├── UnknownKind                 UnknownKind           neither the cluster nor a CRD in the render has it
    ├── MissingNamespace            MissingNamespace      namespaced, no metadata.namespace, no targetNamespace
    ├── DuplicateObject             DuplicateObject       one object defined twice: both origins
    ├── LimitExceeded               (below)               a render over one of ``limits``: file, limit
    │   ├── FileTooLarge            FileTooLarge          one manifest file over 8 MiB
    │   ├── RenderTooLarge          RenderTooLarge        manifests read or rendered over 64 MiB
    │   ├── TooManyObjects          TooManyObjects        more than 10,000 objects
    │   └── AliasExpansionTooLarge  AliasExpansionTooLarge  aliases adding more than 1,000,000 values
    ├── KustomizeError              KustomizeFailed       kustomize said no: its message
    │   ├── KustomizeTimeout        KustomizeTimeout      killed at the timeout
    │   └── KustomizeUnavailable    KustomizeUnavailable  neither kustomize nor kubectl installed
    ├── HelmError                   HelmTemplateFailed    helm template said no: its message (template file:line)
    │   ├── HelmTimeout             HelmTimeout           killed at the timeout
    │   └── HelmUnavailable         HelmUnavailable       no helm installed
    └── ValuesFileNotFound          ValuesFileNotFound    a spec.helm.valuesFiles entry is not in the chart

All of them but the timeouts and the missing tools depend only on the files at one revision:
retrying the same revision gives the same error.
"""

from __future__ import annotations

from gitopsd.errors import GitopsdError


class RenderError(GitopsdError):
    """The files of a source could not be turned into objects to apply."""

    reason = "RenderFailed"


class PathNotFound(RenderError):
    reason = "PathNotFound"


class MalformedManifest(RenderError):
    """A file is not valid YAML or JSON (or not UTF-8 text)."""

    reason = "MalformedManifest"

    def __init__(self, origin: str, problem: str, line: int | None = None, column: int | None = None) -> None:
        where = origin if line is None else f"{origin}:{line}" if column is None else f"{origin}:{line}:{column}"
        super().__init__(f"{where}: {problem}")
        self.origin, self.line, self.column = origin, line, column


class InvalidManifest(RenderError):
    """A document parses but is not a Kubernetes object gitopsd can apply."""

    reason = "InvalidManifest"

    def __init__(self, origin: str, problem: str) -> None:
        super().__init__(f"{origin}: {problem}")
        self.origin = origin


class UnknownVariable(RenderError):
    """A ``${NAME}`` with no value (or a ``${...}`` that is not a plain name)."""

    reason = "SubstitutionFailed"

    def __init__(self, origin: str, variable: str, message: str) -> None:
        super().__init__(f"{origin}: {message}")
        self.origin, self.variable = origin, variable


class UnknownKind(RenderError):
    reason = "UnknownKind"

    def __init__(self, origin: str, api_version: str, kind: str, *, offline: bool = False, hint: str = "") -> None:
        unknown = (
            "it is not a built-in Kubernetes type (rendered without a cluster)"
            if offline
            else "the cluster does not serve it"
        )
        super().__init__(
            f"{origin}: unknown kind {kind} in {api_version}: {unknown} and no CustomResourceDefinition"
            f" in this render defines it{hint}"
        )
        self.origin, self.api_version, self.kind = origin, api_version, kind


class MissingNamespace(RenderError):
    reason = "MissingNamespace"

    def __init__(self, origin: str, obj: str) -> None:
        super().__init__(
            f"{origin}: {obj} is namespaced but sets no metadata.namespace, and the Environment has no"
            " spec.targetNamespace"
        )
        self.origin = origin


class DuplicateObject(RenderError):
    reason = "DuplicateObject"

    def __init__(self, obj: str, first: str, second: str) -> None:
        super().__init__(f"{obj} is defined twice: in {first} and in {second}")
        self.first, self.second = first, second


class LimitExceeded(RenderError):
    """A render is over one of the limits in ``render.limits``; nothing of it is applied."""

    reason = "RenderTooLarge"

    def __init__(self, origin: str, problem: str, limit: str) -> None:
        super().__init__(f"{origin}: {problem} ({limit})")
        self.origin, self.limit = origin, limit


class FileTooLarge(LimitExceeded):
    reason = "FileTooLarge"


class RenderTooLarge(LimitExceeded):
    reason = "RenderTooLarge"


class TooManyObjects(LimitExceeded):
    reason = "TooManyObjects"


class AliasExpansionTooLarge(LimitExceeded):
    reason = "AliasExpansionTooLarge"


class KustomizeError(RenderError):
    reason = "KustomizeFailed"


class KustomizeTimeout(KustomizeError):
    reason = "KustomizeTimeout"
    transient = True


class KustomizeUnavailable(KustomizeError):
    reason = "KustomizeUnavailable"


class HelmError(RenderError):
    reason = "HelmTemplateFailed"


class HelmTimeout(HelmError):
    reason = "HelmTimeout"
    transient = True


class HelmUnavailable(HelmError):
    reason = "HelmUnavailable"


class ValuesFileNotFound(RenderError):
    reason = "ValuesFileNotFound"
