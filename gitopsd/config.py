"""The daemon's config file (``gitopsd run --config FILE``): what the daemon itself is set up with.

The file is multi-document YAML. Documents of kind ``Environment`` are created or updated at
start (as before); at most one document of kind ``DaemonConfig`` sets up the daemon::

    apiVersion: gitopsd.dev/v1alpha1
    kind: DaemonConfig
    secretNamespace: gitopsd-system        # where secretRefs point (default: $POD_NAMESPACE)
    webhooks:                              # inbound: one secret per Git host you hook up
      github: {secretRef: {name: gitopsd-webhooks, key: github}}
      generic: {secretRef: {name: gitopsd-webhooks, key: generic}}
    notifiers:                             # outbound: Environments subscribe by name (spec.notify)
      - {name: team-slack, type: slack, secretRef: {name: slack-hook}}          # key "url"
      - {name: audit, type: webhook, url: "https://audit.example.com/gitopsd",
         secretRef: {name: audit-hmac}}                                          # key "secret"
      - {name: github, type: github, secretRef: {name: github-token}}           # key "token"
    leaderElection: {enabled: true, leaseName: gitopsd, leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 2s}

Everything is validated before the daemon starts or writes anything; an error names the file,
the document and the field (``notifiers[1].type: must be slack, webhook, github, gitlab or
gitea (got 'teams')``). Secret values are not part of the file: :mod:`gitopsd.secretstore`
reads them from the cluster.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from gitopsd.errors import GitopsdError, SpecError
from gitopsd.fields import Fields
from gitopsd.render.documents import parse as parse_documents
from gitopsd.render.errors import MalformedManifest
from gitopsd.secretstore import SecretRef
from gitopsd.spec import API_VERSION, KIND, parse_environment
from gitopsd.webhooks.signatures import PROVIDERS, Provider

CONFIG_KIND = "DaemonConfig"
TOP_LEVEL = ("apiVersion", "kind", "metadata", "secretNamespace", "webhooks", "notifiers", "leaderElection")
NotifierType = Literal["slack", "webhook", "github", "gitlab", "gitea"]
NOTIFIER_TYPES: tuple[NotifierType, ...] = ("slack", "webhook", "github", "gitlab", "gitea")
#: The Secret key read when a secretRef names none.
DEFAULT_KEYS: Mapping[str, str] = {
    "slack": "url",
    "webhook": "secret",
    "github": "token",
    "gitlab": "token",
    "gitea": "token",
    "receiver": "secret",
}
DEFAULT_API_URLS: Mapping[str, str] = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


class ConfigError(GitopsdError):
    """The config file is unusable; the message names the document and field."""

    reason = "InvalidConfig"


#: The field readers, raising ``ConfigError("<path>: <problem>")``.
FIELDS = Fields(lambda path, problem: ConfigError(f"{path}: {problem}"))


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    name: str
    type: NotifierType
    url: str | None  # endpoint (webhook, slack) or API base URL (commit status)
    secret_ref: SecretRef | None
    repository: str | None = None  # owner/name for commit status, when the source URL does not tell
    timeout: float = 10.0
    retries: int = 6
    queue_size: int = 1000
    backoff: float = 1.0  # first retry delay; doubles per retry, up to a minute
    #: Namespaces whose Environments may subscribe (None: any, unless --no-cross-namespace-refs).
    namespaces: tuple[str, ...] | None = None

    def serves(self, namespace: str, *, listed_only: bool) -> bool:
        """May an Environment of ``namespace`` use this notifier (``listed_only``: --no-cross-namespace-refs)?"""
        if self.namespaces is None:
            return not listed_only
        return namespace in self.namespaces


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    enabled: bool | None = None  # None: as the --leader-elect flag says (default off)
    lease_name: str = "gitopsd"
    namespace: str | None = None  # default: $POD_NAMESPACE, else the daemon's --namespace
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    webhooks: Mapping[Provider, SecretRef] = field(default_factory=dict)
    notifiers: tuple[NotifierConfig, ...] = ()
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)

    def notifier(self, name: str) -> NotifierConfig | None:
        return next((n for n in self.notifiers if n.name == name), None)


@dataclass(frozen=True, slots=True)
class ConfigFile:
    daemon: DaemonConfig
    environments: list[dict[str, Any]]


def load(path: Path, *, pod_namespace: str | None = None) -> ConfigFile:
    """Read and validate every document of ``path``; raise :class:`ConfigError` at the first bad one."""
    try:
        # Read as manifests are: a key given twice is an error with its line (not the last one
        # silently winning), timestamps stay strings as the API server keeps them.
        docs = parse_documents(str(path), path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except MalformedManifest as exc:
        raise ConfigError(f"--config {exc}") from None
    daemon: DaemonConfig | None = None
    envs: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for number, doc in docs:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        where = f"--config {path} (document {number}{', ' + str(kind) if kind else ''})"
        if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION or kind not in (KIND, CONFIG_KIND):
            raise ConfigError(f"{where}: expected apiVersion {API_VERSION} and kind {KIND} or {CONFIG_KIND}")
        try:
            if kind == KIND:
                FIELDS.mapping(doc, "", allowed=("apiVersion", "kind", "metadata", "spec"))
                _environment_metadata(doc.get("metadata"))
                env = parse_environment(doc)
                first = seen.setdefault((env.namespace, env.name), number)
                if first != number:
                    where_both = f"documents {first} and {number}"
                    raise ConfigError(f"Environment {env.namespace}/{env.name} is defined twice ({where_both})")
                envs.append(doc)
            elif daemon is not None:
                raise ConfigError(f"only one {CONFIG_KIND} document is allowed")
            else:
                daemon = parse_daemon_config(doc, pod_namespace=pod_namespace)
        except (SpecError, ConfigError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return ConfigFile(daemon or DaemonConfig(), envs)


def _environment_metadata(meta: Any) -> None:
    """What a config file may say of an Environment's metadata, each name valid for the API server."""
    meta = FIELDS.mapping(meta, "metadata", required=True, allowed=("name", "namespace", "labels", "annotations"))
    FIELDS.dns_subdomain(meta.get("name"), "metadata.name", what="an object name")
    FIELDS.dns_label(meta.get("namespace"), "metadata.namespace", what="a namespace name")


def parse_daemon_config(raw: Mapping[str, Any], *, pod_namespace: str | None = None) -> DaemonConfig:
    """A ``DaemonConfig`` document; :class:`ConfigError` names the first bad field."""
    pod_namespace = pod_namespace if pod_namespace is not None else os.environ.get("POD_NAMESPACE") or None
    FIELDS.mapping(raw, "", allowed=TOP_LEVEL)
    secret_ns = FIELDS.optional_string(raw.get("secretNamespace"), "secretNamespace")
    if secret_ns is not None:
        FIELDS.dns_label(secret_ns, "secretNamespace", what="a valid namespace name")
    default_ns = secret_ns or pod_namespace

    webhooks: dict[Provider, SecretRef] = {}
    hooks = FIELDS.mapping(raw.get("webhooks"), "webhooks")
    for provider, spec in hooks.items():
        where = f"webhooks.{provider}"
        if provider not in PROVIDERS:
            raise ConfigError(f"{where}: unknown Git host (one of {', '.join(PROVIDERS)})")
        spec = FIELDS.mapping(spec, where, required=True, allowed=("secretRef",))
        ref = _secret_ref(spec.get("secretRef"), f"{where}.secretRef", "receiver", default_ns, required=True)
        assert ref is not None
        webhooks[provider] = ref

    notifiers: list[NotifierConfig] = []
    for index, item in enumerate(FIELDS.items(raw.get("notifiers"), "notifiers")):
        notifier = _notifier(item, f"notifiers[{index}]", default_ns)
        if any(n.name == notifier.name for n in notifiers):
            raise ConfigError(f"notifiers[{index}].name: {notifier.name!r} is defined twice")
        notifiers.append(notifier)
    return DaemonConfig(webhooks, tuple(notifiers), _leader_election(raw.get("leaderElection")))


def _notifier(raw: Any, where: str, default_ns: str | None) -> NotifierConfig:
    fields = (
        "name", "type", "url", "secretRef", "repository", "timeout", "retries", "queueSize", "backoff", "namespaces"
    )  # fmt: skip
    spec = FIELDS.mapping(raw, where, required=True, allowed=fields)
    name = FIELDS.dns_label(spec.get("name"), f"{where}.name", what="a notifier name")
    kind = cast(NotifierType, FIELDS.choice(spec.get("type"), f"{where}.type", NOTIFIER_TYPES))
    url = FIELDS.optional_string(spec.get("url"), f"{where}.url")
    if url is not None:
        _check_url(url, f"{where}.url")
    ref = _secret_ref(spec.get("secretRef"), f"{where}.secretRef", kind, default_ns, required=kind != "slack")
    if kind == "slack" and url is None and ref is None:
        raise ConfigError(f"{where}: a slack notifier needs url or secretRef (a Secret holding the webhook URL)")
    if kind == "webhook" and url is None:
        raise ConfigError(f"{where}.url: is required for a webhook notifier")
    if kind == "gitea" and url is None:
        raise ConfigError(f"{where}.url: is required for gitea (the server's base URL, e.g. https://gitea.example.com)")
    if kind in DEFAULT_API_URLS and url is None:
        url = DEFAULT_API_URLS[kind]
    repository = FIELDS.optional_string(spec.get("repository"), f"{where}.repository")
    if repository is not None:
        if kind not in ("github", "gitlab", "gitea"):
            raise ConfigError(f"{where}.repository: only commit-status notifiers (github, gitlab, gitea) take one")
        if not _REPOSITORY.match(repository):
            raise ConfigError(f"{where}.repository: expected owner/name (got {repository!r})")
    timeout = FIELDS.duration(spec.get("timeout", "10s"), f"{where}.timeout", more_than=0)
    retries = FIELDS.whole_number(spec.get("retries", 6), f"{where}.retries", low=0, high=20)
    queue_size = FIELDS.whole_number(spec.get("queueSize", 1000), f"{where}.queueSize", low=1, high=100_000)
    backoff = FIELDS.duration(spec.get("backoff", "1s"), f"{where}.backoff", more_than=0, at_most=60)
    namespaces = None
    if spec.get("namespaces") is not None:
        namespaces = tuple(
            FIELDS.dns_label(item, f"{where}.namespaces[{i}]", what="a namespace name")
            for i, item in enumerate(FIELDS.items(spec.get("namespaces"), f"{where}.namespaces"))
        )
    return NotifierConfig(name, kind, url, ref, repository, timeout, retries, queue_size, backoff, namespaces)


def _leader_election(raw: Any) -> LeaderElectionConfig:
    where = "leaderElection"
    fields = ("enabled", "leaseName", "namespace", "leaseDuration", "renewDeadline", "retryPeriod")
    spec = FIELDS.mapping(raw, where, allowed=fields)
    enabled = None if spec.get("enabled") is None else FIELDS.boolean(spec["enabled"], f"{where}.enabled")
    name = FIELDS.optional_string(spec.get("leaseName"), f"{where}.leaseName") or "gitopsd"
    FIELDS.dns_label(name, f"{where}.leaseName", what="a Lease name", max_length=40)
    namespace = FIELDS.optional_string(spec.get("namespace"), f"{where}.namespace")
    if namespace is not None:
        FIELDS.dns_label(namespace, f"{where}.namespace", what="a valid namespace name")
    durations = {}
    for key, default in (("leaseDuration", "15s"), ("renewDeadline", "10s"), ("retryPeriod", "2s")):
        durations[key] = FIELDS.duration(spec.get(key, default), f"{where}.{key}", more_than=0)
    lease, renew, retry = durations["leaseDuration"], durations["renewDeadline"], durations["retryPeriod"]
    if lease < 1:
        raise ConfigError(f"{where}.leaseDuration: must be at least 1s (the Lease counts whole seconds)")
    if renew >= lease:
        raise ConfigError(f"{where}.renewDeadline: must be shorter than leaseDuration ({renew:g}s >= {lease:g}s)")
    if retry * 1.2 >= renew:
        raise ConfigError(f"{where}.retryPeriod: must be well under renewDeadline ({retry:g}s x 1.2 >= {renew:g}s)")
    return LeaderElectionConfig(enabled, name, namespace, lease, renew, retry)


def _secret_ref(raw: Any, where: str, use: str, default_ns: str | None, *, required: bool) -> SecretRef | None:
    if raw is None:
        if required:
            raise ConfigError(f"{where}: is required (a Secret: {{name: ..., key: {DEFAULT_KEYS[use]}}})")
        return None
    spec = FIELDS.mapping(raw, where, required=True, allowed=("name", "key", "namespace"))
    name = FIELDS.string(spec.get("name"), f"{where}.name")
    key = spec.get("key", DEFAULT_KEYS[use])
    if not isinstance(key, str) or not _KEY.match(key):
        raise ConfigError(f"{where}.key: {key!r} is not a valid Secret key")
    namespace = spec.get("namespace", default_ns)
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(
            f"{where}.namespace: is required (or set secretNamespace, or POD_NAMESPACE in the environment)"
        )
    return SecretRef(namespace, name, key)


def _check_url(url: str, where: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: expected an http:// or https:// URL (got {url!r})")
    if parts.username or parts.password:
        raise ConfigError(f"{where}: no credentials in the URL; put them in the Secret named by secretRef")
