"""Substitution through a real ``gitopsd run``: off unless asked, values from ConfigMaps and Secrets.

Off by default means a repository holding shell scripts or prometheus-adapter templates deploys
as written; ``substituteFrom`` values are read at each reconcile, so changing one re-renders.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import (
    apply_objects,
    environment,
    get_json,
    secret,
    wait_for,
    wait_ready,
    wait_reason,
)

pytestmark = pytest.mark.cluster

SCRIPT = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: scripts}
data:
  run.sh: 'echo "${HOME}" and ${1}'
"""

VALUES = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: values}
data:
  region: '${REGION}'
  tier: '${TIER}'
  token: '${TOKEN}'
  env: '${GITOPSD_ENVIRONMENT}'
"""


def _config_map(name: str, namespace: str, data: dict[str, str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def test_manifests_are_applied_as_written_without_substitute(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """An Environment without substitute applies ${...} text unchanged (it used to be Stalled on ${HOME})."""
    ops, app = namespaces("subst-off"), namespaces("subst-off-app")
    repo.commit({"deploy/scripts.yaml": SCRIPT})
    start_daemon(f"--namespace={ops}")
    apply_objects(gitopsd_crd, environment("plain", ops, repo.file_url, target=app, branch="main"))
    wait_ready(gitopsd_crd, ops, "plain")
    assert get_json(gitopsd_crd, "configmap", "scripts", "-n", app)["data"] == {"run.sh": 'echo "${HOME}" and ${1}'}


def test_substitute_from_config_maps_and_secrets(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Values come from a ConfigMap and a Secret (later wins, substitute wins over both); a change re-renders;
    a missing one stops the sync naming it, and nothing is applied."""
    ops, app = namespaces("subst-from"), namespaces("subst-from-app")
    commit = repo.commit({"deploy/values.yaml": VALUES})
    apply_objects(
        gitopsd_crd,
        _config_map("shared", ops, {"REGION": "eu-1", "TIER": "from-configmap"}),
        secret("private", ops, {"TIER": b"from-secret", "TOKEN": b"s3cr3t"}),
    )
    start_daemon(f"--namespace={ops}")
    sources = [
        {"kind": "ConfigMap", "name": "shared"},
        {"kind": "Secret", "name": "private"},
        {"kind": "ConfigMap", "name": "absent", "optional": True},
    ]
    env = environment(
        "subst", ops, repo.file_url, target=app, branch="main", substituteFrom=sources, substitute={"REGION": "us-2"}
    )
    apply_objects(gitopsd_crd, env)
    wait_ready(gitopsd_crd, ops, "subst", revision=f"main@sha1:{commit}")
    data = get_json(gitopsd_crd, "configmap", "values", "-n", app)["data"]
    assert data == {"region": "us-2", "tier": "from-secret", "token": "s3cr3t", "env": "subst"}
    release = get_json(gitopsd_crd, "environments.gitopsd.dev", "subst", "-n", ops)["status"]["release"]

    # A new value, same commit: a new render and a new release.
    apply_objects(gitopsd_crd, secret("private", ops, {"TIER": b"changed", "TOKEN": b"s3cr3t"}))
    wait_for(
        "the changed Secret value applied",
        lambda: get_json(gitopsd_crd, "configmap", "values", "-n", app)["data"]["tier"] == "changed",
    )
    status = get_json(gitopsd_crd, "environments.gitopsd.dev", "subst", "-n", ops)["status"]
    assert status["release"] > release

    # A required source that does not exist: the sync stops naming it; the applied objects stay.
    sources[2] = {"kind": "ConfigMap", "name": "absent"}
    env["spec"]["substituteFrom"] = sources  # type: ignore[index]
    apply_objects(gitopsd_crd, env)
    ready = wait_reason(gitopsd_crd, ops, "subst", "SubstitutionFailed")
    assert f"spec.substituteFrom: ConfigMap {ops}/absent not found" in ready["message"]
    assert get_json(gitopsd_crd, "configmap", "values", "-n", app)["data"]["tier"] == "changed"


def test_substitute_from_key_that_is_not_a_name_is_refused(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A ConfigMap key that cannot be a ${NAME} (app.properties) is named in the condition, nothing applied."""
    ops, app = namespaces("subst-key"), namespaces("subst-key-app")
    repo.commit({"deploy/values.yaml": SCRIPT})
    apply_objects(gitopsd_crd, _config_map("props", ops, {"app.properties": "a=b"}))
    start_daemon(f"--namespace={ops}")
    env = environment("props", ops, repo.file_url, target=app, branch="main",
                      substituteFrom=[{"kind": "ConfigMap", "name": "props"}])  # fmt: skip
    apply_objects(gitopsd_crd, env)
    ready = wait_reason(gitopsd_crd, ops, "props", "SubstitutionFailed")
    assert f"ConfigMap {ops}/props: key 'app.properties': names are letters" in ready["message"]
    assert get_json(gitopsd_crd, "configmaps", "-n", app, "-l", "gitopsd.dev/environment")["items"] == []
