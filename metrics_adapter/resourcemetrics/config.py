"""``resourceRules`` of a prometheus-adapter config: the cpu and memory queries and the window.

The fields and their meaning are prometheus-adapter's (``cpu`` / ``memory``, each with
``containerQuery``, ``nodeQuery``, ``resources`` and ``containerLabel``; ``window``), so its
own deploy config is read unchanged. Where prometheus-adapter would start and then fail every
request (a missing part, an empty container label, a window that is not a duration), the
file is refused here at start-up, naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metrics_adapter.errors import ConfigError
from metrics_adapter.rules import gotemplate
from metrics_adapter.rules.resourcespec import ResourceSpec

QUERY_FIELDS = ("Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice")
_PART_KEYS = {"containerQuery", "nodeQuery", "resources", "containerLabel"}
_TOP_KEYS = {"cpu", "memory", "window"}
# Prometheus's duration syntax (model.ParseDuration): units largest first, each at most once.
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)

ResourcesParser = Callable[[Any, str], ResourceSpec]


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """How to query one resource (cpu or memory) for containers and for nodes."""

    name: str  # "cpu" | "memory"
    container_query: gotemplate.Template
    node_query: gotemplate.Template
    resources: ResourceSpec
    container_label: str

    @property
    def where(self) -> str:
        return f"resourceRules.{self.name}"


@dataclass(frozen=True, slots=True)
class ResourceRules:
    cpu: ResourceRule
    memory: ResourceRule
    window_seconds: float


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``5m``, ``1h30m``, ``30s``, ``500ms``); ValueError if none."""
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(text)
    return sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_SECONDS, strict=True) if g)


def parse(raw: Any, where: str, resources: ResourcesParser) -> ResourceRules:
    """``raw`` is the ``resourceRules`` mapping; ``resources`` parses a ``resources`` block."""
    at = f"config file {where}: resourceRules"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping with 'cpu', 'memory' and 'window'")
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{at}: unknown field {key!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    for part in ("cpu", "memory"):
        if raw.get(part) is None:
            raise ConfigError(
                f"{at}.{part} is required: the resource metrics API serves cpu and memory together "
                "(kubectl top and the HPA read both)"
            )
    window = raw.get("window")
    if window is None or window == "":
        raise ConfigError(
            f"{at}.window is required (a Prometheus duration such as 5m): it is reported with every value"
        )
    try:
        seconds = parse_duration(str(window)) if isinstance(window, str) else -1.0
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"{at}.window {window!r} is not a positive Prometheus duration (such as 30s, 5m, 1h30m)")
    cpu = _part(raw["cpu"], "cpu", at, resources)
    memory = _part(raw["memory"], "memory", at, resources)
    return ResourceRules(cpu, memory, seconds)


def _part(raw: Any, name: str, parent: str, resources: ResourcesParser) -> ResourceRule:
    at = f"{parent}.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping with {', '.join(sorted(_PART_KEYS))}")
    for key in raw:
        if key not in _PART_KEYS:
            raise ConfigError(f"{at}: unknown field {key!r} (known: {', '.join(sorted(_PART_KEYS))})")
    queries = []
    for key in ("containerQuery", "nodeQuery"):
        text = raw.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{at}.{key} is required (a PromQL template)")
        try:
            queries.append(gotemplate.parse(text, QUERY_FIELDS, what=f"{at}.{key}"))
        except gotemplate.TemplateError as exc:
            raise ConfigError(str(exc)) from exc
    label = raw.get("containerLabel")
    if not isinstance(label, str) or not label:
        raise ConfigError(
            f"{at}.containerLabel is required: the Prometheus label holding container names (usually 'container')"
        )
    spec = resources(raw.get("resources"), f"{at}.resources")
    return ResourceRule(name, queries[0], queries[1], spec, label)
