"""A refused spec: Ready False and Stalled naming the field, written once per change; retried on its interval."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd import environments
from gitopsd.daemon.invalid import interval_of, report_invalid
from gitopsd.daemon.settings import INVALID_RETRY
from gitopsd.errors import SpecError
from gitopsd.events import EventRecorder
from gitopsd.status import condition
from tests.fakes import FakeKube


def raw(interval: Any = "5m") -> dict[str, Any]:
    source = {"url": "https://git.example.com/x.git", "branch": "main"}
    meta = {"name": "shop", "namespace": "apps"}
    return {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment", "metadata": meta,
            "spec": {"source": source, "interval": interval}}  # fmt: skip


async def test_a_refused_spec_is_stalled_naming_the_field_and_told_once() -> None:
    """Status Ready False / Stalled with the parser's message; a second report of the same error writes nothing."""
    kube = FakeKube(namespaces=("apps",))
    kube.seed(raw())
    obj = await environments.get(kube, "apps", "shop")
    error = SpecError("kubeConfig.secretRef.name", "must be a Secret name")
    await report_invalid(kube, EventRecorder(kube), obj, error)
    written = await environments.get(kube, "apps", "shop")
    stalled = condition(written.get("status") or {}, "Stalled")
    ready = condition(written.get("status") or {}, "Ready")
    assert stalled is not None and stalled["status"] == "True"
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert ready["message"] == "spec.kubeConfig.secretRef.name: must be a Secret name"
    kube.stats.reset()
    await report_invalid(kube, EventRecorder(kube), written, error)
    assert kube.stats.writes == 0


@pytest.mark.parametrize(("interval", "seconds"), [("5m", 300.0), ("0.5s", INVALID_RETRY), ("soon", INVALID_RETRY)])
def test_a_refused_spec_is_looked_at_again_on_its_interval_if_it_reads(interval: str, seconds: float) -> None:
    """Its own interval when readable (at least 1s, as the CRD says), else a minute."""
    assert interval_of(raw(interval)) == seconds
