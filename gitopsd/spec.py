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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from gitopsd.environment_fields import SPEC as SPEC_FIELDS
from gitopsd.errors import SpecError
from gitopsd.fieldcheck import unknown_field
from gitopsd.freeze import Window, parse_windows
from gitopsd.gates.spec import PromotionSpec, VerificationSpec, parse_promotion, parse_verification
from gitopsd.model import Revision
from gitopsd.notify.subscriptions import Subscription, parse_subscriptions

GROUP = "gitopsd.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Environment"
PLURAL = "environments"

RefKind = Literal["branch", "tag", "semver", "commit"]
REF_KINDS: tuple[RefKind, ...] = ("branch", "tag", "semver", "commit")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Kubernetes name forms: a namespace (and most names) is a DNS label, an object name a subdomain.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
RESERVED_PREFIX = "GITOPSD_"


def parse_duration(text: Any, field_name: str) -> float:
    """A Go-style duration (``90s``, ``1m30s``, ``1.5h``, ``500ms``) in seconds."""
    if not isinstance(text, str) or not text:
        raise SpecError(field_name, f"must be a duration such as 30s, 5m or 1h (got {text!r})")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) and text != "0":
        raise SpecError(field_name, f"must be a duration such as 30s, 5m or 1h (got {text!r})")
    return total


def format_duration(seconds: float) -> str:
    """The short Go-style form of a duration, for messages (``1h5m``, ``30s``)."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


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

    kind: Literal["ConfigMap", "Secret"]
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
    spec = _mapping(raw, "", required=True)
    unknown = unknown_field(spec, SPEC_FIELDS, "")
    if unknown:
        raise SpecError(unknown[0].removeprefix("."), f"unknown field ({unknown[1]})")
    source = _parse_source(_mapping(spec.get("source"), "source", required=True))
    target_ns = _optional_str(spec, "targetNamespace")
    if target_ns is not None and (len(target_ns) > 63 or not DNS_LABEL.match(target_ns)):
        raise SpecError("targetNamespace", f"{target_ns!r} is not a valid namespace name")
    interval = parse_duration(spec.get("interval", "1m"), "interval")
    if interval < 1:
        raise SpecError("interval", f"must be at least 1s (got {spec.get('interval')!r})")
    wait = _mapping(spec.get("wait"), "wait")
    wait_timeout = parse_duration(wait.get("timeout", "5m"), "wait.timeout")
    substitute = _mapping(spec.get("substitute"), "substitute")
    for key, value in substitute.items():
        check_variable_name(str(key), f"substitute.{key}")
        if not isinstance(value, str):
            raise SpecError(f"substitute.{key}", f"must be a string (got {type(value).__name__}; quote it in YAML)")
    substitute_from = _substitute_from(spec.get("substituteFrom"))
    substitution_on = spec.get("substitute") is not None or bool(substitute_from)
    return EnvironmentSpec(
        source=source,
        target_namespace=target_ns,
        interval=interval,
        prune=_bool(spec, "prune", True),
        allow_empty=_bool(spec, "allowEmpty", False),
        wait_timeout=wait_timeout,
        suspend=_bool(spec, "suspend", False),
        force=_bool(spec, "force", False),
        substitute=MappingProxyType({str(k): str(v) for k, v in substitute.items()}) if substitution_on else None,
        substitute_from=substitute_from,
        history_limit=_history_limit(spec),
        rollback_auto=_bool(_mapping(spec.get("rollback"), "rollback"), "auto", False, "rollback.auto"),
        freeze=parse_windows(spec.get("freeze")),
        notify=parse_subscriptions(spec.get("notify")),
        verification=parse_verification(spec.get("verification"), substitute if substitution_on else {}),
        promotion=parse_promotion(spec.get("promotion"), name=name),
    )


def check_variable_name(name: str, field_name: str) -> None:
    """A ``${NAME}`` a user may define: a shell-style name, not one of the reserved built-ins."""
    if not _VARIABLE.match(name):
        raise SpecError(field_name, "names are letters, digits and '_', not starting with a digit")
    if name.startswith(RESERVED_PREFIX):
        raise SpecError(field_name, f"names starting with {RESERVED_PREFIX} are reserved for built-ins")


def _substitute_from(raw: Any) -> tuple[SubstituteFrom, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("substituteFrom", f"must be a list (got {type(raw).__name__})")
    entries = []
    for index, item in enumerate(raw):
        where = f"substituteFrom[{index}]"
        entry = _mapping(item, where, required=True)
        kind = entry.get("kind")
        if kind not in ("ConfigMap", "Secret"):
            raise SpecError(f"{where}.kind", f"must be ConfigMap or Secret (got {kind!r})")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}.name", "is required")
        entries.append(SubstituteFrom(kind, name, _bool(entry, "optional", False, f"{where}.optional")))
    return tuple(entries)


def _history_limit(spec: Mapping[str, Any]) -> int:
    value = spec.get("historyLimit", 10)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise SpecError("historyLimit", f"must be a whole number from 1 to 100 (got {value!r})")
    return value


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
    ref = raw[kind]
    if not isinstance(ref, str):
        raise SpecError(f"source.{kind}", f"must be a string (got {ref!r})")
    ref = ref.strip()
    if not ref:
        raise SpecError(f"source.{kind}", "must not be blank")
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
    secret = _mapping(raw.get("secretRef"), "source.secretRef")
    secret_name = secret.get("name") if "secretRef" in raw else None
    if "secretRef" in raw and (not isinstance(secret_name, str) or not secret_name):
        raise SpecError("source.secretRef.name", "is required when secretRef is given")
    path = normalise_path(raw.get("path", ""))
    return SourceSpec(url=url, ref_kind=kind, ref=ref, path=path, secret_name=secret_name)


def normalise_path(path: Any) -> str:
    """A repository-relative directory: no leading ``./`` or ``/``, no way out through ``..``."""
    if path is None:
        return ""
    if not isinstance(path, str):
        raise SpecError("source.path", f"must be a string (got {path!r})")
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise SpecError("source.path", f"{path!r} points outside the repository")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def _mapping(raw: Any, field_name: str, *, required: bool = False) -> Mapping[str, Any]:
    if raw is None:
        if required:
            raise SpecError(field_name, "is required")
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(field_name, f"must be an object (got {type(raw).__name__})")
    return raw


def _optional_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise SpecError(key, f"must be a string (got {value!r})")
    return value


def _bool(spec: Mapping[str, Any], key: str, default: bool, field_name: str | None = None) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(field_name or key, f"must be true or false (got {value!r})")
    return value
