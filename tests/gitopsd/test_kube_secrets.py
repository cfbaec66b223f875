"""Reading a Secret's values (``gitopsd.kube.secrets``): decoded bytes, and errors naming Secret and key.

An in-memory map of paths to objects stands in for the API server: what is tested is the
decoding and the messages, not HTTP (the Secret readers' cluster tests cover that).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gitopsd.kube import secrets
from gitopsd.kube.errors import NotFound


class Objects:
    """GET by path from a dict; NotFound (404) for anything else, as the API server answers."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        if path not in self.objects:
            raise NotFound(404, "NotFound", f"{path} not found")
        return self.objects[path]


def secret(**data: bytes | str) -> dict[str, Any]:
    encoded = {k: v if isinstance(v, str) else base64.b64encode(v).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "data": encoded}


PATH = "/api/v1/namespaces/ops/secrets/git"


async def test_values_are_decoded_bytes_by_key() -> None:
    """Every key of ``data`` decoded from base64, binary values kept as bytes."""
    kube = Objects({PATH: secret(username=b"bot", key=b"\x00\xff")})
    data = await secrets.read(kube, "ops", "git")
    assert dict(data) == {"username": b"bot", "key": b"\x00\xff"}
    assert data.text("username") == "bot"
    assert await secrets.read_key(kube, "ops", "git", "key") == b"\x00\xff"


async def test_a_secret_without_data_has_no_keys() -> None:
    """A Secret with no ``data`` reads as empty; asking for a key says there are none."""
    kube = Objects({PATH: {"kind": "Secret"}})
    data = await secrets.read(kube, "ops", "git")
    assert len(data) == 0
    with pytest.raises(secrets.SecretNotFound, match=r"^Secret ops/git has no key 'token' \(keys: none\)$"):
        data.require("token")


async def test_a_missing_secret_names_namespace_name_and_the_field_that_pointed_there() -> None:
    """Not found: SecretNotFound (reason SecretNotFound) with the ``where`` prefix."""
    with pytest.raises(secrets.SecretNotFound) as err:
        await secrets.read(Objects({}), "ops", "git", where="spec.source.secretRef")
    assert str(err.value) == "spec.source.secretRef: Secret ops/git not found"
    assert err.value.reason == "SecretNotFound"


async def test_a_missing_key_lists_the_keys_there_are() -> None:
    """A key the Secret lacks: the error names it and lists the keys present, sorted."""
    kube = Objects({PATH: secret(b=b"1", a=b"2")})
    with pytest.raises(secrets.SecretNotFound) as err:
        await secrets.read_key(kube, "ops", "git", "token", where="webhooks.github.secretRef")
    assert str(err.value) == "webhooks.github.secretRef: Secret ops/git has no key 'token' (keys: a, b)"


async def test_a_value_that_is_not_base64_or_not_text_is_named_by_key() -> None:
    """Undecodable base64, or bytes asked for as text that are not UTF-8: SecretInvalid naming the key."""
    kube = Objects({PATH: secret(bad="not*base64", blob=b"\xff\xfe")})
    with pytest.raises(secrets.SecretError) as err:
        await secrets.read(kube, "ops", "git")
    assert (str(err.value), err.value.reason) == ("Secret ops/git: key 'bad' is not base64", "SecretInvalid")
    data = secrets.decode(secret(blob=b"\xff\xfe"), "ops", "git", where="spec.substituteFrom")
    with pytest.raises(
        secrets.SecretError, match=r"^spec.substituteFrom: Secret ops/git: key 'blob' is not UTF-8 text$"
    ):
        data.text("blob")
