"""Unit tests for the release record format (gitopsd/releases/record.py): encode, decode, checks, split."""

from __future__ import annotations

import base64
import copy
import gzip
import os
from typing import Any

import pytest

from gitopsd.model import Manifest
from gitopsd.releases import record
from gitopsd.releases.record import Owner, ReleaseError, ReleaseInfo, Result

OWNER = Owner("ops", "prod", "uid-1")


def _manifests(n: int = 3, payload: str = "") -> list[Manifest]:
    return [
        Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"v": payload}},
                 f"deploy/c{i}.yaml")
        for i in range(n)
    ]  # fmt: skip


def _info(manifests: list[Manifest], number: int = 7, **extra: Any) -> ReleaseInfo:
    return ReleaseInfo(number, "v1@sha1:abc", record.digest_of(manifests), "2026-11-22T20:00:00Z", Result.PENDING,
                       **extra)  # fmt: skip


def _split(secrets: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    *parts, head = secrets
    return head, {int(p["metadata"]["labels"][record.LABEL_PART]): p for p in parts}


def test_a_record_round_trips_with_its_metadata_and_digest() -> None:
    """encode → decode gives back the bundle and every fact; the head is named and labelled like Helm's."""
    manifests = _manifests()
    info, secrets = record.encode(OWNER, _info(manifests, note="rollback to 3", restored_from=3, request="t"),
                                  manifests)  # fmt: skip
    [head] = secrets
    meta = head["metadata"]
    assert head["type"] == "gitopsd.dev/release.v1" and meta["name"] == "gitopsd.release.v1.prod.v7"
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "gitopsd",
        "gitopsd.dev/release-of": "prod",
        "gitopsd.dev/release": "7",
        "gitopsd.dev/result": "Pending",
    }
    assert meta["ownerReferences"][0]["uid"] == "uid-1" and meta["ownerReferences"][0]["kind"] == "Environment"
    release = record.decode(OWNER, head, {})
    assert release.manifests == tuple(manifests)
    assert release.info == info and info.objects == 3 and info.parts == 1 and info.size > 0
    assert (release.info.note, release.info.restored_from, release.info.request) == ("rollback to 3", 3, "t")
    assert record.digest_of(list(release.manifests)) == info.digest


def test_the_same_bundle_encodes_to_the_same_bytes() -> None:
    """Rewriting a record after a crash writes identical data (gzip without a timestamp)."""
    manifests = _manifests()
    a = record.encode(OWNER, _info(manifests), manifests)[1][0]["data"]
    b = record.encode(OWNER, _info(manifests), list(reversed(list(reversed(manifests)))))[1][0]["data"]
    assert a == b


def test_a_large_bundle_is_split_parts_first_and_verified_whole() -> None:
    """A bundle over one Secret goes to parts written before the head; a missing part is named."""
    noise = base64.b64encode(os.urandom(600 * 1024)).decode()  # incompressible
    manifests = _manifests(2, noise)
    info, secrets = record.encode(OWNER, _info(manifests), manifests)
    assert info.parts == len(secrets) >= 2
    assert [s["type"] for s in secrets] == [record.PART_TYPE] * (info.parts - 1) + [record.RELEASE_TYPE]
    assert all(len(base64.b64decode(s["data"]["bundle"])) <= record.CHUNK for s in secrets)
    head, parts = _split(secrets)
    assert record.decode(OWNER, head, parts).manifests == tuple(manifests)
    with pytest.raises(ReleaseError, match="part 1 of"):
        record.decode(OWNER, head, {})


def test_a_bundle_too_large_for_any_record_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More than MAX_PARTS Secrets' worth: ReleaseTooLarge, with the sizes in the message."""
    monkeypatch.setattr(record, "MAX_PARTS", 2)
    noise = base64.b64encode(os.urandom(record.CHUNK * 2)).decode()
    manifests = _manifests(1, noise)
    with pytest.raises(ReleaseError) as err:
        record.encode(OWNER, _info(manifests), manifests)
    assert err.value.reason == "ReleaseTooLarge" and "KiB compressed" in str(err.value)


def _head(manifests: list[Manifest] | None = None) -> dict[str, Any]:
    manifests = manifests or _manifests()
    return record.encode(OWNER, _info(manifests), manifests)[1][-1]


@pytest.mark.parametrize(
    ("tamper", "reason", "words"),
    [
        (lambda s: s.update(type="Opaque"), "ReleaseForeign", "has type 'Opaque'"),
        (lambda s: s["metadata"].update(name="gitopsd.release.v1.staging.v7"), "ReleaseForeign", "is not named"),
        (lambda s: s["metadata"]["labels"].update({"gitopsd.dev/release": "8"}), "ReleaseForeign", "lacks the labels"),
        (lambda s: s["metadata"].update(ownerReferences=[]), "ReleaseForeign", "not owned by Environment ops/prod"),
        (
            lambda s: s["metadata"]["ownerReferences"][0].update(uid="other"),
            "ReleaseForeign",
            "not owned by Environment ops/prod",
        ),
        (lambda s: s["metadata"]["labels"].update({"gitopsd.dev/result": "Great"}), "ReleaseCorrupted", "'Great'"),
        (
            lambda s: s["metadata"]["annotations"].update({"release.gitopsd.dev/digest": "sha256:00"}),
            "ReleaseCorrupted",
            "not sha256:<64 hex digits>",
        ),
        (
            lambda s: s["data"].update(bundle=base64.b64encode(gzip.compress(b"[]")).decode()),
            "ReleaseCorrupted",
            "digest is sha256:",
        ),
        (
            lambda s: s["data"].update(bundle=base64.b64encode(b"not gzip").decode()),
            "ReleaseCorrupted",
            "compressed bundle's digest is",
        ),
        (lambda s: s["data"].update(bundle="%%%"), "ReleaseCorrupted", "not base64"),
        (lambda s: s.pop("data"), "ReleaseCorrupted", "has no data.bundle"),
    ],
)
def test_foreign_or_corrupted_secrets_are_refused_naming_why(tamper: Any, reason: str, words: str) -> None:
    """Wrong type, name, labels or owner is foreign; bad result, digest or bundle is corrupted."""
    head = copy.deepcopy(_head())
    tamper(head)
    with pytest.raises(ReleaseError) as err:
        record.decode(OWNER, head, {})
    assert err.value.reason == reason and words in str(err.value), str(err.value)


def test_a_verdict_is_a_small_merge_patch() -> None:
    """Marking a result touches only the result label and the finished-at / reason annotations."""
    info = _info(_manifests()).with_result(Result.FAILED, "2026-11-22T20:05:00Z", "HealthCheckFailed")
    patch = record.result_patch(info)
    assert patch == {
        "metadata": {
            "labels": {"gitopsd.dev/result": "Failed"},
            "annotations": {
                "release.gitopsd.dev/finished-at": "2026-11-22T20:05:00Z",
                "release.gitopsd.dev/reason": "HealthCheckFailed",
            },
        }
    }
    head = _head()
    head["metadata"]["labels"].update(patch["metadata"]["labels"])
    head["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    assert record.info_of(OWNER, head).result is Result.FAILED
