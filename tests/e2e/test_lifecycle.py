"""The harness leaves nothing behind and says why when a component fails to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from e2e import procs
from e2e.binaries import Binaries
from e2e.cluster import STATE_FILE, ClusterInfo, LocalCluster
from tests.e2e.kube import kubectl

ROOT = Path(__file__).resolve().parents[2]


def _harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m e2e.cluster ARGS`` as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "e2e.cluster", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=timeout,
        check=False,
    )


def test_cli_up_then_down_beside_another_cluster(tmp_path: Path, cluster: ClusterInfo) -> None:
    """`e2e.cluster up` starts a second, separate cluster next to the session's; `down` leaves nothing behind."""
    directory = tmp_path / "c1"
    up = _harness("up", "--ip-family", cluster.ip_family, "--dir", str(directory), "--nodes", "1", timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={directory / 'kubeconfig'}" in up.stdout
        pids = json.loads((directory / STATE_FILE).read_text())["processes"]
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        assert all(procs.pid_alive(pid) for pid in pids.values())
        nodes = kubectl(directory / "kubeconfig", "get", "nodes", "-o", "name")
        assert nodes.stdout.split() == ["node/kwok-node-0"], nodes.stderr
        # Two clusters, two stores: an object made in one is not in the other.
        made = kubectl(directory / "kubeconfig", "create", "namespace", "only-in-c1")
        assert made.returncode == 0, made.stderr
        other = kubectl(cluster, "get", "namespace", "only-in-c1")
        assert other.returncode != 0 and "NotFound" in other.stderr

        again = _harness("up", "--dir", str(directory))
        assert again.returncode == 1
        assert "already running" in again.stderr
    finally:
        down = _harness("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    assert not any(procs.pid_alive(pid) for pid in pids.values())


def test_failed_start_reports_the_component_log_and_cleans_up(tmp_path: Path, binaries: Binaries) -> None:
    """A component that dies at start fails the start with its log, and nothing keeps running."""
    fake_etcd = tmp_path / "etcd"
    fake_etcd.write_text("#!/bin/sh\necho 'etcd: cannot open data dir: disk on fire' >&2\nexit 3\n")
    fake_etcd.chmod(0o755)
    cluster = LocalCluster(tmp_path / "c", "ipv4", binaries=replace(binaries, etcd=fake_etcd))
    with pytest.raises(procs.StartupError) as err:
        cluster.start(timeout=30)
    assert "etcd exited with code 3" in str(err.value)
    assert "disk on fire" in str(err.value)
    assert not (tmp_path / "c" / STATE_FILE).exists()


def test_down_refuses_a_directory_no_cluster_was_started_in(tmp_path: Path) -> None:
    """`down` on an ordinary directory fails with a clear error and deletes nothing."""
    (tmp_path / "precious.txt").write_text("keep me")
    down = _harness("down", "--dir", str(tmp_path))
    assert down.returncode == 1
    assert "is not a cluster directory" in down.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
