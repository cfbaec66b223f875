"""Prometheus labels ↔ Kubernetes resources for one rule (``resources: {template, overrides}``).

A series is attached to every resource one of its labels names: an override maps a label to a
group-resource outright; the template (``kube_<<.Group>>_<<.Resource>>``) is turned into a
regex that recognises such labels, and each candidate is kept only if the cluster has that
resource. The reverse direction gives the label to put in a query for a requested resource:
the override's label, or the template filled with the group (dots and dashes as underscores)
and the singular resource name. Same algorithm as prometheus-adapter's resource converter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from metrics_adapter.kube.mapper import Mapper, ResourceInfo, UnknownResource
from metrics_adapter.rules.resourcespec import ResourceSpec

_SANITIZE = str.maketrans({".": "_", "-": "_"})
NAMESPACES = ("", "namespaces")
NODES = ("", "nodes")


class NoLabel(LookupError):
    """The rule has no label for a resource (no override and no template)."""


def _key(info: ResourceInfo) -> tuple[str, str]:
    return (info.group, info.resource)


@dataclass(slots=True)
class ResourceConverter:
    spec: ResourceSpec
    mapper: Callable[[], Mapper]
    where: str
    _extract: re.Pattern[str] | None = field(default=None, init=False)
    _label_cache: dict[str, ResourceInfo | None] = field(default_factory=dict, init=False)
    _labels: dict[tuple[str, str], str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.spec.template is not None:
            pattern = self.spec.template.render({"Group": "\x00G\x00", "Resource": "\x00R\x00"})
            pattern = (
                re.escape(pattern).replace("\x00G\x00", "(?P<group>.+?)").replace("\x00R\x00", "(?P<resource>.+?)")
            )
            self._extract = re.compile(f"^{pattern}$")

    def validate(self) -> None:
        """Resolve every override now, so a misspelt resource stops start-up (names rule and label)."""
        m = self.mapper()
        for label, ref in self.spec.overrides.items():
            try:
                m.resource_for(ref.group, ref.resource)
            except UnknownResource as exc:
                raise UnknownResource(f"{self.where}.resources.overrides.{label}: {exc}") from exc

    def reset(self) -> None:
        """Forget label resolutions after the cluster's resources changed."""
        self._label_cache.clear()
        self._labels.clear()

    def resource_for_label(self, label: str) -> ResourceInfo | None:
        if label in self._label_cache:
            return self._label_cache[label]
        m = self.mapper()
        info: ResourceInfo | None = None
        ref = self.spec.overrides.get(label)
        if ref is not None:
            try:
                info = m.resource_for(ref.group, ref.resource)
            except UnknownResource:
                info = None
        elif self._extract is not None:
            match = self._extract.match(label)
            if match:
                group = match.groupdict().get("group") or ""
                try:
                    info = m.resource_for(group, match.group("resource"))
                except UnknownResource:
                    info = None
        self._label_cache[label] = info
        return info

    def resources_for_series(self, labels: Iterable[str]) -> tuple[list[ResourceInfo], bool]:
        """The resources a series describes, and whether it carries the namespace label."""
        found: list[ResourceInfo] = []
        namespaced = False
        for label in labels:
            info = self.resource_for_label(label)
            if info is None:
                continue
            found.append(info)
            if _key(info) == NAMESPACES:
                namespaced = True
        return found, namespaced

    def label_for(self, info: ResourceInfo) -> str:
        """The Prometheus label holding names of ``info`` objects."""
        key = (info.group, info.resource)
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = self._label_for(info)
        return label

    def _label_for(self, info: ResourceInfo) -> str:
        m = self.mapper()
        for label, ref in self.spec.overrides.items():
            try:
                if _key(m.resource_for(ref.group, ref.resource)) == _key(info):
                    return label
            except UnknownResource:
                continue
        if self.spec.template is None:
            raise NoLabel(f"{self.where}: no label for resource {info.group_resource} (no override and no template)")
        label = self.spec.template.render({"Group": info.group.translate(_SANITIZE), "Resource": info.singular})
        if not label:
            raise NoLabel(f"{self.where}: resources.template produced an empty label for {info.group_resource}")
        return label

    def namespace_label(self) -> str | None:
        """The label for namespaces, or None when the rule has none."""
        try:
            info = self.mapper().resource_for(*NAMESPACES)
        except UnknownResource:
            info = ResourceInfo("", "v1", "namespaces", "namespace", "Namespace", False)
        try:
            return self.label_for(info)
        except NoLabel:
            return None
