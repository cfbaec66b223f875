"""Load and validate the config file: prometheus-adapter's ``rules`` / ``externalRules`` plus ``queues``.

Users migrate by pointing the adapter at the file they already have, so every field
prometheus-adapter v0.12 reads is read the same way here. Where prometheus-adapter silently
ignores what it does not know, this loader refuses the file at start-up, naming the rule and
the field (``rules[2].name.as``): a rule quietly doing nothing is worse than not starting.
``resourceRules`` (the resource metrics API, metrics.k8s.io) is parsed by
``metrics_adapter.resourcemetrics.config``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gitopsd.render import documents
from gitopsd.render.errors import MalformedManifest
from metrics_adapter.errors import ConfigError
from metrics_adapter.federation import config as federation_config
from metrics_adapter.queues import QueueConfig, QueueConfigError, parse_queues
from metrics_adapter.resourcemetrics import config as resource_config
from metrics_adapter.rules import gotemplate
from metrics_adapter.rules.naming import Namer, NamingError, build_namer
from metrics_adapter.rules.resourcespec import GroupResourceRef, ResourceSpec

RuleKind = Literal["rules", "externalRules"]

QUERY_FIELDS = ("Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice")
RESOURCE_FIELDS = ("Group", "Resource")

_TOP_KEYS = {"rules", "externalRules", "queues", "resourceRules", "externalProviders"}
_REFUSED_TOP: dict[str, str] = {}
_RULE_KEYS = {"seriesQuery", "seriesFilters", "resources", "name", "metricsQuery"}
_RESOURCE_KEYS = {"template", "overrides", "namespaced"}


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of ``rules`` or ``externalRules``."""

    kind: RuleKind
    index: int
    series_query: str
    namer: Namer
    resources: ResourceSpec
    metrics_query: gotemplate.Template

    @property
    def where(self) -> str:
        return f"{self.kind}[{self.index}]"


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    rules: tuple[Rule, ...] = ()
    external_rules: tuple[Rule, ...] = ()
    queues: tuple[QueueConfig, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    resource_rules: resource_config.ResourceRules | None = None
    external_providers: tuple[federation_config.ProviderConfig, ...] = ()


def load(path: str | Path) -> Config:
    """Read and validate ``path``; raise ConfigError naming the file, rule and field."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {p}: cannot read it: {exc.strerror or exc}") from exc
    return parse(data, str(p))


def parse(text: str | bytes, where: str = "<config>") -> Config:
    # gitopsd's manifest reader: one-line errors with FILE:LINE:COL, a key given twice refused
    # with its line (PyYAML keeps the last one silently: a second `queues:` would drop the first
    # list), bytes that are not UTF-8 refused naming the offset.
    try:
        docs = documents.parse(where, text)
    except MalformedManifest as exc:
        raise ConfigError(f"config file {exc}") from None
    if len(docs) > 1:
        raise ConfigError(
            f"config file {where}: holds {len(docs)} YAML documents; the adapter reads one "
            "(remove the '---' separators)"
        )
    raw = docs[0][1] if docs else {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {where}: the top level must be a mapping with 'rules', 'externalRules', 'queues'"
        )
    for key in raw:
        if key in _REFUSED_TOP:
            raise ConfigError(f"config file {where}: '{key}' is not supported: {_REFUSED_TOP[key]}")
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"config file {where}: unknown top-level key {key!r} (known: {', '.join(sorted(_TOP_KEYS))})"
            )
    warnings: list[str] = []
    rules = tuple(_rule(r, "rules", i, where, warnings) for i, r in enumerate(_list(raw, "rules", where)))
    ext = tuple(_rule(r, "externalRules", i, where, warnings) for i, r in enumerate(_list(raw, "externalRules", where)))
    queues_raw = raw.get("queues")
    if queues_raw is not None and not isinstance(queues_raw, list):
        raise ConfigError(f"config file {where}: 'queues' must be a list")
    try:
        queues = tuple(parse_queues(queues_raw, where="queues")) if queues_raw else ()
    except QueueConfigError as exc:
        raise ConfigError(f"config file {where}: {exc}") from exc
    except NotImplementedError as exc:
        raise ConfigError(f"config file {where}: 'queues' cannot be served by this build: {exc}") from exc
    _queues_against_rules(ext, queues, where)
    rr_raw = raw.get("resourceRules")
    resource_rules = (
        resource_config.parse(rr_raw, where, lambda r, at: _resources(r, at, "rules")) if rr_raw is not None else None
    )
    providers = _external_providers(raw.get("externalProviders"), where, ext, queues)
    if not rules and not ext and not queues and resource_rules is None and not providers:
        raise ConfigError(
            f"config file {where}: no 'rules', 'externalRules', 'resourceRules' or 'queues': nothing would be served"
        )
    return Config(
        where, rules, ext, queues, tuple(warnings), resource_rules=resource_rules, external_providers=providers
    )


def _external_providers(
    raw: Any, where: str, ext: tuple[Rule, ...], queues: tuple[QueueConfig, ...]
) -> tuple[federation_config.ProviderConfig, ...]:
    """``externalProviders`` (federation/config.py), refused if one lists a name we serve ourselves.

    Names known before discovery are checked here: queue names, and externalRules whose
    ``name.as`` is a plain name. A name discovered later in Prometheus is ours (router.py).
    """
    providers = federation_config.parse_providers(raw, where)
    ours = {q.name: f"queues[{i}]" for i, q in enumerate(queues)}
    for r in ext:
        if "$" not in r.namer.as_template:
            ours.setdefault(r.namer.as_template, r.where)
    federation_config.check_clashes(providers, ours, where)
    return providers


def _queues_against_rules(ext: tuple[Rule, ...], queues: tuple[QueueConfig, ...], where: str) -> None:
    """Refuse a queue named like an ``externalRules`` entry's fixed ``name.as``: one name, two sources.

    A regex-named rule's names are known only after discovery; there the queue is served.
    """
    fixed = {r.namer.as_template: r.where for r in ext if "$" not in r.namer.as_template}
    for i, q in enumerate(queues):
        if q.name in fixed:
            raise ConfigError(
                f"config file {where}: queues[{i}] and {fixed[q.name]} both serve the external metric {q.name!r}; "
                "rename one"
            )


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(
            f"config file {where}: '{key}' must be a list of rules"
            + (
                " (this looks like Helm chart values; give the adapter's own config file)"
                if isinstance(value, dict)
                else ""
            )
        )
    return value


def _str(obj: Mapping[str, Any], key: str, at: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{at}.{key} is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{at}.{key} must be a string, not {type(value).__name__}")
    return value


def _rule(raw: Any, kind: RuleKind, index: int, where: str, warnings: list[str]) -> Rule:
    at = f"config file {where}: {kind}[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping")
    for key in raw:
        if key not in _RULE_KEYS:
            raise ConfigError(f"{at}: unknown field {key!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    series_query = _str(raw, "seriesQuery", at, required=True)
    assert series_query is not None

    filters: list[tuple[bool, str]] = []
    raw_filters = raw.get("seriesFilters") or []
    if not isinstance(raw_filters, list):
        raise ConfigError(f"{at}.seriesFilters must be a list of {{is: REGEX}} or {{isNot: REGEX}}")
    for j, f in enumerate(raw_filters):
        fat = f"{at}.seriesFilters[{j}]"
        if not isinstance(f, dict) or set(f) - {"is", "isNot"}:
            raise ConfigError(f"{fat} must be {{is: REGEX}} or {{isNot: REGEX}}")
        is_, is_not = _str(f, "is", fat), _str(f, "isNot", fat)
        if bool(is_) == bool(is_not):
            raise ConfigError(f"{fat} must have exactly one of 'is' and 'isNot'")
        filters.append((True, is_) if is_ else (False, is_not))  # type: ignore[arg-type]

    name = raw.get("name") or {}
    if not isinstance(name, dict) or set(name) - {"matches", "as"}:
        raise ConfigError(f"{at}.name must be a mapping with 'matches' and optionally 'as'")
    matches, as_ = _str(name, "matches", f"{at}.name"), _str(name, "as", f"{at}.name")
    try:
        namer = build_namer(matches, as_, filters)
    except NamingError as exc:
        raise ConfigError(f"{at}.name / seriesFilters: {exc}") from exc
    if as_ and _dangling_group_ref(as_):
        warnings.append(
            f"{kind}[{index}].name.as {as_!r}: '$N' followed by letters or '_' names a group that does not exist "
            "and expands to nothing (as in prometheus-adapter); write '${N}' instead"
        )

    resources = _resources(raw.get("resources"), f"{at}.resources", kind)

    mq = _str(raw, "metricsQuery", at, required=True)
    assert mq is not None
    try:
        metrics_query = gotemplate.parse(mq, QUERY_FIELDS, what=f"{at}.metricsQuery")
    except gotemplate.TemplateError as exc:
        raise ConfigError(str(exc)) from exc
    return Rule(kind, index, series_query, namer, resources, metrics_query)


def _dangling_group_ref(template: str) -> bool:
    return bool(re.search(r"(?<!\$)\$[0-9]+[A-Za-z_]", template))


def _resources(raw: Any, at: str, kind: RuleKind) -> ResourceSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping with 'template' and/or 'overrides'")
    for key in raw:
        if key not in _RESOURCE_KEYS:
            raise ConfigError(f"{at}: unknown field {key!r} (known: {', '.join(sorted(_RESOURCE_KEYS))})")
    template = None
    ts = _str(raw, "template", at)
    if ts:
        try:
            template = gotemplate.parse(ts, RESOURCE_FIELDS, what=f"{at}.template")
        except gotemplate.TemplateError as exc:
            raise ConfigError(str(exc)) from exc
        if "Resource" not in template.fields:
            raise ConfigError(f"{at}.template {ts!r} must contain <<.Resource>>")
    overrides: dict[str, GroupResourceRef] = {}
    raw_over = raw.get("overrides") or {}
    if not isinstance(raw_over, dict):
        raise ConfigError(f"{at}.overrides must map label names to {{group, resource}}")
    for label, gr in raw_over.items():
        oat = f"{at}.overrides.{label}"
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{at}.overrides: label names must be non-empty strings")
        if not isinstance(gr, dict) or set(gr) - {"group", "resource"}:
            raise ConfigError(f"{oat} must be {{resource: NAME}} or {{group: GROUP, resource: NAME}}")
        res = _str(gr, "resource", oat, required=True)
        overrides[label] = GroupResourceRef(_str(gr, "group", oat) or "", res or "")
    namespaced_raw = raw.get("namespaced", True)
    if not isinstance(namespaced_raw, bool):
        raise ConfigError(f"{at}.namespaced must be true or false")
    if kind == "rules" and template is None and not overrides:
        raise ConfigError(f"{at} needs 'template' or 'overrides': without them no Kubernetes object gets the metric")
    return ResourceSpec(template, overrides, namespaced_raw)
