"""Release records kept on a remote target: keyed by the Environment's namespace/name, not its uid.

On the management cluster a record's head references its Environment (``ownerReferences``:
deleting the Environment deletes its history) and the uid is part of what is checked and
signed. On a target there is no Environment object to reference (the garbage collector would
find the owner missing), and the records must outlive the Environment object that wrote them
(another gitopsd, or a re-created Environment, takes them over). So ``TargetStore`` hands the
store an owner without uid: no ``ownerReferences``, and namespace/name alone identify (and are
signed into) a record. Deleting the Environment leaves its records on the target.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitopsd.model import Manifest
from gitopsd.releases import Owner, ReleaseInfo, ReleaseStore
from gitopsd.releases.info import Release
from gitopsd.releases.store import Everything, Listing, Written


def portable(owner: Owner) -> Owner:
    return Owner(owner.namespace, owner.name, "")


class TargetStore(ReleaseStore):
    async def scan(self, owner: Owner) -> Listing:
        return await super().scan(portable(owner))

    async def read(self, owner: Owner, number: int) -> Release:
        return await super().read(portable(owner), number)

    async def read_all(self, owner: Owner) -> Everything:
        return await super().read_all(portable(owner))

    async def write(self, owner: Owner, info: ReleaseInfo, manifests: Sequence[Manifest]) -> Written:
        return await super().write(portable(owner), info, manifests)

    async def mark(self, owner: Owner, info: ReleaseInfo) -> None:
        await super().mark(portable(owner), info)

    async def mark_verification(self, owner: Owner, info: ReleaseInfo) -> None:
        await super().mark_verification(portable(owner), info)

    async def delete(self, owner: Owner, info: ReleaseInfo) -> None:
        await super().delete(portable(owner), info)


__all__ = ["TargetStore", "portable"]
