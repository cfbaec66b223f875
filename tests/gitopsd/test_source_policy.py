"""Sources a real ``gitopsd run`` refuses: file:// without ``--allow-file-sources``, URLs whose password
would leak or go out in clear; each stalls with its reason, nothing fetched or applied, no secret shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.gitsource import FILE_SOURCES_OFF
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    versions,
    wait_reason,
)

pytestmark = pytest.mark.cluster

CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: local}\n"


def test_a_file_url_stalls_on_a_daemon_without_the_flag(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str], repo: WorkRepo, tmp_path: Path
) -> None:
    """Without --allow-file-sources: Stalled SourceNotAllowed with the flag named, nothing fetched or applied."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    repo.commit({"deploy/cm.yaml": CONFIG})
    apply_objects(cluster, environment("local", ops, repo.file_url, target=app, branch="main"))
    daemon = DaemonProcess(
        cluster.kubeconfig, tmp_path / "locked", f"--namespace={ops}", name="locked", allow_file_sources=False
    ).start()
    try:
        ready = wait_reason(cluster, ops, "local", "SourceNotAllowed")
        assert ready["message"] == FILE_SOURCES_OFF
        assert condition(env_object(cluster, ops, "local"), "Stalled").get("status") == "True"
        assert versions(cluster, app) == {}
        assert not list((tmp_path / "locked" / "cache").glob("git/mirrors/*"))  # never fetched
        events = kubectl(cluster, "get", "events", "-n", ops, "-o", "json").stdout
        assert "SourceNotAllowed" in events
    finally:
        assert daemon.stop() == 0


def test_urls_holding_a_password_stall_without_showing_it(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A password with an unencoded '/' or over http: InvalidSourceURL, hidden in status, Events and log."""
    cluster = gitopsd_crd
    ops, app = namespaces("ops"), namespaces("app")
    cases = {
        "slash": (
            "https://deploy:pa/ss-4f1c@127.0.0.1:1/shop.git",
            "'https://***@127.0.0.1:1/shop.git': '@' after the host: percent-encode '/', '?', '#' and '@' "
            "in a user name or password (%2F, %3F, %23, %40)",
        ),
        "plain-http": (
            "http://deploy:pa@ss-4f1c@127.0.0.1:1/shop.git",
            "spec.source.url 'http://***@127.0.0.1:1/shop.git': refusing to send credentials over plain http "
            "to 127.0.0.1; use https",
        ),
    }
    envs = [environment(name, ops, url, target=app, branch="main") for name, (url, _) in cases.items()]
    apply_objects(cluster, *envs)
    daemon = start_daemon(f"--namespace={ops}")
    for name, (_, message) in cases.items():
        ready = wait_reason(cluster, ops, name, "InvalidSourceURL")
        assert ready["message"] == message
        assert condition(env_object(cluster, ops, name), "Stalled").get("status") == "True"
    assert versions(cluster, app) == {}
    events = kubectl(cluster, "get", "events", "-n", ops, "-o", "json").stdout
    for text in (events, daemon.log_text()):
        assert "4f1c" not in text and "pa/ss" not in text
