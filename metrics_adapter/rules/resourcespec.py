"""A rule's ``resources:`` block as read (labels ↔ Kubernetes resources), shared by ``rules``,
``externalRules`` and ``resourceRules`` (``metrics_adapter.resourcemetrics.config``) so neither
config module imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metrics_adapter.rules import gotemplate


@dataclass(frozen=True, slots=True)
class GroupResourceRef:
    """A group-resource as written in a rule (``{group: apps, resource: deployment}``)."""

    group: str
    resource: str


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    template: gotemplate.Template | None
    overrides: Mapping[str, GroupResourceRef]
    namespaced: bool  # externalRules only: false ignores the requester's namespace


__all__ = ["GroupResourceRef", "ResourceSpec"]
