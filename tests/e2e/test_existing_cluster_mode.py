"""The suite's existing-cluster mode (``GITOPSD_E2E_KUBECONFIG``), proven by running part of the suite in it.

kind cannot run here (no container engine), so the switch the kind script relies on is checked
against a private harness cluster instead: a nested pytest session is pointed at it, once as
a harness cluster (everything runs) and once with ``GITOPSD_E2E_HARNESS=0``, which makes the
session treat it as kind (the ``HARNESS_ONLY`` tests are skipped with their documented reason,
the rest runs against that cluster). Either way the nested session must start no cluster of
its own and leave the one it was given running.

The nested session gets a private ``TMPDIR``: its temporary directories (and those of any
cluster it would start) land there, where they can be watched, and its clean-up of stale
harness directories cannot reach the parent's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e import procs
from e2e.binaries import Binaries
from e2e.cluster import LocalCluster, new_cluster_dir
from e2e.kind import existing
from tests.conftest import HARNESS_ONLY
from tests.e2e.kube import kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]

# Small but real: each kind of test once. Harness-only ones (by HARNESS_ONLY) use the cluster's
# processes, directory or PKI; the others use a cluster like any user's, or none at all.
LIFECYCLE = "tests/e2e/test_lifecycle.py"
HARNESS_TESTS = {
    f"{LIFECYCLE}::test_cli_up_then_down_beside_another_cluster[ipv4]": LIFECYCLE,
    f"{LIFECYCLE}::test_failed_start_reports_the_component_log_and_cleans_up": LIFECYCLE,
    # Reads the front-proxy CA from the cluster's directory: only a harness cluster has it.
    "tests/metrics_adapter/test_auth.py::test_front_proxy_certificate_with_a_disallowed_cn_is_401": (
        "tests/metrics_adapter/"
    ),
}
PORTABLE_TESTS = (
    f"{LIFECYCLE}::test_down_refuses_a_directory_no_cluster_was_started_in",  # no cluster
    # A real gitopsd reconciling into the given cluster, steered by its CLI.
    "tests/gitopsd/test_cli.py::test_cli_steers_the_daemon_and_drift_is_reverted",
    "tests/metrics_adapter/test_cli.py::test_check_without_prometheus_fails_with_the_reason",  # no cluster
)
NESTED_TIMEOUT = 600.0  # seconds; the nested run takes about a minute


@dataclass(frozen=True, slots=True)
class NestedRun:
    returncode: int
    output: str
    outcomes: dict[str, tuple[str, str]]  # node id -> ("passed" | "failed" | "error" | "skipped", message)
    temp_dirs: frozenset[str]  # every gitopsd-* directory seen in the nested TMPDIR while it ran


@pytest.fixture(scope="module")
def given_cluster(binaries: Binaries) -> Iterator[LocalCluster]:
    """A private harness cluster, started here as a user's `e2e.cluster up` would, for the nested sessions."""
    local = LocalCluster(new_cluster_dir("e2e-given"), "ipv4", nodes=2, binaries=binaries)
    local.start()
    try:
        yield local
    finally:
        local.stop(remove=True)


def _nested_env(kubeconfig: Path, tmpdir: Path, *, harness: bool) -> dict[str, str]:
    # Nothing of the parent session may leak in: pytest's own variables (xdist worker ids,
    # PYTEST_ADDOPTS, the current test) and any GITOPSD_E2E_* the parent itself runs under.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITOPSD_E2E_"))}
    env.update({existing.ENV_KUBECONFIG: str(kubeconfig), "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)})
    if not harness:
        env[existing.ENV_HARNESS] = "0"
    return env


def _outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    # Our own nested run wrote this file a moment ago: not untrusted input.
    tree = ET.parse(junit)  # noqa: S314
    found: dict[str, tuple[str, str]] = {}
    for case in tree.iter("testcase"):
        nodeid = case.attrib["classname"].replace(".", "/") + ".py::" + case.attrib["name"]
        state, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                state = "failed" if tag == "failure" else tag
                message = child.attrib.get("message", "")
                break
        found[nodeid] = (state, message)
    return found


def _run_nested(cluster: LocalCluster, *, harness: bool) -> NestedRun:
    """Run the selected tests in a fresh pytest process pointed at ``cluster``."""
    tmpdir = procs.private_dir("nested-tmp")
    # Like /tmp: as root, RabbitMQ runs as its own user, which must reach its directory in here.
    tmpdir.chmod(0o1777)
    junit = tmpdir / "junit.xml"
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        # A cluster directory lives from the fixture's start to the session's end (seconds at
        # least), so polling every 50 ms cannot miss one.
        while not done.wait(0.05):
            seen.update(p.name for p in tmpdir.glob("gitopsd-*"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # -p no:xdist: one process, whatever plugins the parent was run with.
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rs"]
        argv += [f"--junitxml={junit}", "--timeout=300", *HARNESS_TESTS, *PORTABLE_TESTS]
        out = subprocess.run(
            argv,
            cwd=ROOT,
            env=_nested_env(cluster.directory / "kubeconfig", tmpdir, harness=harness),
            capture_output=True,
            text=True,
            timeout=NESTED_TIMEOUT,
            check=False,
        )
        done.set()
        watcher.join(timeout=5)
        seen.update(p.name for p in tmpdir.glob("gitopsd-*"))
        outcomes = _outcomes(junit) if junit.exists() else {}
        return NestedRun(out.returncode, out.stdout + out.stderr, outcomes, frozenset(seen))
    finally:
        done.set()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _assert_given_cluster_untouched(cluster: LocalCluster, run: NestedRun) -> None:
    # The session read the kubeconfig (its "existing" work directory shows up in the watched
    # TMPDIR, so the watch works) and made no cluster directory of its own.
    assert any(name.startswith("gitopsd-existing-") for name in run.temp_dirs), run.temp_dirs
    assert not any(name.startswith("gitopsd-e2e-") for name in run.temp_dirs), run.temp_dirs
    assert all(procs.pid_alive(pid) for pid in cluster.processes.values()), cluster.processes
    nodes = kubectl(cluster.directory / "kubeconfig", "get", "nodes", "-o", "name")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.split() == ["node/kwok-node-0", "node/kwok-node-1"]


def test_recognised_harness_cluster_runs_every_test_against_it(given_cluster: LocalCluster) -> None:
    """Pointed at a harness cluster, the session runs the harness-only tests too, all passing, on that cluster."""
    run = _run_nested(given_cluster, harness=True)
    assert run.returncode == 0, run.output
    expected = {nodeid: ("passed", "") for nodeid in [*HARNESS_TESTS, *PORTABLE_TESTS]}
    assert run.outcomes == expected, run.output
    _assert_given_cluster_untouched(given_cluster, run)


def test_harness_off_skips_harness_only_tests_and_runs_the_rest(given_cluster: LocalCluster) -> None:
    """With GITOPSD_E2E_HARNESS=0 (as on kind) the harness-only tests skip with their reason, the rest pass."""
    run = _run_nested(given_cluster, harness=False)
    assert run.returncode == 0, run.output
    kubeconfig = given_cluster.directory / "kubeconfig"
    expected = {nodeid: ("passed", "") for nodeid in PORTABLE_TESTS}
    for nodeid, prefix in HARNESS_TESTS.items():
        expected[nodeid] = ("skipped", f"cluster of {kubeconfig} (ipv4): {HARNESS_ONLY[prefix]}")
    assert run.outcomes == expected, run.output
    _assert_given_cluster_untouched(given_cluster, run)
