"""``spec.kubeConfig``: the Secret holding the kubeconfig of the cluster an Environment deploys into.

Flux's shape: ``kubeConfig: {secretRef: {name, key}}``, the Secret in the Environment's
namespace; without ``key`` the value is read from ``value``, else ``value.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitopsd.fields import SPEC as FIELDS

#: The keys tried, in order, when ``secretRef.key`` is not given (Flux's).
DEFAULT_KEYS = ("value", "value.yaml")


@dataclass(frozen=True, slots=True)
class KubeConfigRef:
    """The Secret (in the Environment's namespace) and, if given, the key holding the kubeconfig."""

    name: str
    key: str | None = None


def parse_kube_config(raw: Any) -> KubeConfigRef | None:
    """Read ``spec.kubeConfig``; None when absent. ``SpecError`` names the bad field."""
    if raw is None:
        return None
    block = FIELDS.mapping(raw, "kubeConfig", required=True)
    ref = FIELDS.mapping(block.get("secretRef"), "kubeConfig.secretRef", required=True)
    name = FIELDS.string(ref.get("name"), "kubeConfig.secretRef.name")
    FIELDS.dns_subdomain(name, "kubeConfig.secretRef.name", what="a Secret name")
    key = FIELDS.optional_string(ref.get("key"), "kubeConfig.secretRef.key")
    return KubeConfigRef(name, key or None)
