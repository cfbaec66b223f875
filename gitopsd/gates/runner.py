"""The verification gate inside the reconciler: start it, sample it, conclude it, act on its verdict.

Where it runs. A gate lasts minutes (``deadline``), but each of its steps is short: one round
of instant queries, at most ``prometheus.timeout``. So the gate is a small state machine kept
in ``status.verification``, and every reconcile of the Environment advances it by one step
(``after``): the reconcile that finds the current release Healthy starts the gate; one whose
sample is due takes it; the daemon is asked to come back when the next sample is due
(``Outcome.requeue_after``) instead of after the whole ``interval``. No worker is held for
longer than one round, nothing else writes status or records concurrently (one reconcile per
Environment at a time), and a restarted daemon continues a gate exactly where its status says:
the counts, the next sample time and the deadline are all there (wall-clock times).

Order of writes (extending ``releases.ledger``'s steps 1-8 for a release N that passed its
health gate)::

    G1. status.verification = {release N, Running, deadline, nextSampleAt, metrics}
    G2. each round: the metrics' counts and newest samples in status.verification
    G3. the verdict in status.verification (and the Verified condition)
    G4. the verdict on record N (annotation release.gitopsd.dev/verification), then
        ``recorded: true``; Events, lifecycle event and metrics are told here, once
    G5. the consequence (onFailure: Rollback → a rollback release, steps 1-8 again), then
        ``acted: true`` (after a rollback, the restored release being current is the mark)

G4 and G5 are ``gates.conclude``. A kill at any point: before G3 the gate resumes; between
G3 and G5 the next reconcile finishes G4 and G5 (each is idempotent: a record already marked
is not marked again, and a rollback is only started while N is still the current release). A
newer release cancels the gate (its record says ``Cancelled``), and a changed
``spec.verification`` starts it over.

Outcomes: Passed → ``Verified=True``; Failed → ``Verified=False`` and ``onFailure`` (Rollback
restores the last verified release through ``rollback.perform`` and holds the revision; Hold
keeps it, unverified); Inconclusive (deadline, Prometheus errors at the deadline, a bad query)
→ Hold, never a rollback. With ``enforce: false`` every verdict is recorded and nothing is done.
A rollback release is verified too, but never rolled back automatically.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from gitopsd import status
from gitopsd.context import RunContext
from gitopsd.errors import GitopsdError
from gitopsd.gates import conclude, evaluate, progress, templates
from gitopsd.gates.evaluate import GatePhase, MetricProgress, Reading
from gitopsd.gates.progress import GateProgress, stamp
from gitopsd.gates.prometheus import Connection, Prometheus, PrometheusError, QueryRejected
from gitopsd.gates.spec import PrometheusSpec, VerificationSpec
from gitopsd.kube import secrets
from gitopsd.kube.secrets import SecretError
from gitopsd.model import Revision
from gitopsd.outcome import Outcome, parse_revision
from gitopsd.releases import Ledger, ReleaseInfo, Result
from gitopsd.spec import Environment

log = structlog.get_logger("gitopsd.gates")

VERIFIED = conclude.VERIFIED
VERIFY = "gitopsd.dev/verify"  # `gitopsd verify` asks here: {"token", "by", "dryRun"}


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    token: str
    by: str = "unknown"
    dry_run: bool = False


def pending_request(annotations: Mapping[str, str], st: Mapping[str, Any]) -> VerifyRequest | None:
    """The ``gitopsd verify`` request not handled yet, if any (an unreadable one is ignored)."""
    raw = annotations.get(VERIFY)
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        return None
    if (st.get("lastHandledVerify") or {}).get("token") == body["token"]:
        return None
    return VerifyRequest(body["token"], str(body.get("by") or "unknown"), bool(body.get("dryRun", False)))


def template_values(env: Environment, commit: str) -> dict[str, str]:
    values = dict(env.spec.substitute or {})
    values.update(namespace=env.spec.target_namespace or env.namespace, environment=env.name, revision=commit)
    return values


def resolved(env: Environment, spec: VerificationSpec, commit: str) -> list[str]:
    """Each metric's query with its variables filled in, for the release at ``commit``."""
    base = template_values(env, commit)
    return [templates.resolve(m.query, {**base, **({"window": m.window} if m.window else {})}) for m in spec.metrics]


# -- before a new release ----------------------------------------------------------------------


async def admit(ctx: RunContext, revision: Revision) -> None:
    """Refuse to deploy behind a gate that cannot work: a query Prometheus cannot parse, a missing Secret.

    Raises ``GitopsdError`` (the Environment is Stalled; nothing is applied). Prometheus being
    unreachable is not a reason to refuse: the gate then holds the release, and says why.
    """
    env, memory = ctx.env, ctx.services.gates
    spec = env.spec.verification
    if spec is None:
        return
    queries = resolved(env, spec, revision.commit)
    todo = [(i, q) for i, q in enumerate(queries) if not memory.knows(spec.prometheus.url, q)]
    if not todo:
        return
    connection = await connection_of(ctx, spec.prometheus)
    async with ctx.services.prometheus(connection) as prom:
        for i, query in todo:
            try:
                await prom.check(query)
            except QueryRejected as exc:
                name = spec.metrics[i].name
                raise GitopsdError(
                    f"spec.verification.metrics[{i}] ({name}): {exc.message}; {revision} was not deployed",
                    reason="InvalidVerificationQuery",
                ) from None
            except PrometheusError as exc:
                log.info("verification queries not checked before deploy", environment=env.key, error=exc.message)
                return
            memory.remember(spec.prometheus.url, query)


async def connection_of(ctx: RunContext, spec: PrometheusSpec) -> Connection:
    """Prometheus' address and credentials (``secretRef``: token, or username + password; ca.crt)."""
    env = ctx.env
    if not spec.secret_name:
        return Connection(spec.url, spec.timeout)
    data = await secrets.read(
        ctx.services.kube, env.namespace, spec.secret_name, where="spec.verification.prometheus.secretRef"
    )
    if "token" not in data and "username" not in data:
        raise SecretError(f"{data.label} holds neither 'token' nor 'username' and 'password'")
    return Connection(
        spec.url,
        spec.timeout,
        token=data.text("token").strip() if "token" in data else None,
        username=data.text("username") if "username" in data else None,
        password=data.text("password") if "password" in data else None,
        ca=data.get("ca.crt"),
    )


# -- after every reconcile ---------------------------------------------------------------------


async def after(ctx: RunContext, outcome: Outcome) -> Outcome:
    """Advance the current release's gate by one step; ``outcome`` with ``requeue_after`` when it runs."""
    env = ctx.env
    request = pending_request(env.annotations, ctx.status)
    quiet = env.spec.verification is None and not ctx.status.get("verification") and request is None
    if quiet and status.condition(ctx.status, VERIFIED) is None:
        return outcome
    ledger = await ctx.ledger()
    try:
        return await _advance(ctx, ledger, outcome, request)
    except PrometheusError as exc:  # never raised by sampling (those are Error samples); kept safe
        log.warning("verification step failed", environment=env.key, error=exc.message)
        return outcome


async def _advance(ctx: RunContext, ledger: Ledger, outcome: Outcome, request: VerifyRequest | None) -> Outcome:
    env, spec, now = ctx.env, ctx.env.spec.verification, ctx.services.clock()
    current = ledger.current(ctx.status)
    gate = progress.from_status(ctx.status.get("verification"))
    if gate is not None and gate.running and (not _is(current, gate) or spec is None):
        why = "spec.verification was removed" if spec is None else f"release {getattr(current, 'number', '?')} came"
        await conclude.cancel(ctx, ledger, gate, why)
        gate = None
    elif gate is not None and gate.phase.final and not (gate.recorded and gate.acted) and _is(current, gate):
        return await conclude.conclude(ctx, gate, outcome)
    if gate is not None and not _is(current, gate):
        gate = None
    if spec is None:
        new = dict(ctx.status)
        new.pop("verification", None)
        new = status.without_condition(new, VERIFIED)
        if request is not None:
            new = _answer(new, request, "Refused", "spec.verification is not set: there is no gate to run", None)
        ctx.stage(new)
        return outcome
    if current is None:
        if request is not None:
            ctx.stage(_answer(ctx.status, request, "Refused", "nothing is deployed yet", None))
        return outcome
    if gate is not None and gate.running and gate.spec_key != spec.key:
        log.info("spec.verification changed: the gate starts over", environment=env.key, release=current.number)
        gate = None
    answered = dict(ctx.status)
    if request is not None:
        if current.result is Result.HEALTHY:
            gate = await _start(ctx, spec, current, now, request)
            answered = _answer(answered, request, "Started", f"verifying release {current.number}", current.number)
        else:
            text = f"release {current.number} is {current.result}: only a Healthy release is verified"
            answered = _answer(answered, request, "Refused", text, current.number)
    if gate is None or gate.phase is GatePhase.PENDING:
        gate = await _initial(ctx, spec, current, now)
    if gate.running and (gate.due(now) or gate.deadline_reached(now)):
        gate = await _round(ctx, spec, gate, now, evidence_from(current, gate, spec))
    new = {**answered, "verification": gate.to_status()}
    ctx.stage(conclude.with_condition(new, gate, env.generation, stamp(now)))
    if gate.phase.final and not (gate.recorded and gate.acted):
        return await conclude.conclude(ctx, gate, outcome)
    return replace(outcome, requeue_after=gate.wait(now) if gate.running else None)


async def _initial(ctx: RunContext, spec: VerificationSpec, current: ReleaseInfo, now: datetime) -> GateProgress:
    """The gate of a release that has none yet: started, known from its record, or waiting for health."""
    if current.result is not Result.HEALTHY:
        text = f"release {current.number} is {current.result}: verification starts once it passes its health gate"
        return GateProgress(current.number, current.revision, GatePhase.PENDING, "AwaitingHealth", text,
                            enforce=spec.enforce, on_failure=spec.on_failure, spec_key=spec.key)  # fmt: skip
    if current.verification in (None, "Cancelled"):
        return await _start(ctx, spec, current, now, None)
    return GateProgress(
        current.number, current.revision, GatePhase(current.verification), current.verification,
        current.verification_message, enforce=current.verification_enforced, on_failure=spec.on_failure,
        spec_key=spec.key, recorded=True, acted=True,
    )  # fmt: skip


async def _start(
    ctx: RunContext,
    spec: VerificationSpec,
    current: ReleaseInfo,
    now: datetime,
    request: VerifyRequest | None,
) -> GateProgress:
    """G1: a new gate for ``current``; a query Prometheus cannot parse makes its metric Invalid at once."""
    env, revision = ctx.env, parse_revision(current.revision)
    queries = resolved(env, spec, revision.commit if revision else "")
    metrics = tuple(MetricProgress(m.name, q) for m, q in zip(spec.metrics, queries, strict=True))
    unchecked = [(i, q) for i, q in enumerate(queries) if not ctx.services.gates.knows(spec.prometheus.url, q)]
    if unchecked:
        metrics = await _check(ctx, spec, metrics, unchecked)
    enforce = spec.enforce and not (request is not None and request.dry_run)
    gate = progress.start(
        current.number, current.revision, metrics, now=now, start_delay=spec.start_delay, deadline=spec.deadline,
        enforce=enforce, on_failure=spec.on_failure, spec_key=spec.key,
        request=request.token if request else None, requested_by=request.by if request else None,
    )  # fmt: skip
    log.info("verification started", environment=env.key, release=current.number, metrics=len(metrics))
    if any(m.phase is evaluate.MetricPhase.INVALID for m in metrics):
        found = evaluate.verdict(metrics, spec.samples, deadline_reached=False)
        gate = replace(gate, phase=found.phase, reason=found.reason, message=found.message, finished_at=stamp(now))
    return gate


async def _check(
    ctx: RunContext,
    spec: VerificationSpec,
    metrics: tuple[MetricProgress, ...],
    unchecked: list[tuple[int, str]],
) -> tuple[MetricProgress, ...]:
    out = list(metrics)
    try:
        connection = await connection_of(ctx, spec.prometheus)
        async with ctx.services.prometheus(connection) as prom:
            for i, query in unchecked:
                try:
                    await prom.check(query)
                    ctx.services.gates.remember(spec.prometheus.url, query)
                except QueryRejected as exc:
                    out[i] = replace(out[i], phase=evaluate.MetricPhase.INVALID, message=exc.message)
    except GitopsdError as exc:  # unreachable or no credentials: sampling will say so, as Errors
        log.info("verification queries not checked", environment=ctx.env.key, error=exc.message)
    return tuple(out)


async def _round(
    ctx: RunContext, spec: VerificationSpec, gate: GateProgress, now: datetime, not_before: datetime | None
) -> GateProgress:
    """G2 (and G3 when it decides): one instant query per metric still sampling, then the verdict."""
    env = ctx.env
    if gate.due(now):
        wanted = [m for m in gate.metrics if m.sampling]
        ctx.progress(f"verification of release {gate.release}: sampling {len(wanted)} metrics")
        readings = await _read_all(ctx, spec.prometheus, [m.query for m in wanted], not_before)
        by_name = {m.name: m for m in spec.metrics}
        at = stamp(now)
        updated = dict(zip((m.name for m in wanted), readings, strict=True))
        metrics = []
        for m in gate.metrics:
            if m.name in updated:
                before = m
                m = evaluate.record(m, updated[m.name], at, by_name[m.name], spec.samples)
                outcome = m.samples[-1].outcome if m.samples and m.samples != before.samples else None
                if outcome is not None:
                    ctx.services.metrics.verification_samples.labels(env.key, str(outcome)).inc()
            metrics.append(m)
        gate = replace(gate, metrics=tuple(metrics), next_sample_at=stamp(now + timedelta(seconds=spec.interval)))
    found = evaluate.verdict(gate.metrics, spec.samples, deadline_reached=gate.deadline_reached(now))
    gate = replace(gate, phase=found.phase, reason=found.reason, message=found.message)
    if found.phase.final:
        gate = replace(gate, finished_at=stamp(now), next_sample_at="")
        log.info("verification concluded", environment=env.key, release=gate.release, verdict=str(found.phase),
                 reason=found.reason)  # fmt: skip
    return gate


async def _read_all(
    ctx: RunContext, spec: PrometheusSpec, queries: list[str], not_before: datetime | None
) -> list[Reading]:
    if not queries:
        return []
    try:
        connection = await connection_of(ctx, spec)
    except GitopsdError as exc:
        return [Reading.failed(exc.message)] * len(queries)

    async def one(prom: Prometheus, query: str) -> Reading:
        try:
            return await prom.query(query, not_before)
        except PrometheusError as exc:
            return Reading.failed(exc.message)

    async with ctx.services.prometheus(connection) as prom:
        return list(await asyncio.gather(*(one(prom, q) for q in queries)))


def evidence_from(current: ReleaseInfo, gate: GateProgress, spec: VerificationSpec) -> datetime | None:
    """The instant before which Prometheus data says nothing about ``current``: its start plus the start delay.

    Capped at the gate's own start, so the first sample (taken ``startDelay`` after it) can count
    scrapes made while it waited. A value built only from older data (the previous release's,
    returned by Prometheus' lookback after an outage) is then NoData, never Fail.
    """
    applied = progress.parse_time(current.applied_at)
    started = progress.parse_time(gate.started_at)
    if applied is None:
        return started
    after_delay = applied + timedelta(seconds=spec.start_delay)
    return min(after_delay, started) if started is not None else after_delay


def _is(current: ReleaseInfo | None, gate: GateProgress) -> bool:
    return current is not None and current.number == gate.release


def _answer(
    st: Mapping[str, Any], request: VerifyRequest, result: str, message: str, release: int | None
) -> dict[str, Any]:
    new = dict(st)
    entry: dict[str, Any] = {"token": request.token, "result": result, "message": message}
    if release is not None:
        entry["release"] = release
    new["lastHandledVerify"] = entry
    return new
