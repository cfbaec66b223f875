"""Render limits reaching a running daemon: the Environment stalls with the limit named and nothing is applied."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.badinput.test_manifests import ALIAS_LIMIT, CM, list_bomb
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    env_object,
    environment,
    versions,
    wait_ready,
    wait_reason,
)


@pytest.mark.cluster
def test_an_alias_bomb_in_a_list_stalls_a_real_daemon_and_creates_nothing(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """The issue's reproducer, then a 9 MiB file, reaching a daemon: Ready False, Stalled, the file and
    limit named, no object made; without them the same directory applies."""
    ops, app = namespaces("ops"), namespaces("app")
    repo.commit({"deploy/good.yaml": CM.format(name="good"), "deploy/bomb.yaml": list_bomb()})
    start_daemon(f"--namespace={ops}")  # the harness passes --allow-file-sources
    apply_objects(gitopsd_crd, environment("app", ops, repo.file_url, target=app, branch="main"))
    ready = wait_reason(gitopsd_crd, ops, "app", "AliasExpansionTooLarge")
    assert ready["message"].startswith("deploy/bomb.yaml: brings the values that YAML aliases"), ready["message"]
    assert ALIAS_LIMIT in ready["message"]
    env = env_object(gitopsd_crd, ops, "app")
    assert condition(env, "Stalled").get("status") == "True"
    assert condition(env, "Stalled").get("reason") == "AliasExpansionTooLarge"
    assert versions(gitopsd_crd, app) == {}  # not even the good ConfigMap

    # A blob Git stores in a few kilobytes but that is 9 MiB: never read, refused by name.
    huge = repo.commit({"deploy/bomb.yaml": None, "deploy/huge.yaml": b"#" * (9 * 1024 * 1024)})
    ready = wait_reason(gitopsd_crd, ops, "app", "FileTooLarge")
    assert ready["message"] == "deploy/huge.yaml: is 9 MiB (limit per file: 8 MiB)"
    env = env_object(gitopsd_crd, ops, "app")
    assert env["status"]["lastAttemptedRevision"] == f"main@sha1:{huge}"
    assert condition(env, "Stalled").get("status") == "True"
    assert versions(gitopsd_crd, app) == {}

    fixed = repo.commit({"deploy/huge.yaml": None})
    wait_ready(gitopsd_crd, ops, "app", revision=f"main@sha1:{fixed}")
    assert set(versions(gitopsd_crd, app)) == {"ConfigMap/good"}
