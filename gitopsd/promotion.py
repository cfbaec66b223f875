"""The promotion guard: an Environment takes a revision only once the Environments it names ran it well.

``develop → dev → main → staging → tag → prod`` is a pipeline, so prod can insist on getting
only what staging proved::

    promotion:
      requireHealthyIn: [{name: staging}]   # Environments in the same namespace
      match: commit                         # or content: the same rendered digest

Before a new release is recorded, each named Environment's release records are read
(metadata only, one request): the revision is admitted when one of them deployed the same
commit (``match: content``: the same rendered digest, after substitution) with the result
Healthy, and, when that Environment verifies with ``enforce: true``, passed its verification.
Otherwise the revision waits: the current release stays up (drift is still corrected from its
record), ``Ready=False`` with reason ``AwaitingPromotion`` and a message naming each
Environment that lacks it and how (never deployed it, Failed, still verifying, failed
verification), and a Normal Event says so once. It is checked again on every interval, so the
revision deploys by itself once staging has it. Rollbacks and held revisions are not subject
to the guard; only new releases are.

A named Environment that does not exist, or a cycle of requirements (``prod`` requires
``staging`` which requires ``prod``), stops the deploy with ``Stalled`` and the field named;
an Environment naming itself is refused at admission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gitopsd import environments, status
from gitopsd.context import RunContext
from gitopsd.errors import GitopsdError, SpecError
from gitopsd.kube import KubeAPI, NotFound
from gitopsd.model import Revision
from gitopsd.outcome import Outcome, parse_revision
from gitopsd.releases import Owner, ReleaseInfo, ReleaseStore, Result
from gitopsd.releases.store import Listing
from gitopsd.rollout import Step, run
from gitopsd.spec import Environment, parse_environment

REASON = "AwaitingPromotion"
#: Reads an Environment's release records from the cluster that keeps them.
Scan = Callable[[Environment, Owner], Awaitable[Listing]]
MAX_DEPTH = 10


async def guard(ctx: RunContext, current: ReleaseInfo | None, revision: Revision, digest: str) -> Outcome | None:
    """None when ``revision`` may be deployed; else keep the current release and say what it waits for."""
    env = ctx.env
    spec = env.spec.promotion
    if spec is None:
        return None
    lacking: list[str] = []
    for index, name in enumerate(spec.require_healthy_in):
        problem = await lacks(ctx.services.kube, env, index, name, revision, digest, spec.match, ctx.services.scan)
        if problem is not None:
            lacking.append(problem)
    if not lacking:
        return None
    message = f"{revision} waits for promotion: " + "; ".join(lacking)
    ctx.progress(message)
    old = status.condition(ctx.status, status.READY) or {}
    if old.get("reason") != REASON or not str(old.get("message", "")).startswith(message):
        await ctx.event("Normal", REASON, message)
    if current is None:
        now = environments.now_rfc3339()
        new = status.waiting(ctx.status, None, REASON, message + " (nothing deployed yet)", env.generation, now)
        ctx.stage(status.handled(new, ctx.requested_at))
        return Outcome("unchanged", revision, message=message)
    ledger = await ctx.ledger()
    manifests = await ledger.bundle(current.number)
    ledger.keep_bundle_of(current.number)
    step = Step(manifests, current.revision, current, fresh=current.result is Result.PENDING, awaiting=message)
    return await run(ctx, step)


async def lacks(
    kube: KubeAPI,
    env: Environment,
    index: int,
    name: str,
    revision: Revision,
    digest: str,
    match: str,
    scan: Scan | None = None,
) -> str | None:
    """Why Environment ``name`` does not vouch for ``revision`` (None: it does).

    Its records are read where it keeps them (``scan``: on its own target cluster, which may be
    another than ``env``'s; default: ``kube``). Raises ``GitopsdError`` when it does not exist or
    the requirements form a cycle.
    """
    where = f"spec.promotion.requireHealthyIn[{index}]"
    source = await _environment(kube, env.namespace, name, where)
    if source is None:
        return f"{name}'s spec is invalid, so nothing it ran counts"
    await _no_cycle(kube, env, source, where)
    owner = Owner(source.namespace, source.name, source.uid)
    listing = await (scan(source, owner) if scan is not None else ReleaseStore(kube).scan(owner))
    records = sorted(listing.records.values(), key=lambda r: r.number, reverse=True)
    if match == "content":
        candidates = [r for r in records if r.digest == digest]
        what = f"the same rendered content (digest {digest.removeprefix('sha256:')[:12]})"
    else:
        candidates = [r for r in records if _commit(r.revision) == revision.commit]
        what = f"commit {revision.short}"
    verification = source.spec.verification
    verifies = verification is not None and verification.enforce
    if any(r.result is Result.HEALTHY and (r.verified or not verifies) for r in candidates):
        return None
    if not candidates:
        current = next((r for r in records if r.number == source.status.get("release")), None)
        now = f" (it runs release {current.number}, {current.revision})" if current else " (it has no releases yet)"
        return f"{name} never deployed {what}{now}"
    return f"{name} deployed {what} as release {candidates[0].number}, {_state(candidates[0])}"


def _state(release: ReleaseInfo) -> str:
    if release.result is Result.PENDING:
        return "which is still being deployed"
    if release.result is not Result.HEALTHY:
        return f"which is {release.result}" + (f" ({release.reason})" if release.reason else "")
    if release.verification is None:
        return "which is Healthy and still being verified"
    if release.verification == "Failed":
        return "which failed verification"
    if release.verification == "Inconclusive":
        return f"whose verification was inconclusive ({release.verification_message or 'no verdict'})"
    if release.verification == "Passed":
        return "which passed verification only in a dry run (enforce: false)"
    return f"whose verification was {release.verification.lower()}"


async def _environment(kube: KubeAPI, namespace: str, name: str, where: str) -> Environment | None:
    try:
        raw = await environments.get(kube, namespace, name)
    except NotFound:
        raise GitopsdError(
            f"{where}.name: Environment {namespace}/{name} does not exist; no new revision is deployed until it does",
            reason="PromotionSourceNotFound",
        ) from None
    try:
        return parse_environment(raw)
    except SpecError:
        return None


async def _no_cycle(kube: KubeAPI, env: Environment, source: Environment, where: str) -> None:
    """Follow the requirements from ``source``; coming back to ``env`` is a cycle (a deadlock: refuse)."""
    stack: list[tuple[Environment, Sequence[str]]] = [(source, (env.name, source.name))]
    seen = {env.name, source.name}
    while stack:
        node, path = stack.pop()
        if node.spec.promotion is None or len(path) > MAX_DEPTH:
            continue
        for name in node.spec.promotion.require_healthy_in:
            if name == env.name:
                raise GitopsdError(
                    f"{where}.name: the promotion requirements form a cycle ({' → '.join([*path, name])}): "
                    "none of them could ever deploy; remove one",
                    reason="PromotionCycle",
                )
            if name in seen:
                continue
            seen.add(name)
            try:
                nxt = parse_environment(await environments.get(kube, env.namespace, name))
            except (NotFound, SpecError):
                continue
            stack.append((nxt, (*path, name)))


def _commit(text: str) -> str | None:
    revision = parse_revision(text)
    return revision.commit if revision else None
