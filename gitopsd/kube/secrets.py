"""Reading a Secret's values: the one place gitopsd decodes a Secret's ``data``.

Git credentials, Prometheus credentials, ``substituteFrom`` values and the daemon config's
secret references all read a Secret the same way, and fail the same way: a missing Secret, a
missing key or a value that is not base64 (or not UTF-8 where text is wanted) is an error
naming the namespace, the name and the key, prefixed by the field that pointed there.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gitopsd.errors import GitopsdError
from gitopsd.kube.discovery import Resource
from gitopsd.kube.errors import NotFound

SECRETS = Resource("", "v1", "Secret", "secrets", namespaced=True)


class Getter(Protocol):
    """What reading a Secret needs of a client (``Kube``, ``KubeAPI`` and their fakes have it)."""

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]: ...


class SecretError(GitopsdError):
    """A Secret cannot give what was asked of it."""

    reason = "SecretInvalid"


class SecretNotFound(SecretError):
    """The Secret, or the key asked for, does not exist."""

    reason = "SecretNotFound"


@dataclass(frozen=True, slots=True)
class SecretData(Mapping[str, bytes]):
    """A Secret's decoded values by key; ``where`` prefixes every error (``spec.source.secretRef``)."""

    namespace: str
    name: str
    data: Mapping[str, bytes]
    where: str = ""

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def label(self) -> str:
        return (
            f"{self.where}: Secret {self.namespace}/{self.name}"
            if self.where
            else f"Secret {self.namespace}/{self.name}"
        )

    def require(self, key: str) -> bytes:
        """The value of ``key``; SecretNotFound lists the keys there are when it is missing."""
        if key not in self.data:
            keys = ", ".join(sorted(self.data)) or "none"
            raise SecretNotFound(f"{self.label} has no key {key!r} (keys: {keys})")
        return self.data[key]

    def text(self, key: str) -> str:
        """The value of ``key`` as UTF-8 text."""
        try:
            return self.require(key).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"{self.label}: key {key!r} is not UTF-8 text") from None


def decode(secret: Mapping[str, Any], namespace: str, name: str, where: str = "") -> SecretData:
    """The values of a Secret object as the API returns it (``data``: base64 strings)."""
    values: dict[str, bytes] = {}
    shown = SecretData(namespace, name, {}, where).label
    for key, raw in (secret.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"{shown}: key {key!r} is not base64") from None
    return SecretData(namespace, name, values, where)


async def read(kube: Getter, namespace: str, name: str, *, where: str = "") -> SecretData:
    """Get and decode Secret ``namespace/name``; SecretNotFound when it does not exist."""
    try:
        secret = await kube.get(SECRETS.path(namespace, name))
    except NotFound:
        label = SecretData(namespace, name, {}, where).label
        raise SecretNotFound(f"{label} not found") from None
    return decode(secret, namespace, name, where)


async def read_key(kube: Getter, namespace: str, name: str, key: str, *, where: str = "") -> bytes:
    """One value of Secret ``namespace/name``; SecretNotFound names the Secret or the key missing."""
    return (await read(kube, namespace, name, where=where)).require(key)
