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

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def test_cli_up_then_down_beside_another_cluster(tmp_path: Path, cluster: ClusterInfo) -> None:
    """`e2e.cluster up` starts a second, separate cluster next to the session's; `down` leaves nothing behind."""
    directory = tmp_path / "c1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "e2e.cluster",
            "up",
            "--ip-family",
            cluster.ip_family,
            "--dir",
            str(directory),
            "--nodes",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={directory / 'kubeconfig'}" in up.stdout
        pids = json.loads((directory / STATE_FILE).read_text())["processes"]
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        assert all(_alive(pid) for pid in pids.values())
        nodes = subprocess.run(
            ["kubectl", f"--kubeconfig={directory / 'kubeconfig'}", "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert nodes.stdout.split() == ["node/kwok-node-0"], nodes.stderr
        # Two clusters, two stores: an object made in one is not in the other.
        made = subprocess.run(
            ["kubectl", f"--kubeconfig={directory / 'kubeconfig'}", "create", "namespace", "only-in-c1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        other = subprocess.run(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "get", "namespace", "only-in-c1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode != 0 and "NotFound" in other.stderr

        again = subprocess.run(
            [sys.executable, "-m", "e2e.cluster", "up", "--dir", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert again.returncode == 1
        assert "already running" in again.stderr
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "e2e.cluster", "down", "--dir", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    assert not any(_alive(pid) for pid in pids.values())


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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    down = subprocess.run(
        [sys.executable, "-m", "e2e.cluster", "down", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1
    assert "is not a cluster directory" in down.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
