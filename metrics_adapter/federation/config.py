"""``externalProviders:`` in the config file: which other external-metrics servers we forward to.

Kubernetes routes ``external.metrics.k8s.io/v1beta1`` to one APIService, so a cluster that needs
KEDA's metrics and ours registers us and lists KEDA here. Each entry is checked field by field
at start-up (``externalProviders[0].caFile: ...``), like the rest of the file: a provider that
would silently receive nothing, or that would send a bearer token in clear text, is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metrics_adapter.errors import ConfigError
from metrics_adapter.queues.errors import QueueConfigError
from metrics_adapter.queues.fields import Entry, kind_of, origin, parse_duration

FIELDS = (
    "name",
    "url",
    "caFile",
    "insecureSkipTLSVerify",
    "tokenFile",
    "clientCert",
    "clientKey",
    "metrics",
    "timeout",
    "maxConnections",
    "failureThreshold",
)
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_FAILURE_THRESHOLD = 5
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_GLOB_CHARS = frozenset("*?[")
# What an external metric name may be as a path segment (server.py refuses the rest anyway).
_METRIC = re.compile(r"[^\s\x00-\x1f\x7f/]{1,512}")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One validated ``externalProviders`` entry."""

    index: int
    name: str
    url: str  # https://host[:port][/prefix], no trailing slash
    ca_file: str | None
    insecure_skip_tls_verify: bool
    token_file: str | None
    client_cert: str | None
    client_key: str | None
    names: tuple[str, ...]  # exact metric names from `metrics`
    globs: tuple[str, ...]  # patterns from `metrics`; ("*",) when `metrics` is omitted
    timeout: float
    max_connections: int
    failure_threshold: int

    @property
    def where(self) -> str:
        return f"externalProviders[{self.index}] ({self.name})"

    @property
    def catch_all(self) -> bool:
        return not self.names and self.globs == ("*",)


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def parse_providers(raw: Any, where: str) -> tuple[ProviderConfig, ...]:
    """The ``externalProviders`` list of config file ``where`` (ConfigError naming entry and field)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"config file {where}: 'externalProviders' must be a list, got {kind_of(raw)}")
    try:
        providers = tuple(_provider(item, i) for i, item in enumerate(raw))
        _check_together(providers)
    except QueueConfigError as exc:
        raise ConfigError(f"config file {where}: {exc}") from exc
    return providers


def _provider(raw: Any, index: int) -> ProviderConfig:
    entry = Entry(f"externalProviders[{index}]")
    m = entry.mapping(raw, "")
    name = entry.required(m, "name")
    if not _NAME.fullmatch(name):
        entry.fail("name", f"{name!r} must be a DNS label (lower-case alphanumerics and '-', at most 63)")
    entry.where = f"externalProviders[{index}] ({name})"
    entry.known_fields(m, FIELDS)
    url = entry.required(m, "url")
    parts = entry.url(url, "url", ("https",))
    if parts.username or parts.password:
        entry.fail("url", "must not carry credentials; use tokenFile or clientCert/clientKey")
    if parts.query:
        entry.fail("url", "must not have a ?query")
    ca_file = entry.string(m, "caFile")
    insecure = entry.boolean(m, "insecureSkipTLSVerify", "", False)
    if ca_file and insecure:
        entry.fail("insecureSkipTLSVerify", "cannot be true together with caFile: verify with caFile, or do not verify")
    token_file = entry.string(m, "tokenFile")
    cert, key = entry.string(m, "clientCert"), entry.string(m, "clientKey")
    if bool(cert) != bool(key):
        entry.fail("clientKey" if cert else "clientCert", "clientCert and clientKey must be given together")
    names, globs = _metrics(entry, m)
    timeout = parse_duration(entry, m["timeout"], "timeout") if "timeout" in m else DEFAULT_TIMEOUT
    return ProviderConfig(
        index=index,
        name=name,
        url=origin(parts, parts.path.rstrip("/")),
        ca_file=ca_file,
        insecure_skip_tls_verify=insecure,
        token_file=token_file,
        client_cert=cert,
        client_key=key,
        names=names,
        globs=globs,
        timeout=timeout,
        max_connections=_int(entry, m, "maxConnections", DEFAULT_MAX_CONNECTIONS, 1, 1024),
        failure_threshold=_int(entry, m, "failureThreshold", DEFAULT_FAILURE_THRESHOLD, 1, 100),
    )


def _int(entry: Entry, m: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        entry.fail(key, f"must be a whole number, got {kind_of(value)}")
    if not low <= value <= high:
        entry.fail(key, f"must be between {low} and {high}, got {value}")
    return value


def _metrics(entry: Entry, m: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "metrics" not in m or m["metrics"] is None:
        return (), ("*",)
    raw = m["metrics"]
    if not isinstance(raw, list) or not raw:
        entry.fail("metrics", "must be a non-empty list of metric names or globs (omit it to forward every name)")
    names: list[str] = []
    globs: list[str] = []
    for j, item in enumerate(raw):
        if not isinstance(item, str) or not item:
            entry.fail(f"metrics[{j}]", f"must be a non-empty string, got {kind_of(item)}")
        if not _METRIC.fullmatch(item):
            entry.fail(f"metrics[{j}]", f"{item[:80]!r} is not a metric name: no whitespace, '/' or control characters")
        if item in names or item in globs:
            entry.fail(f"metrics[{j}]", f"{item!r} is listed twice")
        (globs if is_glob(item) else names).append(item)
    return tuple(names), tuple(globs)


def _check_together(providers: Iterable[ProviderConfig]) -> None:
    seen_names: dict[str, str] = {}
    owner: dict[str, str] = {}
    catch_all: str | None = None
    for p in providers:
        if p.name in seen_names:
            raise QueueConfigError(f"{p.where}: name: {p.name!r} is also {seen_names[p.name]}")
        seen_names[p.name] = p.where
        if p.catch_all:
            if catch_all is not None:
                raise QueueConfigError(
                    f"{p.where}: metrics: omitted here and in {catch_all}: only one provider can receive every "
                    "name; list this one's metrics"
                )
            catch_all = p.where
        for n in p.names:
            if n in owner:
                raise QueueConfigError(f"{p.where}: metrics: {n!r} is also listed by {owner[n]}")
            owner[n] = p.where


def check_clashes(providers: Iterable[ProviderConfig], ours: Mapping[str, str], where: str) -> None:
    """Refuse a name that a provider lists explicitly and we serve ourselves (``ours``: name → what serves it)."""
    for p in providers:
        for n in p.names:
            if n in ours:
                raise ConfigError(
                    f"config file {where}: external metric {n!r} is served by {ours[n]} and also listed in "
                    f"{p.where}.metrics: remove one of them"
                )
