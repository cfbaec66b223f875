"""The verification gate after the health gate: Rollback or Hold on a failed metric, a dry run
records only, Prometheus unreachable never rolls back. The clock moves between reconciles."""

from __future__ import annotations

from typing import Any

from tests.unit.decisions.conftest import NAMESPACE, World, crash
from tests.unit.decisions.ports import Crash, app

START_DELAY, INTERVAL = 60, 30
QUERY = 'sum(rate(http_errors_total{namespace="{{.namespace}}"}[1m]))'


def verification(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "prometheus": {"url": "http://prometheus.example:9090"},
        "startDelay": f"{START_DELAY}s",
        "interval": f"{INTERVAL}s",
        "samples": 2,
        "deadline": "5m",
        "metrics": [{"name": "error-ratio", "query": QUERY, "range": {"max": 0.01}}],
    }
    spec.update(fields)
    return spec


async def verified_release_1(world: World, **fields: Any) -> str:
    """Release 1 (A) deployed and passing both samples; returns its revision."""
    a = world.source.push("A", app("1"))
    world.create("shop", verification=verification(**fields))
    first = await world.reconcile("shop")
    assert first.release == 1 and first.requeue_after == START_DELAY  # the gate started, first sample due then
    world.clock.advance(START_DELAY + 1)
    await world.reconcile("shop")
    world.clock.advance(INTERVAL + 1)
    await world.reconcile("shop")
    verified = await world.condition("shop", "Verified")
    assert verified is not None and verified["status"] == "True", verified
    return str(a)


async def failing_release_2(world: World) -> str:
    """Release 2 (B) deployed healthy, then its first sample fails; returns its revision."""
    b = world.source.push("B", app("2"))
    outcome = await world.reconcile("shop")
    assert (outcome.release, outcome.verdict) == (2, "Healthy")
    world.prometheus.value = 0.5
    world.clock.advance(START_DELAY + 1)
    await world.reconcile("shop")
    return str(b)


async def test_a_passing_gate_is_recorded_on_the_release(world: World) -> None:
    """Both samples in range: record 1 says Passed (enforced), a VerificationPassed Event, the query was filled in."""
    await verified_release_1(world)
    record = (await world.records("shop"))[1]
    assert (record.verification, record.verification_enforced) == ("Passed", True)
    assert "VerificationPassed" in await world.reasons("shop")
    assert world.prometheus.queries[0] == 'sum(rate(http_errors_total{namespace="shop"}[1m]))'


async def test_no_sample_is_taken_before_the_start_delay(world: World) -> None:
    """Reconciles before startDelay do not query Prometheus; the gate says when the first sample is."""
    world.source.push("A", app("1"))
    world.create("shop", verification=verification())
    await world.reconcile("shop")
    world.clock.advance(START_DELAY - 5)
    await world.reconcile("shop")
    assert world.prometheus.queries == []
    verified = await world.condition("shop", "Verified")
    assert verified is not None and verified["status"] == "Unknown"


async def test_a_failed_metric_rolls_back_to_the_last_verified_release(world: World) -> None:
    """onFailure Rollback: release 2 fails verification, release 3 restores 1, revision 2 held."""
    a = await verified_release_1(world)
    b = await failing_release_2(world)
    records = await world.records("shop")
    assert records[2].verification == "Failed" and str(records[2].result) == "RolledBack"
    assert records[3].restored_from == 1 and records[3].trigger == "auto:VerificationFailed"
    st = await world.status("shop")
    assert st["release"] == 3 and st["lastAppliedRevision"] == a
    assert (st["held"]["revision"], st["held"]["reason"]) == (b, "VerificationFailed")
    assert world.image() == "shop:1"
    reasons = await world.reasons("shop")
    assert "VerificationFailed" in reasons and "RolledBack" in reasons
    world.clock.advance(START_DELAY + 1)  # release 3's own gate fails too: a rollback is never rolled back
    await world.reconcile("shop")
    assert set(await world.records("shop")) == {1, 2, 3}


async def test_on_failure_hold_keeps_the_release_unverified(world: World) -> None:
    """onFailure Hold: release 2 stays current and Healthy, Verified False, no rollback record."""
    await verified_release_1(world, onFailure="Hold")
    b = await failing_release_2(world)
    records = await world.records("shop")
    assert set(records) == {1, 2} and str(records[2].result) == "Healthy"
    assert (records[2].verification, records[2].verification_enforced) == ("Failed", True)
    st = await world.status("shop")
    assert st["release"] == 2 and st["lastAppliedRevision"] == b and "held" not in st
    verified = await world.condition("shop", "Verified")
    assert verified is not None and verified["status"] == "False" and "onFailure: Hold" in verified["message"]
    assert world.image() == "shop:2"


async def test_a_dry_run_gate_records_only(world: World) -> None:
    """enforce false: the failed verdict is on record as not enforced, and nothing is rolled back."""
    await verified_release_1(world, enforce=False)
    await failing_release_2(world)
    records = await world.records("shop")
    assert set(records) == {1, 2} and (records[2].verification, records[2].verification_enforced) == ("Failed", False)
    assert (await world.status("shop"))["release"] == 2
    verified = await world.condition("shop", "Verified")
    assert verified is not None and verified["status"] == "False" and "dry run" in verified["message"]
    assert world.image() == "shop:2"


async def test_prometheus_unreachable_until_the_deadline_holds_never_rolls_back(world: World) -> None:
    """Every sample an error: at the deadline the gate is Inconclusive and release 2 is kept."""
    await verified_release_1(world)
    world.source.push("B", app("2"))
    await world.reconcile("shop")
    world.prometheus.unreachable = True
    world.clock.advance(START_DELAY + 1)
    for _ in range(8):  # samples every INTERVAL until past the 5m deadline
        await world.reconcile("shop")
        world.clock.advance(INTERVAL + 1)
    await world.reconcile("shop")
    records = await world.records("shop")
    assert set(records) == {1, 2} and records[2].verification == "Inconclusive"
    assert (await world.status("shop"))["release"] == 2 and world.image() == "shop:2"
    verified = await world.condition("shop", "Verified")
    assert verified is not None and verified["status"] == "False"


async def test_a_crash_between_the_verdict_and_the_rollback_is_finished_once(world: World) -> None:
    """Killed as the rollback record is created (after G4): the next process rolls back, told once."""
    await verified_release_1(world)
    b = world.source.push("B", app("2"))
    await world.reconcile("shop")
    world.prometheus.value = 0.5
    world.clock.advance(START_DELAY + 1)
    world.kube.fail_next("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", Crash())
    await crash(world)
    assert (await world.records("shop"))[2].verification == "Failed"
    assert (await world.status("shop"))["release"] == 2
    outcome = await world.reconcile("shop")
    assert outcome.release == 3
    records = await world.records("shop")
    assert set(records) == {1, 2, 3} and records[3].restored_from == 1
    assert (await world.status("shop"))["held"]["revision"] == str(b)
    told = [e for e in await world.events("shop") if e[1] == "VerificationFailed"]
    assert len(told) == 1
