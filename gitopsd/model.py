"""Values the engine parts pass between each other: revisions, object identities, manifests.

They are deliberately small and plain so that sources, render, apply, health and releases can
agree on them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: Label put on every object an Environment applies: ``<namespace>.<name>`` of the Environment.
ENVIRONMENT_LABEL = "gitopsd.dev/environment"
#: Label a user sets (in Git or by hand) to keep an object when it leaves Git.
PRUNE_LABEL = "gitopsd.dev/prune"
PRUNE_DISABLED = "disabled"
#: The field manager of every server-side apply gitopsd makes.
FIELD_MANAGER = "gitopsd"


@dataclass(frozen=True, slots=True)
class Revision:
    """A resolved source revision: the ref it came from (branch or tag, "" when pinned) and the commit;
    or, for a chart from a Helm repository (``chart``), the chart's name and version."""

    ref: str
    commit: str
    chart: bool = False

    def __str__(self) -> str:
        if self.chart:
            return f"{self.ref}@{self.commit}"  # shop@1.2.3, as Helm names a chart version
        # Flux's notation, so people reading status across tools see one format.
        return f"{self.ref}@sha1:{self.commit}" if self.ref else f"sha1:{self.commit}"

    @property
    def short(self) -> str:
        return self.commit if self.chart else self.commit[:7]

    @classmethod
    def parse(cls, text: str) -> Revision:
        """Inverse of ``str()``: ``main@sha1:abc...``, ``sha1:abc...`` or a chart's ``shop@1.2.3``."""
        ref, sep, rest = text.rpartition("@")
        if sep and ref and rest.removeprefix("v")[:1].isdigit():
            return cls(ref, rest, chart=True)
        if not rest.startswith("sha1:"):
            raise ValueError(f"not a revision: {text!r} (expected REF@sha1:COMMIT, sha1:COMMIT or CHART@VERSION)")
        return cls(ref if sep else "", rest.removeprefix("sha1:"))


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """The identity of a Kubernetes object: group, kind, namespace ("" when cluster-scoped), name.

    The version is not part of identity: ``apps/v1`` and a later ``apps/v2`` Deployment of the
    same name are one object.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def id(self) -> str:
        """The inventory id, ``<namespace>_<name>_<group>_<kind>`` (the format Flux and cli-utils use)."""
        return f"{self.namespace}_{self.name}_{self.group}_{self.kind}"

    @classmethod
    def from_id(cls, text: str) -> ObjectRef:
        # Namespaces, groups and kinds never hold "_"; some names (RBAC) may, so split around them.
        namespace, sep, rest = text.partition("_")
        name, sep2, tail = rest.rpartition("_")
        name, sep3, group = name.rpartition("_")
        if not (sep and sep2 and sep3 and tail):
            raise ValueError(f"not an inventory id: {text!r}")
        return cls(group, tail, namespace, name)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The identity of a Kubernetes object given as JSON."""
        api_version = str(obj.get("apiVersion", ""))
        group = api_version.rpartition("/")[0]
        meta = obj.get("metadata") or {}
        return cls(group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind}/{self.namespace}/{self.name}" if self.namespace else f"{kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """One rendered object and where it came from, for messages that name the file."""

    obj: dict[str, Any]
    origin: str  # e.g. "deploy/prod/web.yaml", or "deploy/prod/all.yaml#2" for a second document

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.obj)

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))


#: A file larger than this is not read by a ``Tree``: no manifest file is near it (the API server
#: takes at most 3 MiB per object), and reading a blob that Git stores compressed to a few
#: kilobytes could cost gigabytes. The render refuses it by name (``render.limits``).
MAX_FILE_BYTES = 8 * 1024 * 1024


class UnreadFile(bytes):
    """Stands in for a file over ``MAX_FILE_BYTES`` that a ``Tree`` did not read: empty, with its ``size``."""

    size: int

    def __new__(cls, size: int) -> UnreadFile:
        unread = super().__new__(cls)
        unread.size = size
        return unread


class Tree(Protocol):
    """The files of a source at one revision: a Git commit in a mirror, or a local directory.

    Methods block (they may run git or read disk); callers run them in a worker thread.
    """

    def files(self, path: str) -> dict[str, bytes]:
        """Every file under the directory ``path`` (recursive), keyed by repository-relative path;
        a file over ``MAX_FILE_BYTES`` is an ``UnreadFile``.

        Raises ``FileNotFoundError`` when ``path`` is not a directory at this revision.
        """
        ...

    def directory(self) -> Path:
        """The whole tree on local disk (for tools such as kustomize that read files themselves).

        Made on first call and kept until the source is closed; never a Git work tree.
        """
        ...


class Scopes(Protocol):
    """Whether a type is namespaced: True / False, or None when the cluster does not know it."""

    def is_namespaced(self, api_version: str, kind: str) -> bool | None: ...
