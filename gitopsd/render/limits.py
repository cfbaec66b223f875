"""How big one render may get, counted over the whole render, and the counter that enforces it.

A few hundred bytes of YAML can stand for billions of values: an alias (``*a``) repeats a whole
block for the price of two characters, and a ``List`` whose items are aliases of other
``List`` objects multiplies objects the same way. Counting per object missed the second shape
(every object stayed small; there were simply hundreds of thousands of them), so one
``Budget`` now follows a render from its first file to its last object:

==================  ==============  ===============================================================
limit               value           counts
==================  ==============  ===============================================================
one file            8 MiB           a manifest file's bytes, checked before it is parsed
rendered size       64 MiB          the manifest bytes read (files, or kustomize's output), plus
                                    what documents with YAML anchors expand to, as compact JSON
objects             10,000          objects after ``List`` items are flattened
alias expansion     1,000,000       values that aliases and merge keys (``<<``) add: an alias
                                    counts every value of the block it repeats, however nested
nesting             200 levels      containers inside one document (aliases followed)
==================  ==============  ===============================================================

Why these values. The Kubernetes API server refuses a request body over 3 MiB and etcd an object
over 1.5 MiB, so no single object comes near 8 MiB; a file holding many is still a rare 8 MiB
(the largest common CRD bundles are a few MiB). Argo CD caps the manifest files of a directory
application at 10 MiB by default; 64 MiB is six times that, tens of thousands of typical
Deployments as JSON. 10,000 objects is more than any one application applies (large Helm charts
render a few hundred). Kubernetes YAML that kustomize or Helm writes holds no aliases at all;
hand-written files use them for a labels map or an env list repeated a few times, tens or
hundreds of values each: a million is far beyond that (and about a quarter of the values a
64 MiB render holds in all). Exceeding any of them is a mistake or an attack, and stops the render
(nothing is applied) with an error naming the file and the limit.

Measuring costs one pass over the parsed values with each shared block visited once (its size
remembered), so it is linear in what the file spells out, not in what it expands to; and it
runs only for streams that define an anchor (``&name``): without one there is no alias, and
kustomize's output never has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitopsd import model
from gitopsd.render.errors import AliasExpansionTooLarge, FileTooLarge, InvalidManifest, RenderTooLarge, TooManyObjects

MiB = 1024 * 1024
MAX_FILE_BYTES = model.MAX_FILE_BYTES  # 8 MiB: the tree does not even read a larger file
MAX_RENDERED_BYTES = 64 * MiB
MAX_OBJECTS = 10_000
MAX_ALIAS_VALUES = 1_000_000
MAX_DEPTH = 200


def size_text(size: int, limit: int | None = None) -> str:
    """``8 MiB``, ``1.5 MiB``, ``912 bytes``: sizes as the limits are written; in bytes when that
    would read the same as ``limit`` (``8,388,618 bytes``, not ``8 MiB`` over a limit of 8 MiB)."""
    if limit is not None and size != limit and size_text(size) == size_text(limit):
        return f"{size:,} bytes"
    if size < MiB:
        return f"{size} bytes" if size < 1024 else f"{size / 1024:.4g} KiB"
    return f"{size / MiB:.4g} MiB"


@dataclass(frozen=True, slots=True)
class Limits:
    file_bytes: int = MAX_FILE_BYTES
    rendered_bytes: int = MAX_RENDERED_BYTES
    objects: int = MAX_OBJECTS
    alias_values: int = MAX_ALIAS_VALUES
    depth: int = MAX_DEPTH


class Budget:
    """What one render has used so far; every method raises the limit's error naming ``origin``."""

    __slots__ = ("alias_values", "limits", "objects", "rendered")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.rendered = self.objects = self.alias_values = 0

    def read_file(self, origin: str, size: int) -> None:
        """A manifest file of ``size`` bytes is about to be parsed."""
        if size > self.limits.file_bytes:
            raise FileTooLarge(
                origin,
                f"is {size_text(size, self.limits.file_bytes)}",
                f"limit per file: {size_text(self.limits.file_bytes)}",
            )
        self.read_output(origin, size)

    def unread_file(self, origin: str, size: int) -> None:
        """A manifest file the tree did not read: over ``model.MAX_FILE_BYTES``, whatever ``limits`` say."""
        limit = min(self.limits.file_bytes, model.MAX_FILE_BYTES)
        raise FileTooLarge(origin, f"is {size_text(size, limit)}", f"limit per file: {size_text(limit)}")

    def read_output(self, origin: str, size: int) -> None:
        """``size`` more bytes of manifests (a file, or kustomize's output) are about to be parsed."""
        self._rendered(origin, size)

    def merged(self, origin: str, values: int) -> None:
        """A merge key (``<<: *a``) copied ``values`` entries into a mapping."""
        self._aliased(origin, values)

    def measure(self, origin: str, value: Any) -> None:
        """Count a parsed document of a stream with anchors: what its aliases expand to (values,
        and bytes as JSON, added to the render's size), and its depth with aliases followed.

        A stream without anchors has no aliases: its parsed size is about its text's, already
        counted when read, and nesting is checked per object later (``substitute``).
        """
        size = _Measure(origin, self.limits.depth)
        nodes, json_bytes, _ = size.of(value, 0)
        self._aliased(origin, nodes - 1 - size.written)
        self._rendered(origin, json_bytes)

    def _rendered(self, origin: str, size: int) -> None:
        self.rendered += size
        if self.rendered > self.limits.rendered_bytes:
            raise RenderTooLarge(
                origin,
                f"brings this render to {size_text(self.rendered, self.limits.rendered_bytes)}",
                f"rendered size limit: {size_text(self.limits.rendered_bytes)}",
            )

    def count_object(self, origin: str) -> None:
        self.objects += 1
        if self.objects > self.limits.objects:
            raise TooManyObjects(
                origin, f"holds object number {self.objects:,} of this render", f"object limit: {self.limits.objects:,}"
            )

    def _aliased(self, origin: str, values: int) -> None:
        self.alias_values += values
        if self.alias_values > self.limits.alias_values:
            total = "more than 10^18" if self.alias_values > 10**18 else f"{self.alias_values:,}"
            raise AliasExpansionTooLarge(
                origin,
                f"brings the values that YAML aliases and merge keys add in this render to {total}"
                " (aliases of aliases: a 'billion laughs' document?)",
                f"alias expansion limit: {self.limits.alias_values:,} values",
            )


class _Measure:
    """Expanded size of one document, each shared (aliased) container computed once."""

    __slots__ = ("active", "depth_limit", "memo", "origin", "written")

    def __init__(self, origin: str, depth_limit: int) -> None:
        self.origin, self.depth_limit = origin, depth_limit
        self.memo: dict[int, tuple[int, int, int]] = {}  # id -> (values, JSON bytes, height)
        self.active: set[int] = set()
        self.written = 0  # child slots as written: one per value, an alias being one

    def of(self, value: Any, depth: int) -> tuple[int, int, int]:
        """(values, JSON bytes, height) of ``value`` with every alias written out."""
        if not isinstance(value, dict | list):
            return 1, _scalar_bytes(value), 0
        key = id(value)
        known = self.memo.get(key)
        if known is None:
            if key in self.active:
                raise InvalidManifest(self.origin, "holds a YAML alias inside the block it refers to (a cycle)")
            if depth >= self.depth_limit:
                raise InvalidManifest(self.origin, f"is nested more than {self.depth_limit} levels deep")
            self.active.add(key)
            known = self._container(value, depth)
            self.active.discard(key)
            self.memo[key] = known
        if depth + known[2] >= self.depth_limit:
            raise InvalidManifest(self.origin, f"is nested more than {self.depth_limit} levels deep")
        return known

    def _container(self, value: dict[Any, Any] | list[Any], depth: int) -> tuple[int, int, int]:
        self.written += len(value)
        nodes, json_bytes, height = 1, 2 + max(len(value) - 1, 0), 0  # brackets and commas
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict):
            json_bytes += sum(_scalar_bytes(k) + 1 for k in value)  # "key":
        for child in children:
            if isinstance(child, dict | list):
                n, b, h = self.of(child, depth + 1)
                nodes, json_bytes, height = nodes + n, json_bytes + b, max(height, h + 1)
            else:
                nodes, json_bytes = nodes + 1, json_bytes + _scalar_bytes(child)
        return nodes, json_bytes, height


def _scalar_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, int):
        return len(str(value)) if abs(value) < 10**4000 else 4000
    return len(repr(value))
