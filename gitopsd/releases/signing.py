"""Release records signed by the gitopsd that wrote them, so a forged one is never restored.

Records are Secrets in the Environment's namespace: whoever may write Secrets there could
otherwise write a "Healthy" record (with a recomputed digest) that a rollback would apply with
gitopsd's rights. Each head carries ``release.gitopsd.dev/signature``: HMAC-SHA256, under a key
only gitopsd holds, over every fact that decides a restore (the owner's namespace, name and uid,
the number, revision, digests of the bundle and of its compressed bytes, parts and size, the
verdicts...: ``message``). A verdict written later is signed again with it.

The key is 32 random bytes in the Secret ``gitopsd-release-signing`` of the daemon's own
namespace (``daemon_namespace``), created on first start (``ensure_key``; of two replicas
starting together, one creates it and the other reads the winner's). The CLI reads the same
Secret to check records (``Keyring(create=False, required=False)``): a user who may not read it
is told so, and the daemon still checks before it restores anything.

Not supported (docs/releases.md): rotating the key (records signed with an old key would fail
their check), and records written before signing existed (unsigned: refused like forged ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.errors import GitopsdError
from gitopsd.kube import Conflict, Forbidden, KubeAPI, KubeError, NotFound, Resource
from gitopsd.releases.info import ANNOTATION_PREFIX, Owner, ReleaseError, ReleaseInfo

KEY_SECRET = "gitopsd-release-signing"  # noqa: S105 (a Secret's name, not its value)
KEY_TYPE = "gitopsd.dev/release-signing-key.v1"
KEY_BYTES = 32
SIGNATURE = ANNOTATION_PREFIX + "signature"
_SCHEME = "hmac-sha256:"
_SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)
_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: The CLI's default: where manifests/gitopsd installs the daemon.
INSTALL_NAMESPACE = "gitopsd-system"
# The daemon's key, by (API server, "namespace/name"): read once per process.
_KEYS: dict[tuple[str, str], bytes] = {}
# Where the key ensured at start is, by API server: the daemon's stores use that one.
_ENSURED: dict[str, tuple[str, str]] = {}


class SigningKeyError(GitopsdError):
    """The signing key Secret cannot be read, created or used."""

    reason = "SigningKeyUnavailable"


def daemon_namespace(watched: str | None = None) -> str:
    """Where the daemon keeps its key: ``$POD_NAMESPACE``, else the Pod's namespace, else the
    namespace it watches (``--namespace``), else ``default``.

    Like the leader-election Lease (``$POD_NAMESPACE``, then ``--namespace``); out of a cluster
    (a developer's run, the test harness, the demo) the watched namespace.
    """
    found = os.environ.get("POD_NAMESPACE")
    if found:
        return found
    try:
        own = _POD_NAMESPACE_FILE.read_text().strip()
    except OSError:
        own = ""
    return own or watched or "default"


def cli_namespace(flag: str | None) -> str:
    """Where the CLI looks for the key: ``--gitopsd-namespace``, else ``$GITOPSD_NAMESPACE``, else gitopsd-system."""
    return flag or os.environ.get("GITOPSD_NAMESPACE") or INSTALL_NAMESPACE


async def ensure_key(kube: KubeAPI, namespace: str, name: str = KEY_SECRET) -> bytes:
    """The key in Secret ``namespace/name``, created (32 random bytes) when absent; race-safe.

    Remembered for the process: the daemon's stores then sign and check without a request, even
    through an impersonating client that may not read gitopsd's namespace.
    """
    key = await _ensure(kube, namespace, name)
    _KEYS[(kube.server, f"{namespace}/{name}")] = key
    _ENSURED.setdefault(kube.server, (namespace, name))
    return key


async def _ensure(kube: KubeAPI, namespace: str, name: str) -> bytes:
    path = _SECRETS.path(namespace, name)
    where = f"Secret {namespace}/{name}"
    try:
        return _key_of(await kube.get(path), where)
    except NotFound:
        pass
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": KEY_TYPE,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "gitopsd"}},
        "data": {"key": base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()},
    }
    try:
        return _key_of(await kube.create(_SECRETS.path(namespace), body), where)
    except Conflict:  # another replica created it first: use the winner's
        return _key_of(await kube.get(path), where)


async def read_key(kube: KubeAPI, namespace: str, name: str = KEY_SECRET) -> bytes:
    """The key in Secret ``namespace/name`` (never created: the CLI's view); ``SigningKeyError`` saying why not."""
    where = f"Secret {namespace}/{name}"
    try:
        return _key_of(await kube.get(_SECRETS.path(namespace, name)), where)
    except NotFound:
        raise SigningKeyError(
            f"the release signing key ({where}) does not exist: is gitopsd running in namespace {namespace}? "
            "(give --gitopsd-namespace or set GITOPSD_NAMESPACE)"
        ) from None
    except Forbidden:
        raise SigningKeyError(f"you may not read the release signing key ({where}; RBAC: get secrets)") from None


def _key_of(secret: Mapping[str, Any], where: str) -> bytes:
    text = (secret.get("data") or {}).get("key")
    try:
        key = base64.b64decode(str(text), validate=True) if isinstance(text, str) else b""
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise SigningKeyError(
            f"{where} is not a release signing key: data.key must hold at least {KEY_BYTES} bytes "
            "(delete it only if no record signed with it is needed: they would all be refused)"
        )
    return key


@dataclass(slots=True)
class Keyring:
    """The key a ``ReleaseStore`` signs and checks with, read on first use.

    The daemon's (``create=True``): created when absent, and any failure to get it is an error;
    with no ``namespace``, the key ``ensure_key`` made sure of at start (else
    ``daemon_namespace()``). The CLI's (``create=False, required=False``): a key it cannot read
    leaves signatures unchecked, with ``problem`` saying why.
    """

    kube: KubeAPI
    namespace: str | None = None
    name: str = KEY_SECRET
    create: bool = True
    required: bool = True
    problem: str | None = None
    _key: bytes | None = field(default=None, repr=False)
    _loaded: bool = False

    async def key(self) -> bytes | None:
        if self._loaded:
            return self._key
        if self.namespace is None:
            self.namespace, self.name = _ENSURED.get(self.kube.server) or (daemon_namespace(), self.name)
        cache = (self.kube.server, f"{self.namespace}/{self.name}")
        if self.create and cache in _KEYS:
            self._key, self._loaded = _KEYS[cache], True
            return self._key
        try:
            if self.create:
                self._key = await ensure_key(self.kube, self.namespace, self.name)
            else:
                self._key = await read_key(self.kube, self.namespace, self.name)
        except SigningKeyError as exc:
            if self.required:
                raise
            self.problem = str(exc)
        except KubeError as exc:
            message = f"cannot read the release signing key (Secret {self.namespace}/{self.name}): {exc}"
            if self.required:
                raise SigningKeyError(message, transient=True) from None
            self.problem = message
        self._loaded = True
        return self._key

    async def signing_key(self) -> bytes:
        """The key, for writing: always required (an unsigned record would be refused later)."""
        key = await self.key()
        if key is None:
            raise SigningKeyError(f"cannot sign release records: {self.problem}")
        return key


def message(owner: Owner, info: ReleaseInfo) -> bytes:
    """The bytes a signature covers: every fact of ``info`` that decides a restore, and its owner."""
    facts = {
        "v": 1,
        "namespace": owner.namespace,
        "environment": owner.name,
        "uid": owner.uid,
        "number": info.number,
        "revision": info.revision,
        "digest": info.digest,
        "packed": info.packed,
        "parts": info.parts,
        "size": info.size,
        "objects": info.objects,
        "result": str(info.result),
        "appliedAt": info.applied_at,
        "appliedBy": info.applied_by or "gitopsd",
        "note": info.note,
        "trigger": info.trigger or "sync",
        "restoredFrom": info.restored_from,
        "request": info.request,
        "finishedAt": info.finished_at,
        "reason": info.reason,
        "verification": info.verification,
        "verificationMessage": info.verification_message[:1024] if info.verification else "",
        "verificationEnforced": info.verification_enforced if info.verification else True,
    }
    return json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: bytes, owner: Owner, info: ReleaseInfo) -> str:
    return _SCHEME + hmac.new(key, message(owner, info), hashlib.sha256).hexdigest()


def check(key: bytes, owner: Owner, info: ReleaseInfo, annotations: Mapping[str, Any]) -> None:
    """Raise ``ReleaseError`` (reason ``ReleaseNotSigned``) unless ``annotations`` sign ``info`` under ``key``."""
    given = annotations.get(SIGNATURE)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), sign(key, owner, info).encode()):
        raise not_signed(owner, info.number)


def not_signed(owner: Owner, number: int) -> ReleaseError:
    return ReleaseError(
        f"release {number} of {owner.key} is not signed by this gitopsd (forged or from another installation): "
        "refusing to restore it",
        reason="ReleaseNotSigned",
    )
