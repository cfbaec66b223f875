"""A hostile chart version published in a repository an Environment follows, through a real ``gitopsd run``.

The new version's archive carries a link to the daemon's service account token (a chart could
then print it into a ConfigMap with ``.Files.Get``). The Environment must refuse it with a clear
condition and keep running the release it has: nothing of the new version is applied.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.helmrepo import HelmRepo
from tests.gitopsd.conftest import apply_objects, env_object, wait_ready, wait_reason
from tests.gitopsd.helm.conftest import shop_chart
from tests.gitopsd.helm.test_charts import chart_env, config

pytestmark = pytest.mark.cluster

TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _hostile_archive(version: str) -> bytes:
    """A chart whose template prints files/token, a symlink to the service account token."""
    files = {
        "shop/Chart.yaml": f"apiVersion: v2\nname: shop\nversion: {version}\n",
        "shop/templates/config.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-config}\n"
            'data: {chart: {{ .Chart.Version | quote }}, token: {{ .Files.Get "files/token" | quote }}}\n'
        ),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
        link = tarfile.TarInfo("shop/files/token")
        link.type, link.linkname = tarfile.SYMTYPE, TOKEN
        tar.addfile(link)
    return buf.getvalue()


def _publish_raw(repo: HelmRepo, version: str, body: bytes) -> None:
    """Add an archive to the repository's index by hand (``helm repo index`` would not take it)."""
    (repo.root / f"shop-{version}.tgz").write_bytes(body)
    index = yaml.safe_load((repo.root / "index.yaml").read_text())
    entry = {
        "apiVersion": "v2",
        "name": "shop",
        "version": version,
        "urls": [f"{repo.url}/shop-{version}.tgz"],
        "digest": hashlib.sha256(body).hexdigest(),
    }
    index["entries"]["shop"].insert(0, entry)
    (repo.root / "index.yaml").write_text(yaml.safe_dump(index))


def test_a_hostile_chart_version_is_refused_and_the_current_release_kept(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    helm_repo: HelmRepo,
    tmp_path: Path,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """1.0.0 deployed; 1.1.0 (a link to the token) published: Ready False ChartInvalid naming the entry,
    1.0.0's objects untouched, no release made for 1.1.0."""
    ops, app = namespaces("helm-hostile"), namespaces("helm-hostile-app")
    helm_repo.publish(shop_chart(tmp_path / "v100", "1.0.0"))
    start_daemon(f"--namespace={ops}")
    apply_objects(gitopsd_crd, chart_env("shop", ops, app, {"repository": helm_repo.url, "name": "shop"}))
    wait_ready(gitopsd_crd, ops, "shop", revision="shop@1.0.0")
    release = env_object(gitopsd_crd, ops, "shop")["status"]["release"]

    _publish_raw(helm_repo, "1.1.0", _hostile_archive("1.1.0"))
    ready = wait_reason(gitopsd_crd, ops, "shop", "ChartInvalid", timeout=120)
    assert "shop@1.1.0" in ready["message"] and "'shop/files/token' is a link to an absolute path" in ready["message"]
    data = config(gitopsd_crd, app, "shop-config")
    assert data["chart"] == "1.0.0" and "token" not in data
    status = env_object(gitopsd_crd, ops, "shop")["status"]
    assert status["release"] == release and status["lastAppliedRevision"] == "shop@1.0.0"
