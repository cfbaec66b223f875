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
        release.gitopsd.dev/objects, .../parts, .../size   # parts: 1..MAX_PARTS; size: compressed bytes
        release.gitopsd.dev/packed: sha256:<hex of the compressed bundle, all parts joined>
        release.gitopsd.dev/signature: hmac-sha256:<hex>   # over all of the above (``signing``)
      ownerReferences: [the Environment]               # deleting it deletes its history
    data:
      bundle: gzip(canonical JSON [{"origin": FILE, "object": OBJ}, ...])

The bundle is the render gitopsd applied (objects as rendered, before its labels are added,
and the file each came from), so a restore needs neither Git nor the renderer. A bundle whose
compressed form exceeds one Secret is split: parts 1..k-1 go to Secrets named ``...v<N>.p<i>``
(``type: gitopsd.dev/release-part.v1``) written *before* the head, and the head says how many
there are; up to ``MAX_PARTS`` parts, beyond that the release is refused with a clear message.

Reading one is bounded before anything is fetched or inflated (``payload``): the head's
``parts`` must be 1..``MAX_PARTS`` and its ``size`` at most ``MAX_PACKED``, so neither a read nor
a prune loops over a forged count; the bundle inflates to at most ``MAX_BUNDLE`` bytes.

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
import gzip
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from gitopsd.model import Manifest
from gitopsd.releases import payload
from gitopsd.releases.info import (
    ANNOTATION_PREFIX,
    CHUNK,
    LABEL_ENVIRONMENT,
    LABEL_NUMBER,
    LABEL_PART,
    LABEL_RESULT,
    MANAGED_BY,
    MAX_BUNDLE,
    MAX_PACKED,
    MAX_PARTS,
    NAME_PATTERN,
    PART_TYPE,
    RELEASE_TYPE,
    Owner,
    Release,
    ReleaseError,
    ReleaseInfo,
    Result,
    canonical,
    digest_of,
    part_name,
    secret_name,
)

__all__ = [
    "ANNOTATION_PREFIX",
    "CHUNK",
    "LABEL_ENVIRONMENT",
    "LABEL_NUMBER",
    "LABEL_PART",
    "LABEL_RESULT",
    "MANAGED_BY",
    "MAX_BUNDLE",
    "MAX_PACKED",
    "MAX_PARTS",
    "NAME_PATTERN",
    "PART_TYPE",
    "RELEASE_TYPE",
    "Owner",
    "Release",
    "ReleaseError",
    "ReleaseInfo",
    "Result",
    "canonical",
    "decode",
    "digest_of",
    "encode",
    "info_of",
    "part_name",
    "release_annotations",
    "result_patch",
    "secret_name",
    "verification_annotations",
    "verification_patch",
    "where_of",
]
_A = ANNOTATION_PREFIX


# -- writing -------------------------------------------------------------------------------


def encode(owner: Owner, info: ReleaseInfo, manifests: Sequence[Manifest]) -> tuple[ReleaseInfo, list[dict[str, Any]]]:
    """The Secrets of a record, parts first and the head last (the order they must be written in).

    Raises ``ReleaseError`` (reason ``ReleaseTooLarge``) when the bundle needs more than
    ``MAX_PARTS`` Secrets.
    """
    raw = canonical(manifests)
    if len(raw) > MAX_BUNDLE:
        raise ReleaseError(
            f"release {info.number} of {owner.key}: the rendered bundle is {len(raw) // 1024} KiB, more than "
            f"a record holds ({MAX_BUNDLE // 1024} KiB); nothing was applied (split the Environment into smaller ones)",
            reason="ReleaseTooLarge",
        )
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
    packed_digest = "sha256:" + hashlib.sha256(packed).hexdigest()
    info = replace(info, objects=len(manifests), parts=len(chunks), size=len(packed), packed=packed_digest)
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
        "packed": info.packed or None,
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
    body = _owned(owner, name, type_, number)
    if not owner.uid:  # a record on another cluster (gitopsd.clusters): no owner there to reference
        del body["metadata"]["ownerReferences"]
    return body


def _owned(owner: Owner, name: str, type_: str, number: int) -> dict[str, Any]:
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
    # Without a uid (records on another cluster), namespace/name is the identity: no owner is referenced there.
    if owner.uid and (not owners or owners[0].get("uid") != owner.uid):
        raise _foreign(where, f"is not owned by Environment {owner.key} (uid {owner.uid})")
    notes = meta.get("annotations") or {}

    def text(key: str, required: bool = True) -> str | None:
        value = notes.get(_A + key)
        if value is None and required:
            raise _corrupt(where, f"has no annotation {_A}{key}")
        return None if value is None else str(value)

    def number_of(key: str, default: int | None, required: bool = False) -> int | None:
        value = notes.get(_A + key)
        if value is None:
            if required:
                raise _corrupt(where, f"has no annotation {_A}{key}")
            return default
        if not re.fullmatch(r"[0-9]{1,12}", str(value)):
            raise _corrupt(where, f"annotation {_A}{key} is {_shown(value)}, not a number")
        return int(value)

    result_text = labels.get(LABEL_RESULT)
    try:
        result = Result(str(result_text))
    except ValueError:
        raise _corrupt(where, f"label {LABEL_RESULT} is {result_text!r}") from None
    digest = text("digest") or ""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise _corrupt(where, f"annotation {_A}digest is {_shown(digest)}, not sha256:<64 hex digits>")
    packed = text("packed", False) or ""
    if packed and not re.fullmatch(r"sha256:[0-9a-f]{64}", packed):
        raise _corrupt(where, f"annotation {_A}packed is {_shown(packed)}, not sha256:<64 hex digits>")
    # Bounded before anything is fetched or looped over: a read GETs parts-1 Secrets, a prune deletes them.
    parts = number_of("parts", None, required=True) or 0
    if not 1 <= parts <= MAX_PARTS:
        raise _corrupt(
            where,
            f"annotation {_A}parts is {parts}: a record has 1 to {MAX_PARTS} parts "
            f"(Secrets of at most {CHUNK // 1024} KiB); not read",
        )
    size = number_of("size", None, required=True) or 0
    if size > MAX_PACKED or size > parts * CHUNK:
        raise _corrupt(
            where,
            f"annotation {_A}size is {size} bytes: more than {min(parts * CHUNK, MAX_PACKED)} "
            f"({parts} part(s) of at most {CHUNK} bytes); not read",
        )
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
        parts=parts,
        size=size,
        packed=packed,
        verification=text("verification", False),
        verification_message=text("verification-message", False) or "",
        verification_enforced=text("verification-enforced", False) != "false",
    )


def decode(owner: Owner, head: Mapping[str, Any], parts: Mapping[int, Mapping[str, Any]]) -> Release:
    """A whole record from its head and part Secrets, every bound and digest checked (not its signature).

    Bounded: at most ``MAX_PARTS`` chunks of at most ``CHUNK`` bytes are decoded, their total must
    be the head's ``size``, their digest its ``packed``, and the bundle inflates to at most
    ``MAX_BUNDLE`` bytes (``payload.inflate`` stops there).
    """
    info = info_of(owner, head)
    where = where_of(owner, info.number)
    datas: list[object] = [(head.get("data") or {}).get("bundle")]
    for index in range(1, info.parts):
        part = parts.get(index)
        if part is None:
            raise _corrupt(where, f"part {index} of {info.parts} is missing")
        if part.get("type") != PART_TYPE or (part.get("metadata") or {}).get("labels", {}).get(LABEL_PART) != str(
            index
        ):
            raise _corrupt(where, f"part {index} is not a {PART_TYPE} Secret for it")
        datas.append((part.get("data") or {}).get("bundle"))
    try:
        raw = payload.unpack(datas, size=info.size, packed=info.packed, limit=MAX_BUNDLE)
        items = json.loads(raw)
    except payload.PayloadError as exc:
        raise _corrupt(where, str(exc)) from None
    except ValueError as exc:
        raise _corrupt(where, f"its bundle cannot be read ({str(exc)[:200]})") from None
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != info.digest:
        raise _corrupt(where, f"its bundle's digest is {actual[:19]}…, the record says {info.digest[:19]}…")
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("object"), dict) and isinstance(i.get("origin"), str) for i in items
    ):
        raise _corrupt(where, "its bundle is not a list of {origin, object}")
    return Release(info, tuple(Manifest(i["object"], i["origin"]) for i in items))


def where_of(owner: Owner, number: int) -> str:
    """How messages name a record."""
    return f"release {number} of {owner.key} (Secret {owner.namespace}/{secret_name(owner.name, number)})"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _foreign(where: str, problem: str) -> ReleaseError:
    message = f"{where} is not a gitopsd release record of this Environment: it {problem}"
    return ReleaseError(message, reason="ReleaseForeign")


def _corrupt(where: str, problem: str) -> ReleaseError:
    return ReleaseError(f"{where} is corrupted: {problem}", reason="ReleaseCorrupted")
