"""The daemon config file: DaemonConfig parsed into typed settings, every mistake named by document and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitopsd.config import ConfigError, load, parse_daemon_config
from gitopsd.secretstore import SecretRef

BASE = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig"}
ENV = {
    "apiVersion": "gitopsd.dev/v1alpha1",
    "kind": "Environment",
    "metadata": {"name": "dev", "namespace": "ops"},
    "spec": {"source": {"url": "https://git.example.com/shop.git", "branch": "develop"}},
}


def test_a_full_config() -> None:
    """Webhooks, notifiers with defaults per type, leader election; secretRefs default to secretNamespace."""
    cfg = parse_daemon_config({
        **BASE,
        "secretNamespace": "gitopsd-system",
        "webhooks": {"github": {"secretRef": {"name": "hooks", "key": "github"}},
                     "generic": {"secretRef": {"name": "hooks"}}},
        "notifiers": [
            {"name": "team", "type": "slack", "secretRef": {"name": "slack"}},
            {"name": "audit", "type": "webhook", "url": "https://audit.example.com/x",
             "secretRef": {"name": "audit", "namespace": "other"}, "timeout": "5s", "retries": 2, "queueSize": 10,
             "backoff": "500ms"},
            {"name": "gh", "type": "github", "secretRef": {"name": "gh"}, "repository": "org/shop"},
            {"name": "gl", "type": "gitlab", "secretRef": {"name": "gl"}},
            {"name": "gt", "type": "gitea", "url": "https://gitea.example.com", "secretRef": {"name": "gt"}},
        ],
        "leaderElection": {"enabled": True, "leaseName": "gitopsd-prod", "namespace": "gitopsd-system",
                           "leaseDuration": "20s", "renewDeadline": "15s", "retryPeriod": "3s"},
    })  # fmt: skip
    assert cfg.webhooks == {
        "github": SecretRef("gitopsd-system", "hooks", "github"),
        "generic": SecretRef("gitopsd-system", "hooks", "secret"),
    }
    team, audit, gh, gl, gt = cfg.notifiers
    assert (team.url, team.secret_ref) == (None, SecretRef("gitopsd-system", "slack", "url"))
    assert (audit.secret_ref, audit.timeout, audit.retries, audit.queue_size, audit.backoff) == (
        SecretRef("other", "audit", "secret"), 5.0, 2, 10, 0.5)  # fmt: skip
    assert (gh.url, gh.repository, gh.secret_ref) == ("https://api.github.com", "org/shop",
                                                      SecretRef("gitopsd-system", "gh", "token"))  # fmt: skip
    assert gl.url == "https://gitlab.com" and gt.url == "https://gitea.example.com"
    le = cfg.leader_election
    assert (le.enabled, le.lease_name, le.lease_duration, le.renew_deadline, le.retry_period) == (
        True, "gitopsd-prod", 20.0, 15.0, 3.0)  # fmt: skip
    assert cfg.notifier("gh") is gh and cfg.notifier("nope") is None


def test_pod_namespace_is_the_default_secret_namespace() -> None:
    """Without secretNamespace, secretRefs point at $POD_NAMESPACE."""
    cfg = parse_daemon_config({**BASE, "webhooks": {"gitea": {"secretRef": {"name": "h"}}}}, pod_namespace="gitopsd")
    assert cfg.webhooks["gitea"] == SecretRef("gitopsd", "h", "secret")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"notifer": []}, "notifer: unknown field"),
        ({"webhooks": {"bitbucket": {"secretRef": {"name": "x"}}}}, "webhooks.bitbucket: unknown Git host"),
        ({"webhooks": {"github": {}}}, "webhooks.github.secretRef: is required"),
        ({"webhooks": {"github": {"secretRef": {"name": "x"}}}}, "webhooks.github.secretRef.namespace: is required"),
        ({"secretNamespace": "Bad_NS"}, "secretNamespace: 'Bad_NS' is not a valid namespace name"),
        ({"notifiers": {"a": 1}}, "notifiers: must be a list"),
        ({"notifiers": [{"type": "slack"}]}, "notifiers[0].name: is required"),
        ({"notifiers": [{"name": "a", "type": "teams"}]},
         "notifiers[0].type: must be slack, webhook, github, gitlab or gitea (got 'teams')"),
        ({"notifiers": [{"name": "a", "type": "slack"}]}, "notifiers[0]: a slack notifier needs url or secretRef"),
        ({"notifiers": [{"name": "a", "type": "webhook", "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[0].url: is required for a webhook notifier"),
        ({"notifiers": [{"name": "a", "type": "webhook", "url": "https://x"}]}, "notifiers[0].secretRef: is required"),
        ({"notifiers": [{"name": "a", "type": "webhook", "url": "ftp://x",
                         "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[0].url: expected an http:// or https:// URL"),
        ({"notifiers": [{"name": "a", "type": "webhook", "url": "https://u:p@x", "secretRef": {"name": "s",
                                                                                          "namespace": "n"}}]},
         "notifiers[0].url: no credentials in the URL"),
        ({"notifiers": [{"name": "a", "type": "gitea", "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[0].url: is required for gitea"),
        ({"notifiers": [{"name": "a", "type": "webhook", "url": "https://x", "repository": "o/r",
                         "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[0].repository: only commit-status notifiers"),
        ({"notifiers": [{"name": "a", "type": "github", "repository": "shop", "secretRef": {"name": "s",
                                                                                         "namespace": "n"}}]},
         "notifiers[0].repository: expected owner/name"),
        ({"notifiers": [{"name": "a", "type": "github", "timeout": "soon", "secretRef": {"name": "s",
                                                                                      "namespace": "n"}}]},
         "notifiers[0].timeout: must be a duration"),
        ({"notifiers": [{"name": "a", "type": "github", "retries": 50, "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[0].retries: must be a whole number from 0 to 20"),
        ({"notifiers": [{"name": "a", "type": "github", "secretRef": {"name": "s", "namespace": "n", "key": "a b"}}]},
         "notifiers[0].secretRef.key: 'a b' is not a valid Secret key"),
        ({"notifiers": [{"name": "a", "type": "github", "secretRef": {"name": "s", "namespace": "n"}},
                        {"name": "a", "type": "gitlab", "secretRef": {"name": "s", "namespace": "n"}}]},
         "notifiers[1].name: 'a' is defined twice"),
        ({"leaderElection": {"enabled": "yes"}}, "leaderElection.enabled: must be true or false"),
        ({"leaderElection": {"leaseDuration": "10s", "renewDeadline": "10s"}},
         "leaderElection.renewDeadline: must be shorter than leaseDuration"),
        ({"leaderElection": {"renewDeadline": "2s", "retryPeriod": "2s"}}, "leaderElection.retryPeriod: must be well"),
        ({"leaderElection": {"leaseDuration": "500ms", "renewDeadline": "400ms", "retryPeriod": "100ms"}},
         "leaderElection.leaseDuration: must be at least 1s"),
        ({"leaderElection": {"leaseName": "Gitopsd"}},
         "leaderElection.leaseName: 'Gitopsd' is not a Lease name (lowercase"),
        ({"leaderElection": {"retryPeriod": "0"}}, "leaderElection.retryPeriod: must be more than 0"),
    ],
)  # fmt: skip
def test_mistakes_name_the_field(doc: dict[str, Any], message: str) -> None:
    """Each bad field is a ConfigError starting with its path."""
    with pytest.raises(ConfigError) as info:
        parse_daemon_config({**BASE, **doc})
    assert str(info.value).startswith(message), str(info.value)


def test_load_splits_environments_from_the_daemon_config(tmp_path: Path) -> None:
    """One file: a DaemonConfig and Environments, each validated; no DaemonConfig means the defaults."""
    path = tmp_path / "config.yaml"
    other = {**ENV, "metadata": {**ENV["metadata"], "name": "other"}}
    path.write_text("\n---\n".join(json.dumps(d) for d in (ENV, {**BASE, "notifiers": []}, other)))
    loaded = load(path)
    assert len(loaded.environments) == 2 and loaded.daemon.notifiers == ()
    path.write_text(json.dumps(ENV))
    assert load(path).daemon.webhooks == {}


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([ENV, {**ENV, "spec": {"source": {"url": "x", "branch": "main"}}}],
         "(document 2, Environment): spec.source.url"),
        ([BASE, BASE], "(document 2, DaemonConfig): only one DaemonConfig document is allowed"),
        ([{**BASE, "kind": "Config"}], "(document 1, Config): expected apiVersion gitopsd.dev/v1alpha1 and kind"),
        ([{**BASE, "apiVersion": "v1"}], "(document 1, DaemonConfig): expected apiVersion"),
        ([{**BASE, "webhooks": {"gitlab": {}}}], "(document 1, DaemonConfig): webhooks.gitlab.secretRef: is required"),
    ],
)  # fmt: skip
def test_load_errors_name_the_document(tmp_path: Path, docs: list[dict[str, Any]], message: str) -> None:
    """The first bad document is named with its number and kind."""
    path = tmp_path / "config.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"--config {path} {message}" or message in str(info.value), str(info.value)
    assert str(info.value).startswith(f"--config {path} (document")


def test_unreadable_files(tmp_path: Path) -> None:
    """A missing file or bad YAML is one clear error naming the file."""
    with pytest.raises(ConfigError, match=r"--config .*missing\.yaml"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load(bad)
