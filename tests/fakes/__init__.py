"""In-memory fakes of gitopsd's ports, for unit tests of the engine without a cluster."""

from tests.fakes.kinds import DEFAULT_KINDS, Kind
from tests.fakes.kube import FakeKube
from tests.fakes.workloads import failed, rolled_out

__all__ = ["DEFAULT_KINDS", "FakeKube", "Kind", "failed", "rolled_out"]
