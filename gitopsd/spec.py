"""The Environment object, read into typed values: one place decides what a valid spec is.

The CRD's schema (manifests/gitopsd/crd.yaml) rejects most bad specs at admission; this parser
repeats those checks and adds the ones a schema cannot express (exactly one ref, a semver
range that parses, durations), so the daemon and the CLI never act on a spec they only half
understand. Every error names the field, e.g. ``spec.source: give exactly one of branch, tag,
semver, commit (got branch, tag)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast

from gitopsd.clusters.spec import KubeConfigRef, parse_kube_config
from gitopsd.dependencies.spec import Dependency, parse_depends_on
from gitopsd.environment_fields import SPEC as SPEC_FIELDS
from gitopsd.errors import SpecError
from gitopsd.fieldcheck import unknown_field
from gitopsd.fields import SPEC as FIELDS
from gitopsd.freeze import Window, parse_windows
from gitopsd.gates.spec import PromotionSpec, VerificationSpec, parse_promotion, parse_verification
from gitopsd.model import Revision
from gitopsd.notify.subscriptions import Subscription, parse_subscriptions
from gitopsd.render.helmspec import ChartSpec, HelmSpec, parse_chart, parse_helm

GROUP = "gitopsd.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Environment"
PLURAL = "environments"

RefKind = Literal["branch", "tag", "semver", "commit"]
REF_KINDS: tuple[RefKind, ...] = ("branch", "tag", "semver", "commit")
SubstituteKind = Literal["ConfigMap", "Secret"]
SUBSTITUTE_KINDS: tuple[SubstituteKind, ...] = ("ConfigMap", "Secret")

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
RESERVED_PREFIX = "GITOPSD_"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where the manifests come from: a repository, one ref, a directory in it, credentials."""

    url: str
    ref_kind: RefKind
    ref: str
    path: str  # normalised, relative to the repository root; "" is the root
    secret_name: str | None = None


@dataclass(frozen=True, slots=True)
class SubstituteFrom:
    """One ``spec.substituteFrom`` entry: a ConfigMap or Secret (in the Environment's namespace)
    whose keys are ``${NAME}`` values."""

    kind: SubstituteKind
    name: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    source: SourceSpec
    target_namespace: str | None = None
    interval: float = 60.0
    prune: bool = True
    allow_empty: bool = False
    wait_timeout: float = 300.0  # 0: no health gate
    suspend: bool = False
    force: bool = False
    #: ``${NAME}`` values; None (neither ``substitute`` nor ``substituteFrom`` set): substitution off.
    substitute: Mapping[str, str] | None = None
    #: ConfigMaps and Secrets read for more values, later ones winning; ``substitute`` wins over all.
    substitute_from: tuple[SubstituteFrom, ...] = ()
    #: Release records kept (oldest removed first; never the current or the last healthy one).
    history_limit: int = 10
    #: Restore the last healthy release when a new one fails its health gate (and hold it).
    rollback_auto: bool = False
    freeze: tuple[Window, ...] = ()
    #: Who hears about this Environment's lifecycle events (spec.notify).
    notify: tuple[Subscription, ...] = ()
    #: The metric gate after the health gate (spec.verification; see gitopsd.gates).
    verification: VerificationSpec | None = None
    #: Revisions this Environment takes only once other Environments ran them (spec.promotion).
    promotion: PromotionSpec | None = None
    #: A ServiceAccount of the Environment's namespace its writes impersonate (see gitopsd.tenancy).
    service_account_name: str | None = None
    #: A chart from a Helm repository instead of Git (``source`` then stands for its repository).
    chart: ChartSpec | None = None
    helm: HelmSpec = field(default_factory=HelmSpec)
    #: The kubeconfig Secret of the cluster it deploys into (None: this cluster; see gitopsd.clusters).
    kube_config: KubeConfigRef | None = None
    #: Environments that must be Ready on their current revision first (see gitopsd.dependencies).
    depends_on: tuple[Dependency, ...] = ()


@dataclass(frozen=True, slots=True)
class Environment:
    """An Environment as read from the API: identity, the parsed spec, and the raw status."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    spec: EnvironmentSpec
    annotations: Mapping[str, str]
    status: Mapping[str, Any]

    @property
    def key(self) -> str:
        """``<namespace>.<name>``: the value of the label on every object it applies."""
        return f"{self.namespace}.{self.name}"

    @property
    def last_applied(self) -> Revision | None:
        text = self.status.get("lastAppliedRevision")
        try:
            return Revision.parse(text) if isinstance(text, str) and text else None
        except ValueError:
            return None


def parse_environment(obj: Mapping[str, Any]) -> Environment:
    """Read an Environment object; raise ``SpecError`` naming the first bad field."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    if not namespace or not name:
        raise SpecError("", "an Environment needs metadata.name and metadata.namespace")
    key = f"{namespace}.{name}"
    if len(key) > 63:
        raise SpecError("", f"'{key}' is {len(key)} characters; namespace + '.' + name must fit a label value (63)")
    return Environment(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        spec=parse_spec(obj.get("spec"), name=name),
        annotations=MappingProxyType(dict(meta.get("annotations") or {})),
        status=MappingProxyType(dict(obj.get("status") or {})),
    )


def parse_spec(raw: Any, *, name: str | None = None) -> EnvironmentSpec:
    """Read ``spec`` (of the Environment ``name``, when known); raise ``SpecError`` naming the first bad field."""
    spec = FIELDS.mapping(raw, "", required=True)
    unknown = unknown_field(spec, SPEC_FIELDS, "")
    if unknown:
        raise SpecError(unknown[0].removeprefix("."), f"unknown field ({unknown[1]})")
    chart = parse_chart(spec.get("chart"))
    if chart is not None and spec.get("source") is not None:
        raise SpecError("source", "give exactly one of source, chart (got both)")
    source = (
        _parse_source(FIELDS.mapping(spec.get("source"), "source", required=True))
        if chart is None
        else SourceSpec(url=chart.repository, ref_kind="semver", ref=chart.version, path="")
    )
    target_ns = FIELDS.optional_string(spec.get("targetNamespace"), "targetNamespace")
    if target_ns is not None:
        FIELDS.dns_label(target_ns, "targetNamespace", what="a valid namespace name")
    interval = FIELDS.duration(spec.get("interval", "1m"), "interval", at_least=1)
    wait = FIELDS.mapping(spec.get("wait"), "wait")
    wait_timeout = FIELDS.duration(wait.get("timeout", "5m"), "wait.timeout")
    substitute = FIELDS.mapping(spec.get("substitute"), "substitute")
    for key, value in substitute.items():
        check_variable_name(str(key), f"substitute.{key}")
        if not isinstance(value, str):
            FIELDS.string(value, f"substitute.{key}")  # refuses it, saying what it is
    substitute_from = _substitute_from(spec.get("substituteFrom"))
    substitution_on = spec.get("substitute") is not None or bool(substitute_from)
    return EnvironmentSpec(
        source=source,
        target_namespace=target_ns,
        interval=interval,
        prune=FIELDS.boolean(spec.get("prune", True), "prune"),
        allow_empty=FIELDS.boolean(spec.get("allowEmpty", False), "allowEmpty"),
        wait_timeout=wait_timeout,
        suspend=FIELDS.boolean(spec.get("suspend", False), "suspend"),
        force=FIELDS.boolean(spec.get("force", False), "force"),
        substitute=MappingProxyType({str(k): str(v) for k, v in substitute.items()}) if substitution_on else None,
        substitute_from=substitute_from,
        history_limit=FIELDS.whole_number(spec.get("historyLimit", 10), "historyLimit", low=1, high=100),
        rollback_auto=FIELDS.boolean(
            FIELDS.mapping(spec.get("rollback"), "rollback").get("auto", False), "rollback.auto"
        ),
        freeze=parse_windows(spec.get("freeze")),
        notify=parse_subscriptions(spec.get("notify")),
        verification=parse_verification(spec.get("verification"), substitute if substitution_on else {}),
        promotion=parse_promotion(spec.get("promotion"), name=name),
        service_account_name=_service_account(spec.get("serviceAccountName")),
        chart=chart,
        helm=parse_helm(spec.get("helm")),
        kube_config=parse_kube_config(spec.get("kubeConfig")),
        depends_on=parse_depends_on(spec.get("dependsOn"), name=name),
    )


def _service_account(raw: Any) -> str | None:
    name = FIELDS.optional_string(raw, "serviceAccountName")
    if name:
        FIELDS.dns_subdomain(name, "serviceAccountName", what="a ServiceAccount name")
    return name or None


def check_variable_name(name: str, field_name: str) -> None:
    """A ``${NAME}`` a user may define: a shell-style name, not one of the reserved built-ins."""
    if not _VARIABLE.match(name):
        raise SpecError(field_name, "names are letters, digits and '_', not starting with a digit")
    if name.startswith(RESERVED_PREFIX):
        raise SpecError(field_name, f"names starting with {RESERVED_PREFIX} are reserved for built-ins")


def _substitute_from(raw: Any) -> tuple[SubstituteFrom, ...]:
    entries = []
    for index, item in enumerate(FIELDS.items(raw, "substituteFrom")):
        where = f"substituteFrom[{index}]"
        entry = FIELDS.mapping(item, where, required=True)
        kind = cast(SubstituteKind, FIELDS.choice(entry.get("kind"), f"{where}.kind", SUBSTITUTE_KINDS))
        name = FIELDS.string(entry.get("name"), f"{where}.name")
        entries.append(SubstituteFrom(kind, name, FIELDS.boolean(entry.get("optional", False), f"{where}.optional")))
    return tuple(entries)


def _parse_source(raw: Mapping[str, Any]) -> SourceSpec:
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise SpecError("source.url", "is required (https://, ssh://, git@host:path or file:///path)")
    url = url.strip()
    if not re.match(r"^(https?|ssh|file)://", url) and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        raise SpecError("source.url", f"{_redact(url)!r} is not a Git URL (https://, ssh://, git@host:path or file://)")
    given = [k for k in REF_KINDS if raw.get(k) not in (None, "")]
    if len(given) != 1:
        got = f" (got {', '.join(given)})" if given else ""
        raise SpecError("source", f"give exactly one of branch, tag, semver, commit{got}")
    kind = given[0]
    ref = FIELDS.text(raw[kind], f"source.{kind}")
    if kind == "commit" and not _COMMIT.match(ref):
        raise SpecError("source.commit", f"{ref!r} is not a commit id (7 to 40 lowercase hex digits)")
    if kind == "semver":
        from gitopsd import semver  # the constraint grammar lives with the version choice

        try:
            semver.parse_constraint(ref)
        except ValueError as exc:
            raise SpecError("source.semver", f"{ref!r} is not a valid version range: {exc}") from None
    if kind in ("branch", "tag") and (ref.startswith("-") or ".." in ref or any(c in ref for c in " ~^:?*[\\")):
        raise SpecError(f"source.{kind}", f"{ref!r} is not a valid Git ref name")
    secret = FIELDS.mapping(raw.get("secretRef"), "source.secretRef")
    secret_name = FIELDS.string(secret.get("name"), "source.secretRef.name") if "secretRef" in raw else None
    path = FIELDS.relative_path(raw.get("path"), "source.path")
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path=path, secret_name=secret_name)


def _redact(url: str) -> str:
    from gitopsd.sources.urls import redact_url  # here: gitopsd.sources imports this module

    return redact_url(url)
