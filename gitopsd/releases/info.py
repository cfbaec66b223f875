"""The values of a release record: its names, labels and limits, the Environment it belongs to, its facts.

Split from ``record`` (the Secrets' format and the checks on reading them) so that the signing
and payload modules share these types without importing the format.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Sequence
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
ANNOTATION_PREFIX = "release.gitopsd.dev/"
#: Compressed bytes per Secret: the API server refuses Secrets over 1 MiB of data.
CHUNK = 900 * 1024
MAX_PARTS = 8
#: The most compressed bytes a record holds (all its parts), and the most its bundle inflates to:
#: a record is refused at writing beyond either, and reading stops at them.
MAX_PACKED = CHUNK * MAX_PARTS
MAX_BUNDLE = 64 * 1024 * 1024
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
    packed: str = ""  # sha256:<hex> of the compressed bundle (all parts joined); signed
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
