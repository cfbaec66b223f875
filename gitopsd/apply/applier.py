"""One sync of an Environment's rendered objects: all-or-nothing server-side apply, then prune.

The order of one ``Applier.sync``:

1. **Plan** (``plan``): label every object ``gitopsd.dev/environment=<owner>``, resolve its type
   through discovery, sort it into a stage. Unknown kinds, objects without a namespace and
   duplicates are refused here.
2. **Observe** (``live``): from the cluster's watch cache for the kinds it serves (no request);
   else one list by our label per kind with many objects, GETs (or a namespace list) for the rest.
3. **Dry-run** (``ssa.preflight``) every object that can be dry-run now, in parallel: the server
   answers with what the object would become. Objects the memo shows untouched since our last
   apply are not even dry-run. An object labelled for another Environment, an Apply manager's
   conflicting field (unless ``force``) or any rejection by the server collects a rejection;
   **if there is any, nothing is written** and ``ApplyError`` names every rejected object.
   A field we set that an Update manager changed since (``kubectl scale``/``edit``) is taken
   back and reported as drift-corrected with its path (``conflicts`` has the rule).
4. **Stage 0**: CRDs and Namespaces that changed are applied, then awaited (Established /
   Active, bounded by ``establish_timeout``).

   *The one exception to "nothing written before every dry-run passed"*: an object whose type
   is defined by a CRD in this same bundle (and not served yet), or whose Namespace is in this
   bundle and does not exist yet, cannot be dry-run before stage 0 exists. Such objects are
   dry-run right after stage 0, before anything else is written. If one of them is refused,
   the sync stops with only the bundle's own CRDs and Namespaces applied (they are inert
   without their contents) and the error's ``inventory`` includes them, so they stay tracked.
5. **Stages 1 and 2**: other cluster-scoped objects, then namespaced ones, in parallel within a
   stage (``concurrency`` requests in flight). Objects whose dry-run equalled the live object
   are not sent: an unchanged sync makes no writes.
6. **Prune** (``prune``) what left Git, unless the render is empty and ``allow_empty`` is off.

``Applier.diff`` runs steps 1-3 and reports instead of writing; ``Applier.wait`` is the health
gate (``wait``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gitopsd.apply import diff as diffing
from gitopsd.apply import foundation
from gitopsd.apply import live as observing
from gitopsd.apply import plan as planning
from gitopsd.apply import prune as pruning
from gitopsd.apply import wait as waiting
from gitopsd.apply.compare import metadata_differs
from gitopsd.apply.errors import (
    DependencyNotReady,
    InvalidOwner,
    PruneFailed,
    Rejection,
    WriteFailed,
    describe,
    rejected,
)
from gitopsd.apply.inventory import Inventory, InventoryEntry
from gitopsd.apply.live import LiveState
from gitopsd.apply.memo import ApplyMemo
from gitopsd.apply.parallel import bounded
from gitopsd.apply.plan import Desired, Plan, Stage
from gitopsd.apply.result import WRITES, Action, ObjectResult, SyncResult
from gitopsd.apply.ssa import Decision, ServerSideApply, slim
from gitopsd.health import HealthReport
from gitopsd.kube import ApiError, KubeAPI, Resource, UnknownKind
from gitopsd.kube.watchcache import WatchCache
from gitopsd.model import FIELD_MANAGER, Manifest, ObjectRef

EMPTY_RENDER = "the render is empty and allowEmpty is off: nothing pruned"


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    """How to sync. ``owner`` is ``<namespace>.<name>`` of the Environment (the label value)."""

    owner: str
    prune: bool = True
    allow_empty: bool = False
    #: Take over fields another server-side *Apply* manager owns (Update managers' are always taken back).
    force: bool = False

    def __post_init__(self) -> None:
        problem = planning.owner_problem(self.owner)
        if problem:
            raise InvalidOwner(problem)


class Applier:
    def __init__(
        self,
        kube: KubeAPI,
        *,
        field_manager: str = FIELD_MANAGER,
        concurrency: int = 16,
        establish_timeout: float = 60.0,
        cache: WatchCache | None = None,
        written: dict[ObjectRef, dict[str, Any]] | None = None,
    ) -> None:
        """``cache``: the cluster's watch cache; live state and health are read from it for the
        kinds it serves (GETs and lists otherwise, as without it)."""
        self.kube = kube
        self.cache = cache
        # What our writes returned (slim), until a health wait read them: a cached copy older
        # than this must not pass the health gate (the watch may lag behind our own write).
        self._written: dict[ObjectRef, dict[str, Any]] = {} if written is None else written
        self.concurrency = concurrency
        self.establish_timeout = establish_timeout
        self.field_manager = field_manager
        self._ssa = ServerSideApply(kube, field_manager)
        #: Never list a kind cluster-wide (an impersonated account's rights usually end at namespaces).
        self.per_namespace = False

    def acting_as(self, kube: KubeAPI) -> Applier:
        """This applier writing through ``kube`` (another identity of the same cluster: see
        ``gitopsd.tenancy``). The watch cache and the memory of our own writes are shared, so a
        health wait of either sees what both wrote; lists stay per namespace."""
        if kube is self.kube:
            return self
        view = Applier(
            kube,
            field_manager=self.field_manager,
            concurrency=self.concurrency,
            establish_timeout=self.establish_timeout,
            cache=self.cache,
            written=self._written,
        )
        view.per_namespace = True
        return view

    # -- sync ------------------------------------------------------------------------------

    async def sync(
        self,
        manifests: Sequence[Manifest],
        previous: Inventory,
        options: ApplyOptions,
        memo: ApplyMemo | None = None,
    ) -> SyncResult:
        """Apply ``manifests`` all-or-nothing, prune what left ``previous``; see the module doc.

        Raises an ``ApplyError`` subclass: ``DryRunFailed`` / ``OwnershipConflict`` /
        ``FieldConflict`` (nothing written), ``DependencyNotReady``, ``WriteFailed``,
        ``PruneFailed`` (everything else done; ``.result`` holds it). ``KubeError`` when the
        API server cannot be reached.
        """
        started, before = time.monotonic(), Counter(self.kube.stats.calls)
        timings: dict[str, float] = {}
        if not manifests and not options.allow_empty:
            kept = tuple(ObjectResult(e.ref, Action.PRUNE_SKIPPED, detail=EMPTY_RENDER) for e in previous)
            return self._result(previous, kept, started, before, timings, empty_render=True)

        plan = await self._plan(manifests, options.owner)
        live = await self._observe(plan, previous, options.owner)
        timings["observe"] = time.monotonic() - started
        mark = time.monotonic()
        decisions, rejections = await self._preflight(plan.ready(), live, options, memo)
        timings["dry_run"] = time.monotonic() - mark
        if plan.rejections or rejections:
            raise rejected(plan.rejections + rejections, len(manifests))

        written: dict[Any, dict[str, Any]] = {}
        for stage in Stage:
            mark = time.monotonic()
            await self._write_stage(stage, decisions, written, previous)
            timings[f"write_{stage.name.lower()}"] = time.monotonic() - mark
            if stage is Stage.FOUNDATION:
                mark = time.monotonic()
                decisions += await self._after_foundation(plan, live, options, memo, written, previous)
                timings["settle_and_deferred_dry_run"] = time.monotonic() - mark

        if self.cache is not None:
            self._written.update(written)
        desired_refs = {d.ref for d in plan.objects}
        inventory = Inventory.of(InventoryEntry.of(d.body) for d in plan.objects)
        outcomes = [
            ObjectResult(dec.desired.ref, dec.action, dec.desired.origin, dec.fields, dec.detail) for dec in decisions
        ]
        if memo is not None:
            for dec in decisions:
                current = written.get(dec.desired.ref, dec.live)
                if current is not None:
                    memo.remember(dec.desired.ref, dec.desired.digest, current)
            memo.keep_only(desired_refs)

        gone = [e for e in previous if e.ref not in desired_refs]
        if gone and not options.prune:
            outcomes += [ObjectResult(e.ref, Action.PRUNE_SKIPPED, detail="prune is off") for e in gone]
        elif gone:
            mark = time.monotonic()
            pruned = await pruning.prune(self.kube, gone, live, options.owner, self._resolve_entry, self.concurrency)
            timings["prune"] = time.monotonic() - mark
            outcomes += pruned.results
            inventory = inventory.with_entries(pruned.keep)
            if pruned.failures:
                result = self._result(inventory, tuple(outcomes), started, before, timings)
                headline = f"{len(pruned.failures)} of {len(gone)} objects that left Git could not be deleted"
                raise PruneFailed(describe(pruned.failures, headline), rejections=pruned.failures, result=result)
        return self._result(inventory, tuple(outcomes), started, before, timings)

    # -- diff ------------------------------------------------------------------------------

    async def diff(
        self, manifests: Sequence[Manifest], previous: Inventory, options: ApplyOptions
    ) -> diffing.DiffResult:
        """What ``sync`` would do, from server dry-runs; writes nothing. Raises like ``sync`` on rejections."""
        if not manifests and not options.allow_empty:
            return diffing.DiffResult(kept=tuple((e.ref, EMPTY_RENDER) for e in previous))
        plan = await self._plan(manifests, options.owner)
        live = await self._observe(plan, previous, options.owner)
        decisions, rejections = await self._preflight(plan.ready(), live, options, None, keep_preview=True)
        if plan.rejections or rejections:
            raise rejected(plan.rejections + rejections, len(manifests))
        objects: list[diffing.ObjectDiff] = []
        for dec in decisions:
            if dec.action is Action.UNCHANGED:
                continue
            change = diffing.Change.CREATE if dec.live is None else diffing.Change.UPDATE
            text = diffing.unified(dec.desired.ref, dec.live, dec.preview)
            drift = dec.action is Action.DRIFT_CORRECTED
            objects.append(diffing.ObjectDiff(dec.desired.ref, change, dec.desired.origin, text, drift, dec.detail))
        for d in plan.deferred():
            text = diffing.unified(d.ref, None, d.body)
            detail = f"can be dry-run only once {d.waits_for} (in this bundle) is applied"
            objects.append(diffing.ObjectDiff(d.ref, diffing.Change.CREATE, d.origin, text, detail=detail))
        kept: list[tuple[Any, str]] = []
        desired_refs = {d.ref for d in plan.objects}
        gone = [e for e in previous if e.ref not in desired_refs]
        if gone and options.prune:
            found = await pruning.look_up(self.kube, gone, live, self._resolve_entry, self.concurrency)
            for ref, (_, obj) in sorted(found.items()):
                reason = pruning.keep_reason(obj, options.owner)
                if ref in live.refused:
                    kept.append((ref, f"cannot read it: {live.refused[ref]}"))
                elif reason is None and obj is not None:
                    objects.append(diffing.ObjectDiff(ref, diffing.Change.PRUNE, "", diffing.unified(ref, obj, None)))
                else:
                    kept.append((ref, reason or "already gone"))
        elif gone:
            kept = [(e.ref, "prune is off") for e in gone]
        unchanged = sum(1 for dec in decisions if dec.action is Action.UNCHANGED)
        return diffing.DiffResult(tuple(objects), unchanged, tuple(kept))

    # -- health ----------------------------------------------------------------------------

    async def wait(
        self,
        inventory: Inventory,
        timeout: float,
        *,
        on_progress: Callable[[HealthReport], None] | None = None,
        owner: str | None = None,
        interval: float = 1.0,
    ) -> HealthReport:
        """Poll ``inventory``'s objects until all are Current, one is Failed, or ``timeout`` passes.

        ``timeout`` 0 looks once. Polls start ``interval`` apart and grow (``wait``). Objects are
        read by GET when few of a kind are pending; else ``owner`` reads each kind with one
        labelled list (without it, one list per kind and namespace).
        """
        written = {e.ref: self._written.pop(e.ref) for e in inventory if e.ref in self._written}
        return await waiting.wait(
            self.kube,
            inventory,
            timeout,
            owner=owner,
            interval=interval,
            on_progress=on_progress,
            cache=self.cache,
            written=written,
            per_namespace=self.per_namespace,
        )

    # -- steps -----------------------------------------------------------------------------

    async def _plan(self, manifests: Sequence[Manifest], owner: str) -> Plan:
        types: dict[tuple[str, str], Resource | None] = {}
        for m in manifests:
            key = (m.api_version, m.kind)
            if key in types or not m.api_version or not m.kind:
                continue
            try:
                types[key] = await self.kube.discovery.resource(*key)
            except UnknownKind:
                types[key] = None
        return planning.build(manifests, owner, types)

    async def _resolve_entry(self, entry: InventoryEntry) -> Resource | None:
        return await waiting.resolve(self.kube, entry)

    async def _observe(self, plan: Plan, previous: Inventory, owner: str) -> LiveState:
        wanted = [(d.ref, d.resource) for d in plan.objects if d.resource is not None]
        for entry in previous:
            resource = await self._resolve_entry(entry)
            if resource is not None:
                wanted.append((entry.ref, resource))
        cached = observing.LiveState()
        if self.cache is not None:
            wanted = observing.from_cache(self.cache, cached, wanted)
        live = await observing.observe(
            self.kube, owner, wanted, concurrency=self.concurrency, per_namespace=self.per_namespace
        )
        live.objects.update(cached.objects)
        # Namespaces first: objects in a Namespace of the bundle that does not exist yet wait.
        namespaces = [(d.ref, d.resource) for d in plan.stage(Stage.FOUNDATION) if d.ref.kind == "Namespace"]
        await observing.fill(self.kube, live, _typed(namespaces), concurrency=self.concurrency)
        planning.defer_missing_namespaces(plan, (ref.name for ref, _ in namespaces if ref in live.absent))
        await observing.fill(
            self.kube, live, _typed((d.ref, d.resource) for d in plan.ready()), concurrency=self.concurrency
        )
        return live

    async def _preflight(
        self,
        objects: Sequence[Desired],
        live: LiveState,
        options: ApplyOptions,
        memo: ApplyMemo | None,
        *,
        keep_preview: bool = False,
    ) -> tuple[list[Decision], list[Rejection]]:
        decisions: list[Decision] = []
        todo: list[Desired] = []
        rejections: list[Rejection] = []
        for d in objects:
            if d.ref in live.refused:  # RBAC: the identity we act as may not read it
                rejections.append(Rejection(d.ref, d.origin, "Forbidden", live.refused[d.ref]))
                continue
            current = live.get(d.ref)
            untouched = memo is not None and current is not None and memo.unchanged(d.ref, d.digest, current)
            if untouched and current is not None and not metadata_differs(d.body, current):
                decisions.append(Decision(d, current, Action.UNCHANGED))
                continue
            todo.append(d)

        async def one(d: Desired) -> Decision | Rejection:
            return await self._ssa.preflight(
                d,
                live.get(d.ref),
                owner=options.owner,
                force_all=options.force,
                desired_unchanged=memo is not None and memo.applied(d.ref) == d.digest,
                keep_preview=keep_preview,
            )

        for outcome in await bounded(todo, one, self.concurrency):
            if isinstance(outcome, Exception):
                raise outcome  # the API server unreachable: not the manifests' fault
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
            else:
                decisions.append(outcome)
        return decisions, rejections

    async def _write_stage(
        self, stage: Stage, decisions: list[Decision], written: dict[Any, dict[str, Any]], previous: Inventory
    ) -> None:
        todo = [dec for dec in decisions if dec.desired.stage is stage and dec.action in WRITES]
        failures: list[Rejection] = []
        for dec, outcome in zip(todo, await bounded(todo, self._ssa.write, self.concurrency), strict=True):
            if isinstance(outcome, ApiError):
                reason = outcome.status_reason or outcome.reason
                failures.append(Rejection(dec.desired.ref, dec.desired.origin, reason, str(outcome)))
            elif isinstance(outcome, Exception):
                failures.append(Rejection(dec.desired.ref, dec.desired.origin, "WriteFailed", str(outcome)))
            else:
                written[dec.desired.ref] = slim(outcome)
        if failures:
            headline = (
                f"{len(failures)} of {len(todo)} writes of stage {stage.name.lower()} refused after every dry-run "
                f"passed; {len(written)} objects were applied"
            )
            raise WriteFailed(describe(failures, headline), rejections=failures, inventory=_grown(previous, written))

    async def _after_foundation(
        self,
        plan: Plan,
        live: LiveState,
        options: ApplyOptions,
        memo: ApplyMemo | None,
        written: dict[Any, dict[str, Any]],
        previous: Inventory,
    ) -> list[Decision]:
        """Wait for stage 0, then dry-run what waited for it; refuse all-or-nothing as before."""
        problems = await foundation.settle(self.kube, plan, written, self.establish_timeout)
        if problems:
            headline = "the CRDs and Namespaces of stage 0 did not become ready; nothing else was applied"
            inventory = _grown(previous, written)
            raise DependencyNotReady(describe(problems, headline), rejections=problems, inventory=inventory)
        if not plan.deferred():
            return []
        resolved, rejections = await foundation.resolve_deferred(self.kube, plan, self.establish_timeout)
        await observing.fill(
            self.kube, live, _typed((d.ref, d.resource) for d in resolved), concurrency=self.concurrency
        )
        decisions, refused = await self._preflight(resolved, live, options, memo)
        if rejections or refused:
            raise rejected(rejections + refused, len(plan.objects), inventory=_grown(previous, written))
        plan.objects = plan.ready() + resolved
        return decisions

    def _result(
        self,
        inventory: Inventory,
        objects: tuple[ObjectResult, ...],
        started: float,
        before: Counter[tuple[str, str]],
        timings: dict[str, float],
        *,
        empty_render: bool = False,
    ) -> SyncResult:
        calls = Counter(self.kube.stats.calls)
        calls.subtract(before)
        by_kind = {f"{verb} {res}": n for (verb, res), n in sorted(calls.items()) if n > 0}
        writes = sum(n for (verb, _), n in calls.items() if verb in {"POST", "PUT", "PATCH", "DELETE"} and n > 0)
        return SyncResult(
            inventory=inventory,
            objects=objects,
            requests=sum(n for n in calls.values() if n > 0),
            writes=writes,
            duration=time.monotonic() - started,
            empty_render=empty_render,
            requests_by_kind=by_kind,
            timings={k: round(v, 3) for k, v in timings.items()},
        )


def _typed(pairs: Iterable[tuple[Any, Resource | None]]) -> list[tuple[Any, Resource]]:
    return [(ref, resource) for ref, resource in pairs if resource is not None]


def _grown(previous: Inventory, written: dict[Any, dict[str, Any]]) -> Inventory:
    return previous.with_entries(InventoryEntry.of(obj) for obj in written.values())
