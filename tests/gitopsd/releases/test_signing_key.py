"""Unit tests for gitopsd/releases/signing.py: the key Secret (created once, races, bad ones) and what is signed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import pytest

from gitopsd.kube import NotFound
from gitopsd.releases import signing
from gitopsd.releases.info import Owner, ReleaseInfo, Result
from gitopsd.releases.store import SECRETS
from tests.fakes import FakeKube

OWNER = Owner("ops", "prod", "uid-1")
INFO = ReleaseInfo(
    3, "v1@sha1:abc", "sha256:" + "a" * 64, "2026-12-07T00:00:00Z", Result.HEALTHY, packed="sha256:" + "b" * 64,
    parts=1, size=100, objects=2,
)  # fmt: skip


class RacingKube(FakeKube):
    """Another replica creates the key between this one's GET (404) and its create (409)."""

    def __init__(self) -> None:
        super().__init__(namespaces=("gitopsd-system",))
        self.raced = False

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        if not self.raced and path.endswith("/" + signing.KEY_SECRET):
            self.raced = True
            winner = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": signing.KEY_SECRET},
                      "data": {"key": base64.b64encode(b"w" * 32).decode()}}  # fmt: skip
            await self.create(SECRETS.path("gitopsd-system"), winner)
            raise NotFound(404, "NotFound", "not yet")
        return await super().get(path, **params)


def test_the_key_is_created_once_and_then_read() -> None:
    """Absent: 32 random bytes created; present: read back, not rewritten."""
    kube = FakeKube(namespaces=("gitopsd-system",))
    first = asyncio.run(signing.ensure_key(kube, "gitopsd-system", "key-unit-1"))
    stored = asyncio.run(kube.get(SECRETS.path("gitopsd-system", "key-unit-1")))
    assert len(first) == 32 and base64.b64decode(stored["data"]["key"]) == first
    assert stored["type"] == signing.KEY_TYPE
    kube.stats.reset()
    assert asyncio.run(signing.ensure_key(kube, "gitopsd-system", "key-unit-1")) == first
    assert kube.stats.writes == 0


def test_of_two_replicas_the_loser_reads_the_winners_key() -> None:
    """GET 404, then create 409: the key another replica created is used, not a second one."""
    kube = RacingKube()
    assert asyncio.run(signing.ensure_key(kube, "gitopsd-system")) == b"w" * 32


@pytest.mark.parametrize("data", [{}, {"key": "c2hvcnQ="}, {"key": "%%%"}])
def test_a_secret_that_is_not_a_key_is_refused_and_kept(data: dict[str, str]) -> None:
    """A Secret of that name without 32 bytes of data.key: an error naming it; never overwritten."""
    kube = FakeKube(namespaces=("gitopsd-system",))
    bad = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key-unit-bad"}, "data": data}
    asyncio.run(kube.create(SECRETS.path("gitopsd-system"), bad))
    with pytest.raises(signing.SigningKeyError, match="gitopsd-system/key-unit-bad is not a release signing key"):
        asyncio.run(signing.ensure_key(kube, "gitopsd-system", "key-unit-bad"))
    assert asyncio.run(kube.get(SECRETS.path("gitopsd-system", "key-unit-bad"))).get("data", {}) == data


def test_the_cli_says_why_it_cannot_check() -> None:
    """Missing key: where it looked and how to point elsewhere; forbidden: the RBAC it lacks."""
    kube = FakeKube(namespaces=("gitopsd-system",))
    ring = signing.Keyring(kube, "gitopsd-system", name="key-unit-cli", create=False, required=False)
    assert asyncio.run(ring.key()) is None
    assert ring.problem is not None and "does not exist" in ring.problem and "--gitopsd-namespace" in ring.problem
    kube.access.deny("alice", SECRETS.path("gitopsd-system"))
    asyncio.run(signing.ensure_key(kube, "gitopsd-system", "key-unit-cli"))
    ring = signing.Keyring(kube.impersonating("alice"), "gitopsd-system", name="key-unit-cli", create=False,
                           required=False)  # fmt: skip
    assert asyncio.run(ring.key()) is None
    assert ring.problem == (
        "you may not read the release signing key (Secret gitopsd-system/key-unit-cli; RBAC: get secrets)"
    )


CHANGES: dict[str, Any] = {
    "number": 4, "revision": "v2@sha1:def", "digest": "sha256:" + "c" * 64, "applied_at": "2026-12-08T00:00:00Z",
    "result": Result.FAILED, "applied_by": "mallory", "note": "rollback to 1", "trigger": "manual",
    "restored_from": 1, "request": "t-1", "finished_at": "2026-12-07T00:01:00Z", "reason": "x", "objects": 3,
    "parts": 2, "size": 101, "packed": "sha256:" + "d" * 64, "verification": "Passed",
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_the_signature_covers_every_fact_that_decides_a_restore(field: str) -> None:
    """Changing any one fact (or the owner) changes the signature; the same facts sign alike."""
    key = b"k" * 32
    signed = signing.sign(key, OWNER, INFO)
    assert signing.sign(key, OWNER, dataclasses.replace(INFO)) == signed
    assert signing.sign(key, OWNER, dataclasses.replace(INFO, **{field: CHANGES[field]})) != signed


def test_the_owner_and_the_key_are_covered() -> None:
    """Another Environment (namespace, name or uid) or another key: another signature."""
    key = b"k" * 32
    signed = signing.sign(key, OWNER, INFO)
    for owner in (Owner("other", "prod", "uid-1"), Owner("ops", "staging", "uid-1"), Owner("ops", "prod", "uid-2")):
        assert signing.sign(key, owner, INFO) != signed
    assert signing.sign(b"j" * 32, OWNER, INFO) != signed
