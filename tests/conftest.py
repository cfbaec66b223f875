"""Session fixtures: real local clusters (IPv4 and IPv6) and real services, torn down after.

Missing binaries or services fail the run with the reason instead of skipping: a suite that
quietly skips its integration tests proves nothing.

``GITOPSD_E2E_KUBECONFIG=PATH`` runs the suite against an existing cluster instead (kind, via
``scripts/kind-e2e.sh``; or a harness cluster from ``python -m e2e.cluster up``): ``cluster_ipv4``
and ``cluster_ipv6`` yield it for the IP families it serves, and on a cluster that is not a
harness cluster of this machine the tests that need one are skipped, each with the reason
(``HARNESS_ONLY``).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from e2e import gitserver, services, sqs
from e2e.binaries import Binaries, BinariesUnavailable, ensure_binaries
from e2e.cluster import ClusterInfo, IPFamily, LocalCluster, new_cluster_dir
from e2e.kind import existing
from e2e.procs import log_tail, private_dir, reap_stale_dirs

# Tests that need a harness cluster of this machine, by node id prefix, and why: skipped when
# GITOPSD_E2E_KUBECONFIG names another cluster (kind), if they use a cluster (or the binaries).
_NO_LOCALHOST = "the API server cannot reach processes on this machine (ExternalName -> localhost)"
HARNESS_ONLY: dict[str, str] = {
    "tests/e2e/test_lifecycle.py": "tests the local harness itself (starting and stopping its clusters)",
    "tests/e2e/test_workloads.py::test_api_version_is_the_built_release": "checks the harness's kube-apiserver build",
    "tests/e2e/test_aggregation.py": _NO_LOCALHOST,
    # The adapter runs on this machine behind the cluster's aggregator; on kind the installed
    # adapter (a pod) is checked by tests/manifests instead.
    "tests/metrics_adapter/": _NO_LOCALHOST,
    "tests/badinput/test_adapter.py": "talks to an adapter on this machine with the harness's front-proxy certificate",
}
_CLUSTER_FIXTURES = frozenset({"cluster", "cluster_ipv4", "cluster_ipv6", "binaries"})


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # pytest runs fixture teardown on KeyboardInterrupt but not on SIGTERM: make them the same,
    # so a CI timeout or `kill` still stops clusters and services.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # A shell without job control starts background commands (`./scripts/test.sh &`, nohup) with
    # SIGINT ignored, and every process started from here would inherit that: the tests that
    # press Ctrl-C on the demo or the CLI would then wait on a child that cannot hear it.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # A run killed outright (SIGKILL) took its processes with it (PR_SET_PDEATHSIG) but left
    # its directories: remove those of runs that are gone.
    reap_stale_dirs()


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The control-plane binaries, built on first use and cached by version."""
    try:
        return ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def _run_cluster(request: pytest.FixtureRequest, family: IPFamily, binaries: Binaries) -> Iterator[ClusterInfo]:
    cluster = LocalCluster(new_cluster_dir(f"e2e-{family}"), family, binaries=binaries)
    failed_before = request.session.testsfailed
    try:
        yield cluster.start()
    finally:
        if request.session.testsfailed > failed_before:
            # The directory goes away with the cluster: show what its components said first.
            for log in sorted((cluster.directory / "logs").glob("*.log")):
                print(f"\n--- {family} {log.name} (last lines) ---\n{log_tail(log, 30)}", file=sys.__stderr__)
        cluster.stop(remove=True)


_EXISTING: list[existing.ExistingCluster | None] = []


def _existing() -> existing.ExistingCluster | None:
    """The cluster of GITOPSD_E2E_KUBECONFIG (read once per session), or None."""
    if not _EXISTING:
        try:
            found = None
            if os.environ.get(existing.ENV_KUBECONFIG, "").strip():
                found = existing.from_environment(private_dir("existing"))
            _EXISTING.append(found)
        except existing.ExistingClusterError as exc:
            pytest.exit(str(exc), returncode=2)
    return _EXISTING[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    found = _existing() if os.environ.get(existing.ENV_KUBECONFIG) else None
    if found is None or found.harness:
        return
    for item in items:
        if not _CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            continue
        path = Path(str(item.path)).relative_to(config.rootpath).as_posix()
        nodeid = path + item.nodeid[item.nodeid.index("::") :] if "::" in item.nodeid else path
        for prefix, why in HARNESS_ONLY.items():
            if nodeid.startswith(prefix):
                item.add_marker(pytest.mark.skip(reason=f"{found.describe()}: {why}"))
                break


def _cluster(request: pytest.FixtureRequest, family: IPFamily) -> Iterator[ClusterInfo]:
    found = _existing()
    if found is None:
        yield from _run_cluster(request, family, request.getfixturevalue("binaries"))
        return
    if family not in found.infos:
        pytest.skip(f"{found.describe()}: no {family}")
    yield found.infos[family]


@pytest.fixture(scope="session")
def existing_cluster() -> existing.ExistingCluster | None:
    """The cluster named by GITOPSD_E2E_KUBECONFIG, or None when the harness starts its own."""
    return _existing()


@pytest.fixture(scope="session")
def cluster_ipv4(request: pytest.FixtureRequest) -> Iterator[ClusterInfo]:
    """A ready local cluster on 127.0.0.1, shared by the whole session (or the existing one's IPv4)."""
    yield from _cluster(request, "ipv4")


@pytest.fixture(scope="session")
def cluster_ipv6(request: pytest.FixtureRequest) -> Iterator[ClusterInfo]:
    """A ready local cluster on ::1 with an IPv6 service CIDR, shared by the session (or the existing one's IPv6)."""
    yield from _cluster(request, "ipv6")


@pytest.fixture(scope="session", params=["ipv4", "ipv6"])
def cluster(request: pytest.FixtureRequest) -> ClusterInfo:
    """Run the test once against the IPv4 cluster and once against the IPv6 one."""
    info: ClusterInfo = request.getfixturevalue(f"cluster_{request.param}")
    return info


@pytest.fixture(scope="session")
def prometheus() -> Iterator[services.Prometheus]:
    """A real Prometheus scraping targets that tests register."""
    prom = services.start_prometheus()
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[services.RabbitMQ]:
    """A real RabbitMQ node with the management plugin."""
    rabbit = services.start_rabbitmq()
    yield rabbit
    rabbit.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.Redis]:
    """A real redis-server without persistence."""
    server = services.start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[sqs.SQSServer]:
    """A real SQS-compatible server (moto) that checks SigV4 signatures, with an IAM user and an IRSA role."""
    server = sqs.start_sqs()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def git_https_server() -> Iterator[gitserver.GitHttpsServer]:
    """git http-backend behind nginx: TLS from a test CA, basic auth (and a bearer-token path), loopback port."""
    server = gitserver.start_git_https()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def git_ssh_server() -> Iterator[gitserver.GitSshServer]:
    """sshd on a loopback port serving Git repositories to one test key, with its own host key."""
    server = gitserver.start_git_ssh()
    yield server
    server.stop()
