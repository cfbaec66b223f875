"""The release records of an Environment in the cluster: list, read, write, mark, delete.

Listing asks for metadata only (``PartialObjectMetadataList``, as ``kubectl get -o name``
does): the record's facts are in its labels and annotations, so neither ``history`` nor the
daemon's bookkeeping downloads bundles; a bundle is read only to restore it.

A head Secret is *created* (POST), never overwritten: two writers that picked the same number
cannot both succeed, so a number is never used twice. Parts are written with server-side
apply before their head (a rewrite after a crash is harmless: the same bytes), and a reader
checks every part against the head's digest.

Every head is signed (``signing``) when written and again with each verdict; every read checks
the signature, the listing included, so a record that fails it is never a rollback target. The
store's ``Keyring`` is the daemon's (created on first use) unless the CLI gives its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gitopsd.kube import Conflict, KubeAPI, NotFound, Resource
from gitopsd.model import FIELD_MANAGER, Manifest
from gitopsd.releases import signing
from gitopsd.releases.record import (
    LABEL_ENVIRONMENT,
    LABEL_NUMBER,
    LABEL_PART,
    Owner,
    Release,
    ReleaseError,
    ReleaseInfo,
    decode,
    encode,
    info_of,
    part_name,
    result_patch,
    secret_name,
    verification_patch,
)
from gitopsd.releases.signing import Keyring

SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class RecordExists(ReleaseError):
    """Another writer created this release number first."""

    reason = "ReleaseExists"


@dataclass(frozen=True, slots=True)
class Listing:
    """Every head Secret of an Environment: the valid records, and the ones that fail the checks."""

    records: dict[int, ReleaseInfo] = field(default_factory=dict)
    invalid: dict[str, ReleaseError] = field(default_factory=dict)  # Secret name → why
    unchecked: str | None = None  # why signatures were not checked (the CLI without the key)

    def numbers(self) -> list[int]:
        return sorted(self.records)


@dataclass(frozen=True, slots=True)
class Written:
    """What writing one record cost."""

    info: ReleaseInfo
    bytes: int  # compressed bundle bytes stored
    requests: int


@dataclass(frozen=True, slots=True)
class Everything:
    """Every record of an Environment read in full (``gitopsd history``)."""

    releases: list[Release]
    invalid: dict[str, ReleaseError]  # Secret name → why
    unchecked: str | None = None  # why signatures were not checked


class ReleaseStore:
    def __init__(self, kube: KubeAPI, *, field_manager: str = FIELD_MANAGER, keys: Keyring | None = None) -> None:
        self.kube = kube
        self.field_manager = field_manager
        self.keys = keys if keys is not None else Keyring(kube)

    async def _checked(self, owner: Owner, item: dict[str, Any]) -> ReleaseInfo:
        """A head's facts, its signature checked (when the key is at hand: see ``Keyring``)."""
        info = info_of(owner, item)
        key = await self.keys.key()
        if key is not None:
            signing.check(key, owner, info, (item.get("metadata") or {}).get("annotations") or {})
        return info

    async def scan(self, owner: Owner) -> Listing:
        """The records of ``owner`` (metadata only, one request per 500), signatures checked."""
        await self.keys.key()
        listing = Listing(unchecked=self.keys.problem)
        path = SECRETS.path(owner.namespace)
        cont: str | None = None
        while True:
            page = await self.kube.request(
                "GET",
                path,
                params={"labelSelector": f"{LABEL_ENVIRONMENT}={owner.name},!{LABEL_PART}", "limit": 500,
                        "continue": cont},
                accept=_METADATA_ONLY,
            )  # fmt: skip
            for item in page.get("items") or []:
                name = str((item.get("metadata") or {}).get("name") or "")
                try:
                    info = await self._checked(owner, item)
                except ReleaseError as exc:
                    listing.invalid[name] = exc
                    continue
                listing.records[info.number] = info
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return listing

    async def read(self, owner: Owner, number: int) -> Release:
        """The whole record ``number``, checked (type, labels, owner, bounds, signature, digests)."""
        try:
            head = await self.kube.get(SECRETS.path(owner.namespace, secret_name(owner.name, number)))
        except NotFound:
            raise ReleaseError(f"release {number} of {owner.key} does not exist", reason="ReleaseNotFound") from None
        info = await self._checked(owner, head)  # parts bounded (MAX_PARTS) and signed before any is fetched
        parts: dict[int, dict[str, Any]] = {}
        for index in range(1, info.parts):
            try:
                parts[index] = await self.kube.get(SECRETS.path(owner.namespace, part_name(owner.name, number, index)))
            except NotFound:
                continue  # decode names the missing part
        return decode(owner, head, parts)

    async def read_all(self, owner: Owner) -> Everything:
        """Every record of ``owner``, each checked in full (for ``gitopsd history``: one list request)."""
        await self.keys.key()
        items = (
            await self.kube.list(SECRETS.path(owner.namespace), label_selector=f"{LABEL_ENVIRONMENT}={owner.name}")
        ).items
        parts: dict[str, dict[int, dict[str, Any]]] = {}
        heads: list[dict[str, Any]] = []
        for item in items:
            labels = (item.get("metadata") or {}).get("labels") or {}
            index = str(labels.get(LABEL_PART) or "")
            if index:
                if index.isdigit():
                    parts.setdefault(str(labels.get(LABEL_NUMBER)), {})[int(index)] = item
            else:
                heads.append(item)
        releases: list[Release] = []
        invalid: dict[str, ReleaseError] = {}
        for head in heads:
            meta = head.get("metadata") or {}
            number = str((meta.get("labels") or {}).get(LABEL_NUMBER))
            try:
                await self._checked(owner, head)
                releases.append(decode(owner, head, parts.get(number, {})))
            except ReleaseError as exc:
                invalid[str(meta.get("name"))] = exc
        return Everything(sorted(releases, key=lambda r: r.info.number), invalid, self.keys.problem)

    async def write(self, owner: Owner, info: ReleaseInfo, manifests: Sequence[Manifest]) -> Written:
        """Write a new record: parts first, then the head (created, so a number is never taken twice).

        Raises ``RecordExists`` when the head exists already, ``ReleaseError`` when too large.
        """
        key = await self.keys.signing_key()
        info, secrets = encode(owner, info, manifests)
        *parts, head = secrets
        head["metadata"]["annotations"][signing.SIGNATURE] = signing.sign(key, owner, info)
        for part in parts:
            meta = part["metadata"]
            await self.kube.apply(
                SECRETS.path(owner.namespace, meta["name"]), part, field_manager=self.field_manager, force=True
            )
        try:
            await self.kube.create(SECRETS.path(owner.namespace), head)
        except Conflict:
            raise RecordExists(
                f"release {info.number} of {owner.key} was recorded by another writer", reason="ReleaseExists"
            ) from None
        return Written(info, info.size, len(secrets))

    async def mark(self, owner: Owner, info: ReleaseInfo) -> None:
        """Record ``info``'s verdict (result, reason, finished-at) on its head, signed anew."""
        await self._patch_signed(owner, info, result_patch(info))

    async def mark_verification(self, owner: Owner, info: ReleaseInfo) -> None:
        """Record ``info``'s verification verdict on its head, signed anew."""
        await self._patch_signed(owner, info, verification_patch(info))

    async def _patch_signed(self, owner: Owner, info: ReleaseInfo, patch: dict[str, Any]) -> None:
        key = await self.keys.signing_key()
        patch["metadata"].setdefault("annotations", {})[signing.SIGNATURE] = signing.sign(key, owner, info)
        await self.kube.patch(
            SECRETS.path(owner.namespace, secret_name(owner.name, info.number)), patch, field_manager=self.field_manager
        )

    async def delete(self, owner: Owner, info: ReleaseInfo) -> None:
        """Delete a record: the head first (so no reader sees a head without its parts), then the parts.

        ``info.parts`` comes from a checked head (at most ``MAX_PARTS``): this never loops over a forged count.
        """
        names = [secret_name(owner.name, info.number)]
        names += [part_name(owner.name, info.number, i) for i in range(1, info.parts)]
        for name in names:
            with contextlib.suppress(NotFound):
                await self.kube.delete(SECRETS.path(owner.namespace, name))
