"""file:// sources on a real ``gitopsd run``: refused unless the daemon has ``--allow-file-sources``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.gitsource import FILE_SOURCES_OFF
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, env_object, environment, versions, wait_reason

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
