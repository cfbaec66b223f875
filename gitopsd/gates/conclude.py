"""A gate's verdict and what follows it: on the record, told once, then ``onFailure`` (steps G4 and G5).

Split from ``runner`` (which starts and samples gates) because this is where a verdict turns
into consequences: the release record's verification annotations, the Event, the lifecycle
event ``verification.failed`` and ``gitopsd_verification_total``, and for a Failed verdict the
rollback (``rollback.perform``: the last verified release restored, the revision held), unless
the gate was a dry run, ``onFailure`` is Hold, the release is itself a rollback, or no verified
release is kept. Each step is idempotent, so a reconcile after a crash finishes what is left.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from gitopsd import rollback, status
from gitopsd.context import RunContext
from gitopsd.gates.evaluate import GatePhase
from gitopsd.gates.progress import GateProgress, stamp
from gitopsd.gates.spec import VerificationSpec
from gitopsd.outcome import Outcome, parse_revision
from gitopsd.releases import Ledger, ReleaseInfo, history

log = structlog.get_logger("gitopsd.gates")

VERIFIED = "Verified"


async def conclude(ctx: RunContext, gate: GateProgress, outcome: Outcome) -> Outcome:
    """G4 and G5: the verdict on the record and told once; then onFailure, unless a dry run or a rollback release."""
    spec, ledger = ctx.env.spec.verification, await ctx.ledger()
    release = ledger.records.get(gate.release)
    if not gate.recorded:
        if release is not None:
            release = await ledger.verified(release, str(gate.phase), gate.message, gate.enforce)
            ctx.stage(status.with_release(ctx.status, None, ledger.history()))
        await tell(ctx, gate)
        gate = replace(gate, recorded=True)
        # Written now: a verdict told must not be told again after a crash.
        await ctx.write_status(with_gate(ctx, gate))
    if gate.acted:
        return outcome
    action, target = decide(gate, release, ledger, spec)
    gate = replace(gate, acted=True, action=action)
    if target is None:
        ctx.stage(with_gate(ctx, gate))
        return outcome
    ctx.progress(f"release {gate.release} failed verification: rolling back to release {target.number}")
    # G5 before `acted` is saved: a crash in between leaves a rollback record the ledger finishes.
    result = await rollback.perform(
        ctx, target, trigger="auto:VerificationFailed", by="gitopsd", token=None, reason="VerificationFailed"
    )
    return replace(result, requeue_after=0.0)  # the restored release's own gate starts at once


def decide(
    gate: GateProgress, release: ReleaseInfo | None, ledger: Ledger, spec: VerificationSpec | None
) -> tuple[str, ReleaseInfo | None]:
    """What to do about a verdict: (what status says, the release to restore or None)."""
    if gate.phase is not GatePhase.FAILED:
        return ("none" if gate.phase is GatePhase.PASSED else "held: neither promoted nor rolled back"), None
    if not gate.enforce:
        return "none: dry run (enforce: false), recorded only", None
    if gate.on_failure != "Rollback":
        return "held (onFailure: Hold): kept, not verified", None
    if release is None or release.is_rollback:
        return "held: a rollback release is never rolled back automatically", None
    target = history.last_verified(ledger.records, before=gate.release)
    if target is None:
        return "held: no verified release to roll back to", None
    return f"rolled back to release {target.number}", target


async def tell(ctx: RunContext, gate: GateProgress) -> None:
    env, verdict = ctx.env, str(gate.phase)
    ctx.services.metrics.verification_total.labels(env.key, verdict).inc()
    text = f"Verification of release {gate.release} ({gate.revision}): {verdict}: {gate.message}"
    if not gate.enforce:
        text += " (dry run: recorded only)"
    if gate.phase is GatePhase.PASSED:
        await ctx.event("Normal", "VerificationPassed", text)
        return
    reason = "VerificationFailed" if gate.phase is GatePhase.FAILED else "VerificationInconclusive"
    await ctx.event("Warning", reason, text)
    ctx.announce("verification.failed", parse_revision(gate.revision), gate.reason or reason, text)


async def cancel(ctx: RunContext, ledger: Ledger, gate: GateProgress, why: str) -> None:
    env = ctx.env
    release = ledger.records.get(gate.release)
    if release is not None and release.verification is None:
        await ledger.verified(release, "Cancelled", f"cancelled: {why}", gate.enforce)
    ctx.services.metrics.verification_total.labels(env.key, "Cancelled").inc()
    log.info("verification cancelled", environment=env.key, release=gate.release, why=why)


def with_gate(ctx: RunContext, gate: GateProgress) -> dict[str, Any]:
    """The run's status with ``gate`` as ``status.verification`` and the Verified condition."""
    new = {**ctx.status, "verification": gate.to_status()}
    return with_condition(new, gate, ctx.env.generation, stamp(ctx.services.clock()))


def with_condition(st: dict[str, Any], gate: GateProgress, generation: int, now: str) -> dict[str, Any]:
    value: bool | None = {GatePhase.PASSED: True, GatePhase.FAILED: False, GatePhase.INCONCLUSIVE: False}.get(
        gate.phase
    )
    message = f"release {gate.release} ({gate.revision}): {gate.message}"
    if not gate.enforce:
        message += " (dry run: recorded only)"
    if gate.action and gate.action != "none":
        message += f"; {gate.action}"
    reason = gate.reason or str(gate.phase)
    return status.with_condition(st, VERIFIED, value, reason, message, generation, now[:19] + "Z")
