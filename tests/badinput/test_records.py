"""Bad input, release records: Secrets that look like records but are forged, foreign, oversized or broken.

Each case writes a good, signed record through ``ReleaseStore.write`` (to an in-memory
cluster), tampers with its Secrets the way someone who may write Secrets in the namespace
could, then reads it back as a restore does (``ReleaseStore.read``). Every case must fail with
its own reason and a message naming the record and what is wrong (field, limit), must return
nothing (a read either yields the whole bundle or raises), and must stay within its bounds: no
part is fetched past the head's checked count, and nothing inflates past ``MAX_BUNDLE``.
Cases marked "re-signed" recompute the signature with the daemon's key (as if it had leaked),
to show the size bounds hold on their own. The listing (``scan``) is checked too: a record
whose head fails is never a rollback target.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import re
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gitopsd.model import Manifest
from gitopsd.releases import history, signing
from gitopsd.releases.info import MAX_BUNDLE, MAX_PARTS, Owner, ReleaseError, ReleaseInfo, Result
from gitopsd.releases.record import LABEL_RESULT, digest_of, part_name, secret_name
from gitopsd.releases.record import info_of as info_of_secret
from gitopsd.releases.store import SECRETS, ReleaseStore
from tests.fakes import FakeKube

A = "release.gitopsd.dev/"
OWNER = Owner("ops", "prod", "uid-prod")
NAME = secret_name("prod", 1)
HEAD = SECRETS.path("ops", NAME)
NOT_SIGNED = (
    "release 1 of ops/prod is not signed by this gitopsd (forged or from another installation): refusing to restore it"
)
Head = dict[str, Any]


def _manifests(payload: str = "x") -> list[Manifest]:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": payload}}
    return [Manifest(obj, "deploy/c.yaml")]


def _gzip(data: bytes, level: int = 6) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def _bomb() -> bytes:
    """About 900 KiB of gzip that inflates to 900 MiB of zeros (streamed: never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join([packer.compress(block) for _ in range(900)] + [packer.flush()])


@dataclass
class Env:
    kube: FakeKube
    store: ReleaseStore
    key: bytes

    def resign(self, head: Head) -> None:
        """Recompute packed/size from the Secrets' bytes and sign (the daemon's key, as if leaked)."""
        notes = head["metadata"]["annotations"]
        packed = base64.b64decode(head["data"]["bundle"])
        notes[A + "packed"] = "sha256:" + hashlib.sha256(packed).hexdigest()
        notes[A + "size"] = str(len(packed))
        info = info_of_secret(OWNER, head)
        notes[signing.SIGNATURE] = signing.sign(self.key, OWNER, info)


def _setup() -> Env:
    kube = FakeKube(namespaces=("ops", "gitopsd-system"))
    keys = signing.Keyring(kube, "gitopsd-system", name="key-badinput-records")
    store = ReleaseStore(kube, keys=keys)
    manifests = _manifests()
    info = ReleaseInfo(1, "v1@sha1:abc", digest_of(manifests), "2026-12-07T00:00:00Z", Result.FAILED)
    asyncio.run(store.write(OWNER, info, manifests))
    key = asyncio.run(keys.signing_key())
    return Env(kube, store, key)


def _put(env: Env, head: Head) -> None:
    """Overwrite the head (unconditionally, as ``kubectl replace --force`` would)."""
    body = copy.deepcopy(head)
    body["metadata"].pop("resourceVersion", None)
    asyncio.run(env.kube.replace(HEAD, body))


def _set(key: str, value: str | None) -> Callable[[Env, Head], None]:
    def tamper(env: Env, head: Head) -> None:
        notes = head["metadata"]["annotations"]
        if value is None:
            notes.pop(A + key, None)
        else:
            notes[A + key] = value

    return tamper


def _bundle(packed: bytes, resign: bool = True) -> Callable[[Env, Head], None]:
    def tamper(env: Env, head: Head) -> None:
        head["data"]["bundle"] = base64.b64encode(packed).decode()
        if resign:
            env.resign(head)

    return tamper


def _other_key(env: Env, head: Head) -> None:
    head["metadata"]["annotations"][signing.SIGNATURE] = signing.sign(b"k" * 32, OWNER, info_of_secret(OWNER, head))


def _copied_from_staging(env: Env, head: Head) -> None:
    """A genuine record of Environment staging (signed by this gitopsd), renamed and relabelled as prod's."""
    staging = Owner("ops", "staging", "uid-staging")
    info = info_of_secret(OWNER, head)
    head["metadata"]["annotations"][signing.SIGNATURE] = signing.sign(env.key, staging, info)


def _forged_healthy(env: Env, head: Head) -> None:
    """Digests recomputed for a new bundle, result Healthy: everything but the key."""
    manifests = _manifests("evil")
    raw = (
        b'[{"object":{"apiVersion":"v1","data":{"v":"evil"},"kind":"ConfigMap","metadata":{"name":"c"}},"origin":"x"}]'
    )
    packed = _gzip(raw)
    head["data"]["bundle"] = base64.b64encode(packed).decode()
    notes = head["metadata"]["annotations"]
    notes[A + "digest"] = digest_of(manifests)
    notes[A + "packed"] = "sha256:" + hashlib.sha256(packed).hexdigest()
    notes[A + "size"] = str(len(packed))
    head["metadata"]["labels"][LABEL_RESULT] = "Healthy"


def _two_parts(env: Env, head: Head) -> None:
    head["metadata"]["annotations"][A + "parts"] = "2"
    env.resign(head)


def _resigned(tamper: Callable[[Env, Head], None]) -> Callable[[Env, Head], None]:
    def both(env: Env, head: Head) -> None:
        tamper(env, head)
        notes = head["metadata"]["annotations"]
        notes[signing.SIGNATURE] = signing.sign(env.key, OWNER, info_of_secret(OWNER, head))

    return both


def _owner_uid(env: Env, head: Head) -> None:
    head["metadata"]["ownerReferences"][0]["uid"] = "uid-other"


GOOD = _gzip(b"[]")
CASES: list[tuple[str, Callable[[Env, Head], None], str, str]] = [
    # id, tamper, reason, words in the message
    ("parts negative", _set("parts", "-1"), "ReleaseCorrupted", f"annotation {A}parts is '-1', not a number"),
    ("parts huge", _set("parts", "10000000"), "ReleaseCorrupted", f"parts is 10000000: a record has 1 to {MAX_PARTS}"),
    ("parts zero", _set("parts", "0"), "ReleaseCorrupted", f"parts is 0: a record has 1 to {MAX_PARTS} parts"),
    ("parts not numeric", _set("parts", "many"), "ReleaseCorrupted", f"annotation {A}parts is 'many', not a number"),
    ("parts overlong", _set("parts", "9" * 5000), "ReleaseCorrupted", f"{A}parts is '{'9' * 36}…, not a number"),
    ("parts missing", _set("parts", None), "ReleaseCorrupted", f"has no annotation {A}parts"),
    ("size huge", _set("size", "999999999"), "ReleaseCorrupted", f"{A}size is 999999999 bytes: more than 921600"),
    ("packed malformed", _set("packed", "md5:1"), "ReleaseCorrupted", f"{A}packed is 'md5:1', not sha256:<64 hex"),
    ("signature missing", _set("signature", None), "ReleaseNotSigned", NOT_SIGNED),
    ("signature short", _set("signature", "hmac-sha256:ab"), "ReleaseNotSigned", NOT_SIGNED),
    ("signature of another key", _other_key, "ReleaseNotSigned", NOT_SIGNED),
    ("record of another Environment copied in", _copied_from_staging, "ReleaseNotSigned", NOT_SIGNED),
    ("forged Healthy with recomputed digests", _forged_healthy, "ReleaseNotSigned", NOT_SIGNED),
    (
        "result relabelled Healthy",
        lambda e, h: h["metadata"]["labels"].update({LABEL_RESULT: "Healthy"}),
        "ReleaseNotSigned",
        NOT_SIGNED,
    ),
    (
        "legacy unsigned record",
        lambda e, h: [_set(k, None)(e, h) for k in ("signature", "packed")],
        "ReleaseNotSigned",
        NOT_SIGNED,
    ),
    ("owner uid of another Environment", _owner_uid, "ReleaseForeign", "is not owned by Environment ops/prod"),
    (
        "bundle not base64 (re-signed)",
        _resigned(lambda e, h: h["data"].update(bundle="%%%")),
        "ReleaseCorrupted",
        "data.bundle is not base64",
    ),
    (
        "bundle over a part's size",
        _bundle(b"\0" * (921600 + 3), resign=False),
        "ReleaseCorrupted",
        "data.bundle is 1228804 characters of base64, more than a part holds (1228800)",
    ),
    (
        "bundle swapped (packed digest)",
        _bundle(GOOD, resign=False),
        "ReleaseCorrupted",
        "its compressed bundle's digest is sha256:",
    ),
    ("truncated gzip (re-signed)", _bundle(GOOD[:-9]), "ReleaseCorrupted", "truncated (the gzip stream ends early)"),
    ("not gzip (re-signed)", _bundle(b"PK\x03\x04 a zip"), "ReleaseCorrupted", "its bundle is not gzip data"),
    (
        "bytes after the gzip stream (re-signed)",
        _bundle(GOOD + b"junk"),
        "ReleaseCorrupted",
        "has 4 bytes after the gzip stream",
    ),
    ("inflate bomb (re-signed)", _bundle(_bomb()), "ReleaseCorrupted", "inflates to more than 64 MiB (the most"),
    (
        "wrong bundle digest (re-signed)",
        _resigned(_set("digest", "sha256:" + "0" * 64)),
        "ReleaseCorrupted",
        "its bundle's digest is sha256:",
    ),
    ("part missing (re-signed)", _two_parts, "ReleaseCorrupted", "part 1 of 2 is missing"),
]


@pytest.fixture(scope="module")
def env() -> Env:
    return _setup()


@pytest.mark.parametrize(("tamper", "reason", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_record_is_refused_naming_why_and_within_bounds(
    env: Env, tamper: Callable[[Env, Head], None], reason: str, words: str
) -> None:
    """Refused with its reason and a message naming the record and the field or limit; bounded; nothing returned."""
    good = asyncio.run(env.kube.get(HEAD))
    head = copy.deepcopy(good)
    tamper(env, head)
    _put(env, head)
    try:
        env.kube.stats.reset()
        tracemalloc.start()
        with pytest.raises(ReleaseError) as err:
            asyncio.run(env.store.read(OWNER, 1))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        message = str(err.value)
        assert err.value.reason == reason and words in message, message
        assert "release 1 of ops/prod" in message or f"Secret ops/{NAME}" in message, message
        assert len(message) < 400, message  # an overlong value is shortened, not echoed
        # Bounded: the head, plus at most the parts its checked count allows; memory within the inflate limit.
        gets = sum(n for (verb, _), n in env.kube.stats.calls.items() if verb == "GET")
        assert gets <= MAX_PARTS, env.kube.stats.snapshot()
        assert peak < MAX_BUNDLE + 16 * 1024 * 1024, peak
        listing = asyncio.run(env.store.scan(OWNER))
        if reason != "ReleaseCorrupted" or A in words:
            # a head that fails: never a rollback target, and named when asked for
            assert 1 not in listing.records and NAME in listing.invalid
            invalid = {1: listing.invalid[NAME].message}
            with pytest.raises(ReleaseError, match="release 1 of ops/prod"):
                history.target(listing.records, 2, 1, environment="ops/prod", limit=10, invalid=invalid)
            assert history.last_healthy(listing.records) is None
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        _put(env, good)
    assert asyncio.run(env.store.read(OWNER, 1)).manifests == tuple(_manifests())  # the good one still reads


def test_the_count_of_bad_record_cases() -> None:
    """The corpus holds at least 12 bad records."""
    assert len(CASES) >= 12


def test_a_huge_part_count_deletes_only_what_exists(env: Env) -> None:
    """History pruning of a record never loops over its head's count: the count is checked when listed."""
    good = asyncio.run(env.kube.get(HEAD))
    head = copy.deepcopy(good)
    _set("parts", "10000000")(env, head)
    _put(env, head)
    try:
        listing = asyncio.run(env.store.scan(OWNER))
        assert listing.records == {} and "parts is 10000000" in listing.invalid[NAME].message
        # Prune works from listed records only: this one is not among them, so nothing loops.
        assert history.to_prune(listing.records, 0, None) == []
    finally:
        _put(env, good)


def test_a_part_of_another_record_is_not_accepted(env: Env) -> None:
    """A head re-signed for 2 parts whose part Secret is of another type is refused naming the part."""
    good = asyncio.run(env.kube.get(HEAD))
    head = copy.deepcopy(good)
    _two_parts(env, head)
    _put(env, head)
    part = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": part_name("prod", 1, 1), "namespace": "ops"}, "data": {"bundle": ""}}  # fmt: skip
    asyncio.run(env.kube.create(SECRETS.path("ops"), part))
    try:
        with pytest.raises(ReleaseError, match=re.escape("part 1 is not a gitopsd.dev/release-part.v1 Secret for it")):
            asyncio.run(env.store.read(OWNER, 1))
    finally:
        asyncio.run(env.kube.delete(SECRETS.path("ops", part_name("prod", 1, 1))))
        _put(env, good)
