"""A release record: what one release applied, as Kubernetes Secrets, and the checks on reading one.

Format (``type: gitopsd.dev/release.v1``, one head Secret per release, in the Environment's
namespace, named like Helm's ``sh.helm.release.v1.<name>.v<N>``)::

    metadata:
      name: gitopsd.release.v1.<environment>.v<N>
      labels:
        app.kubernetes.io/managed-by: gitopsd
        gitopsd.dev/release-of: <environment>          # the Environment's name
        gitopsd.dev/release: "<N>"
        gitopsd.dev/result: Pending | Healthy | Failed | RolledBack | Superseded
      annotations:                                      # the record's metadata, readable without
        release.gitopsd.dev/revision: v1.2.0@sha1:...   # decoding, and listable metadata-only
        release.gitopsd.dev/digest: sha256:<hex of the canonical bundle>
        release.gitopsd.dev/applied-at: <RFC 3339>
        release.gitopsd.dev/applied-by: gitopsd | <user who asked for a rollback>
        release.gitopsd.dev/note: "rollback to 7"       # empty for a Git revision
        release.gitopsd.dev/restored-from: "7"          # rollbacks only
        release.gitopsd.dev/trigger: sync | manual | auto:HealthCheckFailed
        release.gitopsd.dev/request: <token>            # the rollback request it answers, if any
        release.gitopsd.dev/finished-at, .../reason     # once the verdict is in
        release.gitopsd.dev/verification: Passed | Failed | Inconclusive | Cancelled
        release.gitopsd.dev/verification-message, .../verification-enforced   # spec.verification's verdict
        release.gitopsd.dev/objects, .../parts, .../size
      ownerReferences: [the Environment]               # deleting it deletes its history
    data:
      bundle: gzip(canonical JSON [{"origin": FILE, "object": OBJ}, ...])

The bundle is the render gitopsd applied (objects as rendered, before its labels are added,
and the file each came from), so a restore needs neither Git nor the renderer. A bundle whose
compressed form exceeds one Secret is split: parts 1..k-1 go to Secrets named ``...v<N>.p<i>``
(``type: gitopsd.dev/release-part.v1``) written *before* the head, and the head says how many
there are; up to ``MAX_PARTS`` parts, beyond that the release is refused with a clear message.

Results (the verdict of the release's own deploy; ``Pending`` until it is in):

- ``Healthy``: applied and passed its health gate (or there is no gate). It stays Healthy when a
  later release replaces it; which one is current is ``status.release``.
- ``Failed``: its apply or health gate failed, and nothing rolled it back (yet). A Failed release
  that later passes the gate while still current turns Healthy.
- ``RolledBack``: a rollback (manual or automatic) restored another release away from it. Not a
  default rollback target (``--to`` may still name it).
- ``Superseded``: replaced before it reached a verdict: a newer revision arrived while it was
  Pending (after a crash, or preempted by a newer release).

A Healthy release of an Environment with ``spec.verification`` also gets the metric gate's
verdict (``verification``; ``verification-enforced: "false"`` for a dry run, which neither rolls
back nor blocks promotion). See ``gitopsd.gates``.
"""

from __future__ import annotations

import base64
import enum
import gzip
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitopsd.errors import GitopsdError
from gitopsd.model import Manifest

RELEASE_TYPE = "gitopsd.dev/release.v1"
PART_TYPE = "gitopsd.dev/release-part.v1"
MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_ENVIRONMENT = "gitopsd.dev/release-of"
LABEL_NUMBER = "gitopsd.dev/release"
LABEL_RESULT = "gitopsd.dev/result"
LABEL_PART = "gitopsd.dev/release-part"
_A = "release.gitopsd.dev/"
#: Compressed bytes per Secret: the API server refuses Secrets over 1 MiB of data.
CHUNK = 900 * 1024
MAX_PARTS = 8
NAME_PATTERN = re.compile(r"^gitopsd\.release\.v1\.(?P<env>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.v(?P<n>[1-9][0-9]*)$")


class Result(enum.StrEnum):
    PENDING = "Pending"
    HEALTHY = "Healthy"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"


class ReleaseError(GitopsdError):
    """A record that cannot be used: missing, pruned, corrupted, foreign, too large."""

    reason = "ReleaseInvalid"


def secret_name(environment: str, number: int) -> str:
    return f"gitopsd.release.v1.{environment}.v{number}"


def part_name(environment: str, number: int, part: int) -> str:
    return f"{secret_name(environment, number)}.p{part}"


@dataclass(frozen=True, slots=True)
class Owner:
    """The Environment a record belongs to."""

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """A record's metadata (all that ``history`` and the daemon's bookkeeping need)."""

    number: int
    revision: str
    digest: str
    applied_at: str
    result: Result
    applied_by: str = "gitopsd"
    note: str = ""
    trigger: str = "sync"
    restored_from: int | None = None
    request: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    objects: int = 0
    parts: int = 1
    size: int = 0  # compressed bundle bytes
    verification: str | None = None  # Passed, Failed, Inconclusive, Cancelled (spec.verification)
    verification_message: str = ""
    verification_enforced: bool = True  # False: a dry run (enforce: false), recorded only

    @property
    def is_rollback(self) -> bool:
        return self.restored_from is not None

    @property
    def verified(self) -> bool:
        """Passed an enforced verification gate."""
        return self.verification == "Passed" and self.verification_enforced

    @property
    def failed_verification(self) -> bool:
        """Failed an enforced verification gate (not a default rollback target)."""
        return self.verification == "Failed" and self.verification_enforced

    def with_result(self, result: Result, at: str, reason: str | None = None) -> ReleaseInfo:
        return replace(self, result=result, finished_at=at, reason=reason)

    def summary(self) -> dict[str, Any]:
        """The entry of ``status.history``."""
        entry: dict[str, Any] = {
            "release": self.number,
            "revision": self.revision,
            "digest": self.digest,
            "appliedAt": self.applied_at,
            "result": str(self.result),
        }
        if self.note:
            entry["note"] = self.note
        if self.verification:
            entry["verification"] = self.verification + ("" if self.verification_enforced else " (dry run)")
        return entry


@dataclass(frozen=True, slots=True)
class Release:
    info: ReleaseInfo
    manifests: tuple[Manifest, ...]


def canonical(manifests: Sequence[Manifest]) -> bytes:
    """The bundle as bytes that depend only on its content (the digest is taken over them)."""
    items = [{"origin": m.origin, "object": m.obj} for m in manifests]
    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(manifests: Sequence[Manifest]) -> str:
    return "sha256:" + hashlib.sha256(canonical(manifests)).hexdigest()


# -- writing -------------------------------------------------------------------------------


def encode(owner: Owner, info: ReleaseInfo, manifests: Sequence[Manifest]) -> tuple[ReleaseInfo, list[dict[str, Any]]]:
    """The Secrets of a record, parts first and the head last (the order they must be written in).

    Raises ``ReleaseError`` (reason ``ReleaseTooLarge``) when the bundle needs more than
    ``MAX_PARTS`` Secrets.
    """
    raw = canonical(manifests)
    # mtime=0: the same bundle compresses to the same bytes, so a rewrite after a crash is a no-op.
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    chunks = [packed[i : i + CHUNK] for i in range(0, len(packed), CHUNK)] or [b""]
    if len(chunks) > MAX_PARTS:
        raise ReleaseError(
            f"release {info.number} of {owner.key}: the rendered bundle is {len(raw) // 1024} KiB "
            f"({len(packed) // 1024} KiB compressed), more than {MAX_PARTS} Secrets of {CHUNK // 1024} KiB "
            "can record; nothing was applied (split the Environment into smaller ones)",
            reason="ReleaseTooLarge",
        )
    info = replace(info, objects=len(manifests), parts=len(chunks), size=len(packed))
    secrets = [_part(owner, info.number, i, chunk) for i, chunk in enumerate(chunks) if i > 0]
    head = _base(owner, secret_name(owner.name, info.number), RELEASE_TYPE, info.number)
    head["metadata"]["labels"][LABEL_RESULT] = str(info.result)
    head["metadata"]["annotations"] = release_annotations(info)
    head["data"] = {"bundle": base64.b64encode(chunks[0]).decode()}
    secrets.append(head)
    return info, secrets


def release_annotations(info: ReleaseInfo) -> dict[str, str]:
    values = {
        "revision": info.revision,
        "digest": info.digest,
        "applied-at": info.applied_at,
        "applied-by": info.applied_by,
        "note": info.note,
        "trigger": info.trigger,
        "restored-from": str(info.restored_from) if info.restored_from is not None else None,
        "request": info.request,
        "finished-at": info.finished_at,
        "reason": info.reason,
        "objects": str(info.objects),
        "parts": str(info.parts),
        "size": str(info.size),
        **verification_annotations(info),
    }
    return {_A + k: v for k, v in values.items() if v is not None}


def verification_annotations(info: ReleaseInfo) -> dict[str, str | None]:
    if info.verification is None:
        return {}
    return {
        "verification": info.verification,
        "verification-message": info.verification_message[:1024],
        "verification-enforced": "true" if info.verification_enforced else "false",
    }


def result_patch(info: ReleaseInfo) -> dict[str, Any]:
    """A merge patch that records ``info``'s verdict on its head Secret."""
    return {
        "metadata": {
            "labels": {LABEL_RESULT: str(info.result)},
            "annotations": {_A + "finished-at": info.finished_at, _A + "reason": info.reason},
        }
    }


def verification_patch(info: ReleaseInfo) -> dict[str, Any]:
    """A merge patch that records ``info``'s verification verdict on its head Secret."""
    notes = verification_annotations(info)
    return {"metadata": {"annotations": {_A + k: v for k, v in notes.items()}}}


def _base(owner: Owner, name: str, type_: str, number: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type_,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {MANAGED_BY: "gitopsd", LABEL_ENVIRONMENT: owner.name, LABEL_NUMBER: str(number)},
            "ownerReferences": [
                {
                    "apiVersion": "gitopsd.dev/v1alpha1",
                    "kind": "Environment",
                    "name": owner.name,
                    "uid": owner.uid,
                    "blockOwnerDeletion": False,
                }
            ],
        },
    }


def _part(owner: Owner, number: int, index: int, chunk: bytes) -> dict[str, Any]:
    body = _base(owner, part_name(owner.name, number, index), PART_TYPE, number)
    body["metadata"]["labels"][LABEL_PART] = str(index)
    body["data"] = {"bundle": base64.b64encode(chunk).decode()}
    return body


# -- reading -------------------------------------------------------------------------------


def info_of(owner: Owner, obj: Mapping[str, Any]) -> ReleaseInfo:
    """Read and check a head Secret's metadata (a full object or metadata-only).

    Raises ``ReleaseError`` naming what is wrong: another Environment's or a foreign Secret,
    or metadata that does not parse.
    """
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    where = f"Secret {owner.namespace}/{name}"
    if "type" in obj and obj.get("type") != RELEASE_TYPE:
        raise _foreign(where, f"has type {obj.get('type')!r}, not {RELEASE_TYPE}")
    match = NAME_PATTERN.match(name)
    if match is None or match["env"] != owner.name:
        raise _foreign(where, f"is not named gitopsd.release.v1.{owner.name}.v<N>")
    labels = meta.get("labels") or {}
    number = int(match["n"])
    if labels.get(LABEL_ENVIRONMENT) != owner.name or labels.get(LABEL_NUMBER) != str(number):
        raise _foreign(where, f"lacks the labels {LABEL_ENVIRONMENT}={owner.name}, {LABEL_NUMBER}={number}")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Environment"]
    if not owners or owners[0].get("uid") != owner.uid:
        raise _foreign(where, f"is not owned by Environment {owner.key} (uid {owner.uid})")
    notes = meta.get("annotations") or {}

    def text(key: str, required: bool = True) -> str | None:
        value = notes.get(_A + key)
        if value is None and required:
            raise _corrupt(where, f"has no annotation {_A}{key}")
        return None if value is None else str(value)

    def number_of(key: str, default: int | None) -> int | None:
        value = notes.get(_A + key)
        if value is None:
            return default
        if not str(value).isdigit():
            raise _corrupt(where, f"annotation {_A}{key} is {value!r}, not a number")
        return int(value)

    result_text = labels.get(LABEL_RESULT)
    try:
        result = Result(str(result_text))
    except ValueError:
        raise _corrupt(where, f"label {LABEL_RESULT} is {result_text!r}") from None
    digest = text("digest") or ""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise _corrupt(where, f"annotation {_A}digest is {digest!r}, not sha256:<64 hex digits>")
    return ReleaseInfo(
        number=number,
        revision=text("revision") or "",
        digest=digest,
        applied_at=text("applied-at") or "",
        result=result,
        applied_by=text("applied-by", False) or "gitopsd",
        note=text("note", False) or "",
        trigger=text("trigger", False) or "sync",
        restored_from=number_of("restored-from", None),
        request=text("request", False),
        finished_at=text("finished-at", False),
        reason=text("reason", False),
        objects=number_of("objects", 0) or 0,
        parts=number_of("parts", 1) or 1,
        size=number_of("size", 0) or 0,
        verification=text("verification", False),
        verification_message=text("verification-message", False) or "",
        verification_enforced=text("verification-enforced", False) != "false",
    )


def decode(owner: Owner, head: Mapping[str, Any], parts: Mapping[int, Mapping[str, Any]]) -> Release:
    """A whole record from its head and part Secrets, its digest verified."""
    info = info_of(owner, head)
    where = f"release {info.number} of {owner.key} (Secret {owner.namespace}/{secret_name(owner.name, info.number)})"
    chunks = [_chunk(head, where)]
    for index in range(1, info.parts):
        part = parts.get(index)
        if part is None:
            raise _corrupt(where, f"part {index} of {info.parts} is missing")
        if part.get("type") != PART_TYPE or (part.get("metadata") or {}).get("labels", {}).get(LABEL_PART) != str(
            index
        ):
            raise _corrupt(where, f"part {index} is not a {PART_TYPE} Secret for it")
        chunks.append(_chunk(part, where))
    try:
        raw = gzip.decompress(b"".join(chunks))
        items = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise _corrupt(where, f"its bundle cannot be read ({exc})") from None
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != info.digest:
        raise _corrupt(where, f"its bundle's digest is {actual[:19]}…, the record says {info.digest[:19]}…")
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("object"), dict) and isinstance(i.get("origin"), str) for i in items
    ):
        raise _corrupt(where, "its bundle is not a list of {origin, object}")
    return Release(info, tuple(Manifest(i["object"], i["origin"]) for i in items))


def _chunk(secret: Mapping[str, Any], where: str) -> bytes:
    data = (secret.get("data") or {}).get("bundle")
    if not isinstance(data, str):
        raise _corrupt(where, "has no data.bundle")
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise _corrupt(where, "data.bundle is not base64") from None


def _foreign(where: str, problem: str) -> ReleaseError:
    message = f"{where} is not a gitopsd release record of this Environment: it {problem}"
    return ReleaseError(message, reason="ReleaseForeign")


def _corrupt(where: str, problem: str) -> ReleaseError:
    return ReleaseError(f"{where} is corrupted: {problem}", reason="ReleaseCorrupted")
