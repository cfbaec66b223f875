"""develop → dev, main → staging, release tags → prod, through a real ``gitopsd run``.

One repository feeds three Environments; commits and tags move only the Environment whose
ref they touch; a restarted daemon writes nothing when everything is in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from tests.gitopsd.conftest import apply_objects, condition, environment, get_json, wait_for

pytestmark = pytest.mark.cluster

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.invalid/web:${GITOPSD_REVISION_SHORT}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def config(release: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  release: "{release}"
  ref: "${{GITOPSD_REF}}"
  environment: "${{GITOPSD_ENVIRONMENT}}"
"""


def _envs(cluster: ClusterInfo, ns: str) -> dict[str, dict[str, Any]]:
    items = get_json(cluster, "environments.gitopsd.dev", "-n", ns)["items"]
    return {item["metadata"]["name"]: item for item in items}


def _all_ready(cluster: ClusterInfo, ns: str, names: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
    envs = _envs(cluster, ns)
    if all(condition(envs.get(n, {}), "Ready").get("status") == "True" for n in names):
        return envs
    return None


def _resource_versions(cluster: ClusterInfo, namespace: str) -> dict[str, str]:
    items = get_json(cluster, "deployments,services,configmaps", "-n", namespace, "-l", "gitopsd.dev/environment")
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items["items"]}


def test_branches_and_tags_deploy_to_their_environments(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """develop → dev, main → staging, newest tag in range → prod; each change moves only its environment."""
    cluster = gitopsd_crd
    ops, dev, staging, prod = (namespaces(p) for p in ("ops", "dev", "staging", "prod"))
    repo.commit({"deploy/app.yaml": APP, "deploy/config.yaml": config("one"), "README.md": "# shop\n"})
    v1 = repo.tag("v1.0.0", message="release 1.0.0")
    main_commit = repo.commit({"deploy/config.yaml": config("two")})
    repo.tag("v2.0.0-rc.1")  # outside the range, and a prerelease
    repo.branch("develop")
    dev_commit = repo.commit({"deploy/config.yaml": config("three")})

    daemon = start_daemon(f"--namespace={ops}")
    apply_objects(
        cluster,
        environment("dev", ops, repo.file_url, target=dev, branch="develop", substitute={}),
        environment("staging", ops, repo.file_url, target=staging, branch="main", substitute={}),
        environment("prod", ops, repo.file_url, target=prod, semver=">=1.0.0 <2.0.0", substitute={}),
    )
    envs = wait_for("dev, staging and prod Ready", lambda: _all_ready(cluster, ops, ("dev", "staging", "prod")))
    assert envs["dev"]["status"]["lastAppliedRevision"] == f"develop@sha1:{dev_commit}"
    assert envs["staging"]["status"]["lastAppliedRevision"] == f"main@sha1:{main_commit}"
    assert envs["prod"]["status"]["lastAppliedRevision"] == f"v1.0.0@sha1:{v1}"
    releases = {ns: get_json(cluster, "configmap", "web-config", "-n", ns)["data"] for ns in (dev, staging, prod)}
    assert releases[dev] == {"release": "three", "ref": "develop", "environment": "dev"}
    assert releases[staging]["release"] == "two"
    assert releases[prod] == {"release": "one", "ref": "v1.0.0", "environment": "prod"}
    web = get_json(cluster, "deployment", "web", "-n", prod)
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.invalid/web:{v1[:7]}"
    assert web["metadata"]["labels"]["gitopsd.dev/environment"] == f"{ops}.prod"
    inventory = {e["id"] for e in envs["prod"]["status"]["inventory"]["entries"]}
    assert inventory == {f"{prod}_web_apps_Deployment", f"{prod}_web__Service", f"{prod}_web-config__ConfigMap"}
    # One repository, one mirror, however many Environments read it.
    mirrors = [p for p in (daemon.directory / "cache" / "git").rglob("HEAD") if p.parent.name != ".git"]
    assert len(mirrors) == 1, mirrors

    before = {ns: _resource_versions(cluster, ns) for ns in (staging, prod)}
    new_dev = repo.commit({"deploy/config.yaml": config("four")})
    wait_for(
        "dev at the new develop commit",
        lambda: _envs(cluster, ops)["dev"]["status"].get("lastAppliedRevision") == f"develop@sha1:{new_dev}",
    )
    assert get_json(cluster, "configmap", "web-config", "-n", dev)["data"]["release"] == "four"
    assert {ns: _resource_versions(cluster, ns) for ns in (staging, prod)} == before

    before = {ns: _resource_versions(cluster, ns) for ns in (dev, staging)}
    repo.switch("main")
    v11 = repo.tag("v1.1.0", message="release 1.1.0")
    wait_for(
        "prod at v1.1.0",
        lambda: _envs(cluster, ops)["prod"]["status"].get("lastAppliedRevision") == f"v1.1.0@sha1:{v11}",
    )
    assert get_json(cluster, "configmap", "web-config", "-n", prod)["data"]["release"] == "two"
    assert {ns: _resource_versions(cluster, ns) for ns in (dev, staging)} == before

    # A restarted daemon finds everything in sync and writes nothing.
    wait_for("all Ready", lambda: _all_ready(cluster, ops, ("dev", "staging", "prod")))
    objects = {ns: _resource_versions(cluster, ns) for ns in (dev, staging, prod)}
    env_versions = {n: e["metadata"]["resourceVersion"] for n, e in _envs(cluster, ops).items()}
    assert daemon.stop() == 0
    daemon.start()
    wait_for(
        "a full round of reconciles after the restart",
        lambda: daemon.metric("gitopsd_reconcile_total", result="unchanged") >= 6,
    )
    assert daemon.metric("gitopsd_reconcile_total", result="applied") == 0
    assert {ns: _resource_versions(cluster, ns) for ns in (dev, staging, prod)} == objects
    assert {n: e["metadata"]["resourceVersion"] for n, e in _envs(cluster, ops).items()} == env_versions
