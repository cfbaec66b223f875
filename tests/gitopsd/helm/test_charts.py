"""Charts through a real ``gitopsd run``: from Git, from an HTTP Helm repository, from an OCI registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.helmrepo import HelmRepo, OciRegistry, OciTokenProxy, write_chart
from tests.gitopsd.conftest import (
    apply_objects,
    environment,
    get_json,
    gitopsd_cli,
    secret,
    wait_for,
    wait_ready,
    wait_reason,
)
from tests.gitopsd.helm.conftest import shop_chart

pytestmark = pytest.mark.cluster

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.%(group)s}
spec:
  group: %(group)s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def chart_env(name: str, namespace: str, target: str, chart: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"chart": chart, "targetNamespace": target, "interval": "2s", "wait": {"timeout": "60s"}, **extra},
    }


def config(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, str]:
    data: dict[str, str] = get_json(cluster, "configmap", name, "-n", namespace)["data"]
    return data


def test_chart_from_git_with_values_files_values_from_and_crds(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A Git path holding Chart.yaml renders with helm: values files, valuesFrom, values layered in that
    order; release name and namespace; the cluster's capabilities; a vendored dependency; CRDs from crds/."""
    ops, app = namespaces("helm-git"), namespaces("helm-git-app")
    group = f"{app}.example.com"
    chart = shop_chart(
        tmp_path / "chart",
        "0.1.0",
        extra={
            "values-prod.yaml": "greeting: from-file\nreplicas: 3\n",
            "crds/widget.yaml": CRD % {"group": group},
            "templates/widget.yaml": f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\n",
            "charts/db/Chart.yaml": "apiVersion: v2\nname: db\nversion: 0.0.1\n",
            "charts/db/templates/db.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-db\n"
                'data:\n  size: {{ .Values.size | default "small" | quote }}\n'
            ),
        },
    )
    repo.commit({f"deploy/{p.relative_to(chart)}": p.read_text() for p in chart.rglob("*") if p.is_file()})
    overrides: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "overrides", "namespace": ops},
        "data": {"values.yaml": "replicas: 5\ndb: {size: large}\n"},
    }
    apply_objects(gitopsd_crd, overrides)
    start_daemon(f"--namespace={ops}")
    helm = {
        "releaseName": "web",
        "valuesFiles": ["values-prod.yaml"],
        "valuesFrom": [{"kind": "ConfigMap", "name": "overrides"}],
        "values": {"greeting": "from-spec"},
    }
    apply_objects(gitopsd_crd, environment("shop", ops, repo.file_url, target=app, branch="main", helm=helm))
    wait_ready(gitopsd_crd, ops, "shop")
    data = config(gitopsd_crd, app, "web-config")
    assert data["greeting"] == "from-spec" and data["replicas"] == "5" and data["namespace"] == app
    assert data["kube"].startswith("v1.") and data["hasDeployments"] == "true"
    assert config(gitopsd_crd, app, "web-db")["size"] == "large"
    assert get_json(gitopsd_crd, f"widgets.{group}", "w1", "-n", app)["kind"] == "Widget"
    overrides["data"] = {"values.yaml": "replicas: 6\n"}  # a changed valuesFrom re-renders, no new commit
    apply_objects(gitopsd_crd, overrides)
    wait_for("the new valuesFrom rendered", lambda: config(gitopsd_crd, app, "web-config")["replicas"] == "6")


def test_chart_lock_dependencies_are_fetched_from_their_repository_once(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A Git chart whose Chart.lock names a dependency not in charts/: fetched from the repository before the
    (offline) render, once for both Environments that use it."""
    ops, app = namespaces("helm-lock"), namespaces("helm-lock-app")
    db = write_chart(
        tmp_path / "db",
        {
            "Chart.yaml": "apiVersion: v2\nname: db\nversion: 0.3.0\n",
            "templates/db.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-db\n"
                "data:\n  version: {{ .Chart.Version | quote }}\n"
            ),
        },
    )
    helm_repo.publish(db)
    lock = f"dependencies:\n- name: db\n  repository: {helm_repo.url}\n  version: 0.3.0\ndigest: sha256:0\n"
    chart = shop_chart(tmp_path / "chart", "0.1.0", extra={"Chart.lock": lock})
    deps = f"dependencies:\n- name: db\n  repository: {helm_repo.url}\n  version: 0.3.0\n"
    (chart / "Chart.yaml").write_text((chart / "Chart.yaml").read_text() + deps)
    repo.commit({f"deploy/{p.relative_to(chart)}": p.read_text() for p in chart.rglob("*") if p.is_file()})
    start_daemon(f"--namespace={ops}")
    apply_objects(
        gitopsd_crd,
        environment("one", ops, repo.file_url, target=app, branch="main", helm={"releaseName": "one"}),
        environment("two", ops, repo.file_url, target=app, branch="main", helm={"releaseName": "two"}),
    )
    wait_ready(gitopsd_crd, ops, "one")
    wait_ready(gitopsd_crd, ops, "two")
    assert config(gitopsd_crd, app, "one-db")["version"] == config(gitopsd_crd, app, "two-db")["version"] == "0.3.0"
    assert helm_repo.counts["/db-0.3.0.tgz"] == 1


def test_chart_from_http_repository_upgrades_in_range_and_rolls_back_with_the_repository_down(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A semver range takes the newest version; a new version published is deployed; with the repository
    stopped the Environment keeps its release (Ready False, transient reason) and rollback still works."""
    ops, app = namespaces("helm-http"), namespaces("helm-http-app")
    helm_repo.publish(shop_chart(tmp_path / "v100", "1.0.0", greeting="one"))
    helm_repo.publish(shop_chart(tmp_path / "v200", "2.0.0", greeting="two"))
    start_daemon(f"--namespace={ops}")
    chart = {"repository": helm_repo.url, "name": "shop", "version": ">=1.0.0 <2.0.0"}
    apply_objects(gitopsd_crd, chart_env("shop", ops, app, chart))
    wait_ready(gitopsd_crd, ops, "shop", revision="shop@1.0.0")
    assert config(gitopsd_crd, app, "shop-config")["greeting"] == "one"

    helm_repo.publish(shop_chart(tmp_path / "v110", "1.1.0", greeting="one-one"))
    wait_ready(gitopsd_crd, ops, "shop", revision="shop@1.1.0")
    assert config(gitopsd_crd, app, "shop-config")["chart"] == "1.1.0"
    assert helm_repo.counts["/shop-1.1.0.tgz"] == 1

    helm_repo.stop()
    ready = wait_reason(gitopsd_crd, ops, "shop", "ChartRepositoryUnreachable")
    assert helm_repo.url in ready["message"]
    assert config(gitopsd_crd, app, "shop-config")["chart"] == "1.1.0"

    out = gitopsd_cli(gitopsd_crd, "rollback", "shop", "-n", ops, "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stderr
    wait_for("the 1.0.0 release restored", lambda: config(gitopsd_crd, app, "shop-config")["chart"] == "1.0.0")


def test_render_a_local_chart_directory_offline(tmp_path: Path) -> None:
    """gitopsd render --path of a chart: values files in order, release name; a missing file exits 1 naming it."""
    chart = shop_chart(
        tmp_path / "shop", "0.2.0", extra={"values-a.yaml": "greeting: a\n", "values-b.yaml": "replicas: 7\n"}
    )
    out = gitopsd_cli(
        None,
        "render",
        "--path",
        str(chart),
        "-n",
        "apps",
        "--release-name",
        "web",
        "--values-file",
        "values-a.yaml",
        "--values-file",
        "values-b.yaml",
    )
    assert out.returncode == 0, out.stderr
    assert "name: web-config" in out.stdout and "greeting: a" in out.stdout and "replicas: '7'" in out.stdout
    out = gitopsd_cli(None, "render", "--path", str(chart), "-n", "apps", "--values-file", "values-c.yaml")
    assert out.returncode == 1 and "values-c.yaml is not a file in the chart" in out.stderr


def test_chart_from_oci_registry(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    oci_registry: OciRegistry,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A chart pushed with helm push is resolved from the registry's tags and its layer rendered."""
    ops, app = namespaces("helm-oci"), namespaces("helm-oci-app")
    oci_registry.push(shop_chart(tmp_path / "v1", "1.2.3", greeting="oci"), tmp_path / "pkg")
    oci_registry.push(shop_chart(tmp_path / "v2", "1.3.0-rc.1", greeting="rc"), tmp_path / "pkg")
    start_daemon(f"--namespace={ops}")
    apply_objects(
        gitopsd_crd, chart_env("shop", ops, app, {"repository": oci_registry.url, "name": "shop", "version": "^1.2"})
    )
    wait_ready(gitopsd_crd, ops, "shop", revision="shop@1.2.3")
    assert config(gitopsd_crd, app, "shop-config")["greeting"] == "oci"
    out = gitopsd_cli(gitopsd_crd, "render", "shop", "-n", ops)
    assert out.returncode == 0, out.stderr
    assert f"# Environment {ops}/shop at shop@1.2.3" in out.stdout and "greeting: oci" in out.stdout
    out = gitopsd_cli(gitopsd_crd, "diff", "shop", "-n", ops)
    assert out.returncode == 0, out.stdout + out.stderr  # live matches the chart: no difference


def test_chart_bad_input_names_what_is_wrong(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """Missing chart, an exact version not listed, a range with no match, a template error (file:line),
    a missing values file, a missing valuesFrom: each a clear Ready=False reason, nothing applied."""
    ops, app = namespaces("helm-bad"), namespaces("helm-bad-app")
    helm_repo.publish(shop_chart(tmp_path / "ok", "1.0.0"))
    broken = shop_chart(
        tmp_path / "broken", "1.0.1", extra={"templates/bad.yaml": "x: {{ .Values.missing.deep.value }}\n"}
    )
    helm_repo.publish(broken)
    start_daemon(f"--namespace={ops}")
    url = helm_repo.url
    apply_objects(
        gitopsd_crd,
        chart_env("noname", ops, app, {"repository": url, "name": "nothing"}),
        chart_env("noexact", ops, app, {"repository": url, "name": "shop", "version": "9.9.9"}),
        chart_env("norange", ops, app, {"repository": url, "name": "shop", "version": ">=5.0.0"}),
        chart_env("template", ops, app, {"repository": url, "name": "shop", "version": "1.0.1"}),
        chart_env(
            "nofile",
            ops,
            app,
            {"repository": url, "name": "shop", "version": "1.0.0"},
            helm={"valuesFiles": ["values-nope.yaml"]},
        ),
        chart_env(
            "nofrom",
            ops,
            app,
            {"repository": url, "name": "shop", "version": "1.0.0"},
            helm={"valuesFrom": [{"kind": "Secret", "name": "absent"}]},
        ),
    )
    assert "nothing" in wait_reason(gitopsd_crd, ops, "noname", "ChartNotFound")["message"]
    message = wait_reason(gitopsd_crd, ops, "noexact", "ChartVersionNotFound")["message"]
    assert "shop" in message and "9.9.9" in message, message
    assert "1.0.1" in wait_reason(gitopsd_crd, ops, "norange", "ChartVersionNotFound")["message"]
    message = wait_reason(gitopsd_crd, ops, "template", "HelmTemplateFailed")["message"]
    assert "templates/bad.yaml:1:" in message, message
    assert "values-nope.yaml" in wait_reason(gitopsd_crd, ops, "nofile", "ValuesFileNotFound")["message"]
    assert "absent" in wait_reason(gitopsd_crd, ops, "nofrom", "ValuesFromNotFound")["message"]
    assert get_json(gitopsd_crd, "configmaps", "-n", app, "-l", "gitopsd.dev/environment")["items"] == []


def test_chart_repository_refusing_credentials(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A repository behind basic auth: the right Secret deploys, a wrong one is ChartAuthenticationFailed
    and its password appears nowhere in the status."""
    ops, app = namespaces("helm-auth"), namespaces("helm-auth-app")
    repo = HelmRepo(tmp_path / "private", login="ci:letmein").start()
    try:
        repo.publish(shop_chart(tmp_path / "c", "1.0.0"))
        apply_objects(
            gitopsd_crd,
            secret("good", ops, {"username": b"ci", "password": b"letmein"}),
            secret("bad", ops, {"username": b"ci", "password": b"wrong-pass-123"}),
        )
        start_daemon(f"--namespace={ops}")
        chart = {"repository": repo.url, "name": "shop", "version": "1.0.0"}
        apply_objects(
            gitopsd_crd,
            chart_env("good", ops, app, {**chart, "secretRef": {"name": "good"}}),
            chart_env("bad", ops, f"{app}", {**chart, "secretRef": {"name": "bad"}}, helm={"releaseName": "other"}),
        )
        wait_ready(gitopsd_crd, ops, "good", revision="shop@1.0.0")
        ready = wait_reason(gitopsd_crd, ops, "bad", "ChartAuthenticationFailed")
        assert "wrong-pass-123" not in str(ready)
    finally:
        repo.stop()


def test_oci_registry_with_token_authentication(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    oci_registry: OciRegistry,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A registry answering with a Bearer challenge: the Secret's login gets a token and the chart deploys;
    a wrong password is ChartAuthenticationFailed, named, and the password is in no status."""
    ops, app = namespaces("helm-ocitoken"), namespaces("helm-ocitoken-app")
    oci_registry.push(shop_chart(tmp_path / "v1", "2.0.0", greeting="behind-token"), tmp_path / "pkg")
    proxy = OciTokenProxy(oci_registry, "robot:s3cret-token").start()
    try:
        apply_objects(
            gitopsd_crd,
            secret("good", ops, {"username": b"robot", "password": b"s3cret-token"}),
            secret("bad", ops, {"username": b"robot", "password": b"not-the-password"}),
        )
        start_daemon(f"--namespace={ops}")
        chart = {"repository": proxy.url, "name": "shop", "version": "2.0.0"}
        apply_objects(
            gitopsd_crd,
            chart_env("good", ops, app, {**chart, "secretRef": {"name": "good"}}),
            chart_env("bad", ops, app, {**chart, "secretRef": {"name": "bad"}}, helm={"releaseName": "other"}),
        )
        wait_ready(gitopsd_crd, ops, "good", revision="shop@2.0.0")
        assert config(gitopsd_crd, app, "good-config")["greeting"] == "behind-token"
        ready = wait_reason(gitopsd_crd, ops, "bad", "ChartAuthenticationFailed")
        assert "chart.secretRef" in ready["message"] and "not-the-password" not in str(ready)
    finally:
        proxy.stop()


def test_a_chart_environment_in_run_config_is_accepted(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """gitopsd run --config with a spec.chart Environment (no Git source to check) starts and deploys it."""
    ops, app = namespaces("helm-config"), namespaces("helm-config-app")
    helm_repo.publish(shop_chart(tmp_path / "c", "3.1.4", greeting="configured"))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(json.dumps(chart_env("shop", ops, app, {"repository": helm_repo.url, "name": "shop"})))
    start_daemon(f"--namespace={ops}", f"--config={config_file}")
    wait_ready(gitopsd_crd, ops, "shop", revision="shop@3.1.4")
    assert config(gitopsd_crd, app, "shop-config")["greeting"] == "configured"
