"""``spec.chart`` and ``spec.helm`` of an Environment, read into typed values.

Kept beside the Helm renderer rather than in ``spec``: which chart, which version range, and
how ``helm template`` is asked to render it are one concern. ``spec.parse_spec`` calls
``parse_chart`` and ``parse_helm``; every error names the field, like the rest of the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast

from gitopsd import semver
from gitopsd.errors import SpecError
from gitopsd.fields import SPEC as FIELDS

ValuesKind = Literal["ConfigMap", "Secret"]
VALUES_KINDS: tuple[ValuesKind, ...] = ("ConfigMap", "Secret")
#: Chart names as Helm accepts them (lowercase letters, digits, '-', '_' and '.').
_CHART_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
#: A ConfigMap or Secret data key, as the API server allows them.
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
#: A Helm release name: a DNS label of at most 53 characters (Helm's own limit).
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """``spec.chart``: a chart from an HTTP Helm repository or an OCI registry."""

    repository: str  # https://host/path (holds index.yaml) or oci://host/path
    name: str
    version: str  # an exact version or a range ("1.2.3", ">=1.2.0 <2.0.0", "~1.2")
    secret_name: str | None = None

    @property
    def oci(self) -> bool:
        return self.repository.startswith("oci://")


@dataclass(frozen=True, slots=True)
class ValuesFrom:
    """One ``spec.helm.valuesFrom`` entry: a key of a ConfigMap or Secret holding values YAML."""

    kind: ValuesKind
    name: str
    key: str = "values.yaml"
    optional: bool = False


@dataclass(frozen=True, slots=True)
class HelmSpec:
    """``spec.helm``: how a chart (from Git or ``spec.chart``) is rendered."""

    release_name: str | None = None  # None: the Environment's name
    values_files: tuple[str, ...] = ()  # relative to the chart's directory
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    values_from: tuple[ValuesFrom, ...] = ()
    skip_crds: bool = False


def parse_chart(raw: Any) -> ChartSpec | None:
    """``spec.chart`` (None when absent)."""
    if raw is None:
        return None
    chart = FIELDS.mapping(raw, "chart", required=True)
    repository = FIELDS.text(chart.get("repository"), "chart.repository")
    if not re.match(r"^(https?|oci)://[^/\s]+", repository):
        raise SpecError("chart.repository", f"{repository!r} is neither an http(s):// Helm repository nor oci://")
    if "@" in repository.split("://", 1)[1].split("/", 1)[0]:
        raise SpecError("chart.repository", "must not hold credentials: put them in a Secret named by chart.secretRef")
    name = FIELDS.text(chart.get("name"), "chart.name")
    if not _CHART_NAME.match(name):
        raise SpecError("chart.name", f"{name!r} is not a chart name (lowercase letters, digits, '-', '_', '.')")
    version = FIELDS.text(chart.get("version", "*"), "chart.version")
    try:
        semver.parse_constraint(version)
    except ValueError as exc:
        raise SpecError("chart.version", f"{version!r} is neither a version nor a version range: {exc}") from None
    secret = FIELDS.mapping(chart.get("secretRef"), "chart.secretRef")
    where = "chart.secretRef.name"
    secret_name = (
        FIELDS.dns_subdomain(secret.get("name"), where, what="a Secret name") if "secretRef" in chart else None
    )
    return ChartSpec(repository.rstrip("/"), name, version, secret_name)


def parse_helm(raw: Any) -> HelmSpec:
    """``spec.helm`` (defaults when absent)."""
    helm = FIELDS.mapping(raw, "helm")
    release = FIELDS.optional_string(helm.get("releaseName"), "helm.releaseName")
    if release and not _RELEASE_NAME.match(release):
        raise SpecError("helm.releaseName", f"{release!r} is not a release name (a DNS label of at most 53 characters)")
    files = []
    for index, item in enumerate(FIELDS.items(helm.get("valuesFiles"), "helm.valuesFiles")):
        path = FIELDS.relative_path(item, f"helm.valuesFiles[{index}]", root="the chart")
        if not path:
            raise SpecError(f"helm.valuesFiles[{index}]", "names no file")
        files.append(path)
    values = FIELDS.mapping(helm.get("values"), "helm.values")
    return HelmSpec(
        release_name=release or None,
        values_files=tuple(files),
        values=MappingProxyType(dict(values)),
        values_from=_values_from(helm.get("valuesFrom")),
        skip_crds=FIELDS.boolean(helm.get("skipCRDs", False), "helm.skipCRDs"),
    )


def _values_from(raw: Any) -> tuple[ValuesFrom, ...]:
    entries = []
    for index, item in enumerate(FIELDS.items(raw, "helm.valuesFrom")):
        where = f"helm.valuesFrom[{index}]"
        entry = FIELDS.mapping(item, where, required=True)
        kind = cast(ValuesKind, FIELDS.choice(entry.get("kind"), f"{where}.kind", VALUES_KINDS))
        name = FIELDS.dns_subdomain(entry.get("name"), f"{where}.name", what=f"a {kind} name")
        key = FIELDS.text(entry.get("key", "values.yaml"), f"{where}.key")
        if not _DATA_KEY.match(key) or key in (".", ".."):
            raise SpecError(f"{where}.key", f"{key!r} is not a {kind} key (letters, digits, '-', '_', '.')")
        optional = FIELDS.boolean(entry.get("optional", False), f"{where}.optional")
        entries.append(ValuesFrom(kind, name, key, optional))
    return tuple(entries)
