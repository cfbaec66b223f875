"""Session fixtures: real local clusters (IPv4 and IPv6) and real services, torn down after.

Missing binaries or services fail the run with the reason instead of skipping: a suite that
quietly skips its integration tests proves nothing.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from types import FrameType

import pytest

from e2e import gitserver, services, sqs
from e2e.binaries import Binaries, BinariesUnavailable, ensure_binaries
from e2e.cluster import ClusterInfo, IPFamily, LocalCluster, new_cluster_dir
from e2e.procs import log_tail, reap_stale_dirs


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # pytest runs fixture teardown on KeyboardInterrupt but not on SIGTERM: make them the same,
    # so a CI timeout or `kill` still stops clusters and services.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
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


@pytest.fixture(scope="session")
def cluster_ipv4(request: pytest.FixtureRequest, binaries: Binaries) -> Iterator[ClusterInfo]:
    """A ready local cluster on 127.0.0.1, shared by the whole session."""
    yield from _run_cluster(request, "ipv4", binaries)


@pytest.fixture(scope="session")
def cluster_ipv6(request: pytest.FixtureRequest, binaries: Binaries) -> Iterator[ClusterInfo]:
    """A ready local cluster on ::1 with an IPv6 service CIDR, shared by the whole session."""
    yield from _run_cluster(request, "ipv6", binaries)


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
