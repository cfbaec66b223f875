"""``gitopsd run`` refuses a bad DaemonConfig, flags or missing Secrets before it starts or writes anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, gitopsd_cli, secret

pytestmark = pytest.mark.cluster


def _env(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "from-config", "namespace": ns},
        "spec": {"source": {"url": "https://git.example.com/shop.git", "branch": "main"}},
    }


def _write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    return path


def _created(cluster: ClusterInfo, ns: str) -> bool:
    return kubectl(cluster, "get", "environments.gitopsd.dev", "from-config", "-n", ns).returncode == 0


def test_bad_config_and_flags_exit_2_and_apply_nothing(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str], tmp_path: Path
) -> None:
    """A bad field (named with its document), a bad shard selector, a Lease without a namespace: exit 2."""
    ns = namespaces("runcfg")
    bad = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig", "secretNamespace": ns,
           "notifiers": [{"name": "team", "type": "teams"}]}  # fmt: skip
    config = _write(tmp_path / "bad.yaml", _env(ns), bad)
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", f"--config={config}")
    assert out.returncode == 2
    where = f"--config {config} (document 2, DaemonConfig)"
    assert f"{where}: notifiers[0].type: must be slack, webhook, github, gitlab or gitea" in out.stderr
    assert not _created(gitopsd_crd, ns)
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", "--shard-selector=shard a")
    assert out.returncode == 2 and "--shard-selector: 'shard a' is not a label requirement" in out.stderr
    out = gitopsd_cli(gitopsd_crd, "run", "-A", "--leader-elect")
    assert out.returncode == 2 and "leader election needs a namespace for its Lease" in out.stderr
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", "--webhook-bind-address=nowhere")
    assert out.returncode == 2 and "--webhook-bind-address 'nowhere'" in out.stderr


def test_a_missing_secret_exits_1_naming_the_config_field(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str], tmp_path: Path
) -> None:
    """The Secret (or its key) a webhook or notifier names must exist: exit 1 naming field, Secret and key."""
    ns = namespaces("runsec")
    cfg = {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig", "secretNamespace": ns,
           "webhooks": {"github": {"secretRef": {"name": "hooks", "key": "github"}}},
           "notifiers": [{"name": "gh", "type": "github", "secretRef": {"name": "tokens"}}]}  # fmt: skip
    config = _write(tmp_path / "config.yaml", cfg, _env(ns))
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", f"--config={config}")
    assert out.returncode == 1
    assert f"webhooks.github.secretRef: Secret {ns}/hooks not found" in out.stderr
    apply_objects(gitopsd_crd, secret("hooks", ns, {"gitlab": b"x"}))
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", f"--config={config}")
    assert out.returncode == 1
    assert f"webhooks.github.secretRef: Secret {ns}/hooks has no key 'github' (keys: gitlab)" in out.stderr
    apply_objects(gitopsd_crd, secret("hooks", ns, {"github": b"x"}), secret("tokens", ns, {"token": b" \n"}))
    out = gitopsd_cli(gitopsd_crd, "run", f"--namespace={ns}", f"--config={config}")
    assert out.returncode == 1 and f"notifiers[0].secretRef: Secret {ns}/tokens key 'token' is empty" in out.stderr
    assert not _created(gitopsd_crd, ns)


def test_notify_usage_errors_exit_2() -> None:
    """gitopsd notify: short ref, bad after, bad receiver, no secret: one line each, exit 2, nothing sent."""
    cases = {
        ("--ref", "main"): "--ref 'main': give the full ref name",
        ("--ref", "refs/heads/main", "--after", "HEAD"): "--after 'HEAD': expected a commit id",
        ("--ref", "refs/heads/main", "--receiver", "gitopsd:8081"): "--receiver 'gitopsd:8081'",
        ("--ref", "refs/heads/main"): "--secret-file is required",
        ("--ref", "refs/heads/main", "--secret-file", "/nonexistent"): "--secret-file /nonexistent:",
    }
    for args, message in cases.items():
        out = gitopsd_cli(None, "notify", "--url", "https://git.example.com/shop.git", *args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
