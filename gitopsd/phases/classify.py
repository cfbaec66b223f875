"""Which phase each rendered object belongs to: pure rules over its annotations.

Three vocabularies are read, in this order of precedence (the first one present on an object
decides alone, so an Argo CD annotation beside a Helm one wins, as in Argo CD itself):

* ours: ``gitopsd.dev/hook``, ``gitopsd.dev/sync-wave``, ``gitopsd.dev/hook-delete-policy``;
* Argo CD's: ``argocd.argoproj.io/hook``, ``argocd.argoproj.io/sync-wave``,
  ``argocd.argoproj.io/hook-delete-policy`` (the same values as ours);
* Helm's: ``helm.sh/hook``, ``helm.sh/hook-weight``, ``helm.sh/hook-delete-policy``.

An object without a hook annotation is part of the **Sync** phase, in the wave its sync-wave
says (default 0; a sync-wave on a Helm chart's plain objects is honoured too). A hook runs in
each phase it names (a comma-separated list), ordered within a phase by wave (Helm: weight),
then kind and name. Helm's delete and rollback hooks, its test hooks and Argo CD's ``Skip``,
``PreDelete`` and ``PostDelete`` are never applied here: they are listed in ``Phases.skipped``
with the reason, so a status or a ``render`` can say so.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitopsd.errors import GitopsdError
from gitopsd.model import Manifest

OURS, ARGO, HELM = "gitopsd.dev/", "argocd.argoproj.io/", "helm.sh/"
HOOK_ANNOTATIONS = (OURS + "hook", ARGO + "hook", HELM + "hook")
#: A label on every hook object we create: which hook (of which Environment) it is an instance of,
#: so BeforeHookCreation finds the earlier instances of a ``generateName`` hook.
HOOK_LABEL = "gitopsd.dev/hook-id"


class Phase(enum.StrEnum):
    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"


class Policy(enum.StrEnum):
    BEFORE_HOOK_CREATION = "BeforeHookCreation"
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"


#: Argo CD's (and our) hook values that are not run by a sync; why, for ``Phases.skipped``.
_ARGO_SKIPPED = {
    "Skip": "argocd.argoproj.io/hook: Skip",
    "PreDelete": "a PreDelete hook (gitopsd runs no deletion hooks)",
    "PostDelete": "a PostDelete hook (gitopsd runs no deletion hooks)",
}
_HELM_PHASES = {
    "pre-install": Phase.PRE_SYNC,
    "pre-upgrade": Phase.PRE_SYNC,
    "post-install": Phase.POST_SYNC,
    "post-upgrade": Phase.POST_SYNC,
}
_HELM_SKIPPED = {
    "pre-delete": "a Helm pre-delete hook (gitopsd runs no deletion hooks)",
    "post-delete": "a Helm post-delete hook (gitopsd runs no deletion hooks)",
    "pre-rollback": "a Helm pre-rollback hook (a gitopsd rollback is a sync of the older release)",
    "post-rollback": "a Helm post-rollback hook (a gitopsd rollback is a sync of the older release)",
    "test": "a Helm test hook (tests never run during a sync)",
    "test-success": "a Helm test hook (tests never run during a sync)",
    "test-failure": "a Helm test hook (tests never run during a sync)",
}
_HELM_POLICIES = {
    "before-hook-creation": Policy.BEFORE_HOOK_CREATION,
    "hook-succeeded": Policy.HOOK_SUCCEEDED,
    "hook-failed": Policy.HOOK_FAILED,
}


class BadAnnotation(GitopsdError):
    """An ordering annotation gitopsd cannot read: names the object, its file and the annotation."""

    reason = "InvalidAnnotation"


@dataclass(frozen=True, slots=True)
class Hook:
    """One hook object: what to create, in which phase and wave, and when to delete it."""

    manifest: Manifest
    phase: Phase
    wave: int
    policies: frozenset[Policy]
    #: Which annotation made it a hook (for messages and docs).
    source: str

    @property
    def name(self) -> str:
        """``Job/migrate-`` (a generateName ends with its dash) or ``Job/migrate``."""
        meta = self.manifest.obj.get("metadata") or {}
        return f"{self.manifest.kind}/{meta.get('name') or meta.get('generateName') or ''}"

    @property
    def generated(self) -> bool:
        meta = self.manifest.obj.get("metadata") or {}
        return not meta.get("name") and bool(meta.get("generateName"))

    def identity(self, owner: str) -> str:
        """A label value naming this hook of Environment ``owner`` (the same in every release)."""
        meta = self.manifest.obj.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName")
        key = "/".join((owner, self.manifest.kind, str(meta.get("namespace") or ""), str(name)))
        return hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Wave:
    """The Sync phase's objects of one wave, and the Sync hooks run with it."""

    number: int
    manifests: tuple[Manifest, ...]
    hooks: tuple[Hook, ...] = ()


@dataclass(frozen=True, slots=True)
class Phases:
    """A release's objects sorted into phases; ``waves`` ascending, hooks in run order."""

    pre_sync: tuple[Hook, ...] = ()
    waves: tuple[Wave, ...] = ()
    post_sync: tuple[Hook, ...] = ()
    sync_fail: tuple[Hook, ...] = ()
    #: Objects never applied, with the reason.
    skipped: tuple[tuple[Manifest, str], ...] = field(default=())

    @property
    def synced(self) -> list[Manifest]:
        """Every object the Sync phase applies (the inventory's objects)."""
        return [m for wave in self.waves for m in wave.manifests]

    @property
    def has_hooks(self) -> bool:
        return bool(self.pre_sync or self.post_sync or self.sync_fail or any(w.hooks for w in self.waves))

    @property
    def ordered(self) -> bool:
        """More than one wave or any hook: the plain all-at-once sync is not enough."""
        return len(self.waves) > 1 or self.has_hooks

    def hooks(self, phase: Phase) -> tuple[Hook, ...]:
        if phase is Phase.SYNC:
            return tuple(h for w in self.waves for h in w.hooks)
        return {Phase.PRE_SYNC: self.pre_sync, Phase.POST_SYNC: self.post_sync, Phase.SYNC_FAIL: self.sync_fail}[phase]


def is_hook(obj: Mapping[str, Any]) -> bool:
    """Whether any vocabulary's hook annotation is set (such an object is not inventoried)."""
    annotations = _annotations(obj)
    return any(annotations.get(key) for key in HOOK_ANNOTATIONS)


def classify(manifests: Iterable[Manifest]) -> Phases:
    """Sort ``manifests`` into phases and waves; raise ``BadAnnotation`` naming the first bad one."""
    waves: dict[int, list[Manifest]] = {}
    sync_hooks: dict[int, list[Hook]] = {}
    hooks: dict[Phase, list[Hook]] = {p: [] for p in Phase}
    skipped: list[tuple[Manifest, str]] = []
    for manifest in manifests:
        annotations = _annotations(manifest.obj)
        vocabulary = _vocabulary(annotations)
        wave = _wave(manifest, annotations, vocabulary)
        hook_key = (vocabulary or OURS) + "hook"
        raw = str(annotations.get(hook_key) or "").strip()
        if not raw:
            waves.setdefault(wave, []).append(manifest)
            continue
        phases, reason = (_helm_phases if vocabulary == HELM else _argo_phases)(manifest, hook_key, raw)
        if not phases:
            skipped.append((manifest, reason))
            continue
        policies = _policies(manifest, annotations, vocabulary or OURS)
        for phase in phases:
            hook = Hook(manifest, phase, wave, policies, hook_key)
            if phase is Phase.SYNC:
                sync_hooks.setdefault(wave, []).append(hook)
            else:
                hooks[phase].append(hook)
    numbers = sorted(set(waves) | set(sync_hooks))
    return Phases(
        pre_sync=_in_order(hooks[Phase.PRE_SYNC]),
        waves=tuple(Wave(n, tuple(waves.get(n, ())), _in_order(sync_hooks.get(n, []))) for n in numbers),
        post_sync=_in_order(hooks[Phase.POST_SYNC]),
        sync_fail=_in_order(hooks[Phase.SYNC_FAIL]),
        skipped=tuple(skipped),
    )


def synced_objects(manifests: Sequence[Manifest]) -> list[Manifest]:
    """The objects the Sync phase applies (hooks and skipped objects left out); never raises."""
    return [m for m in manifests if not is_hook(m.obj)]


# -- rules ---------------------------------------------------------------------------------------


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _vocabulary(annotations: Mapping[str, Any]) -> str:
    """The prefix whose hook annotation is set; else whose wave annotation is (``""``: none)."""
    for prefix in (OURS, ARGO, HELM):
        if annotations.get(prefix + "hook"):
            return prefix
    for key, prefix in ((OURS + "sync-wave", OURS), (ARGO + "sync-wave", ARGO), (HELM + "hook-weight", HELM)):
        if key in annotations:
            return prefix
    return ""


def _wave(manifest: Manifest, annotations: Mapping[str, Any], vocabulary: str) -> int:
    key = HELM + "hook-weight" if vocabulary == HELM else (vocabulary or OURS) + "sync-wave"
    raw = annotations.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 0
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        raise BadAnnotation(
            f"{_where(manifest)}: annotation {key}: {text!r} is not an integer (waves and weights are whole numbers,"
            " negative allowed)"
        ) from None


def _argo_phases(manifest: Manifest, key: str, raw: str) -> tuple[list[Phase], str]:
    phases: list[Phase] = []
    reasons: list[str] = []
    for value in (v.strip() for v in raw.split(",")):
        if value in _ARGO_SKIPPED:
            reasons.append(_ARGO_SKIPPED[value] if key.startswith(ARGO) else f"{key}: {value}")
            continue
        try:
            phases.append(Phase(value))
        except ValueError:
            known = ", ".join([*(p.value for p in Phase), *_ARGO_SKIPPED])
            problem = f"annotation {key}: unknown hook {value!r} (one of {known})"
            raise BadAnnotation(f"{_where(manifest)}: {problem}") from None
    return phases, "; ".join(reasons)


def _helm_phases(manifest: Manifest, key: str, raw: str) -> tuple[list[Phase], str]:
    phases: list[Phase] = []
    reasons: list[str] = []
    for value in (v.strip() for v in raw.split(",")):
        if value in _HELM_PHASES:
            if _HELM_PHASES[value] not in phases:
                phases.append(_HELM_PHASES[value])
        elif value in _HELM_SKIPPED:
            reasons.append(_HELM_SKIPPED[value])
        else:
            known = ", ".join([*_HELM_PHASES, *_HELM_SKIPPED])
            raise BadAnnotation(f"{_where(manifest)}: annotation {key}: unknown hook {value!r} (one of {known})")
    return phases, "; ".join(reasons)


def _policies(manifest: Manifest, annotations: Mapping[str, Any], prefix: str) -> frozenset[Policy]:
    key = prefix + "hook-delete-policy"
    raw = str(annotations.get(key) or "").strip()
    if not raw:
        return frozenset({Policy.BEFORE_HOOK_CREATION})  # Argo CD's and Helm's default alike
    policies: set[Policy] = set()
    for value in (v.strip() for v in raw.split(",")):
        try:
            policies.add(_HELM_POLICIES[value] if prefix == HELM else Policy(value))
        except (KeyError, ValueError):
            known = ", ".join(_HELM_POLICIES) if prefix == HELM else ", ".join(p.value for p in Policy)
            raise BadAnnotation(
                f"{_where(manifest)}: annotation {key}: unknown policy {value!r} (one of {known})"
            ) from None
    return frozenset(policies)


def _in_order(hooks: list[Hook]) -> tuple[Hook, ...]:
    return tuple(sorted(hooks, key=lambda h: (h.wave, h.manifest.kind, h.name)))


def _where(manifest: Manifest) -> str:
    meta = manifest.obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "?"
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.kind} {namespace}{name} ({manifest.origin})"
