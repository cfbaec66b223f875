"""spec.verification.prometheus.secretRef: the credentials the gate opens Prometheus with, and a Secret
that is missing or holds none stops the deploy with the field and the Secret named."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.unit.decisions.conftest import NAMESPACE, World
from tests.unit.decisions.ports import app
from tests.unit.decisions.test_verification import verification

WHERE = f"spec.verification.prometheus.secretRef: Secret {NAMESPACE}/prom-auth"


def secret(**values: bytes) -> dict[str, Any]:
    data = {key: base64.b64encode(value).decode() for key, value in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-auth", "namespace": NAMESPACE},
            "data": data}  # fmt: skip


def gated(world: World) -> None:
    spec = verification()
    spec["prometheus"] = {**spec["prometheus"], "secretRef": {"name": "prom-auth"}}
    world.source.push("A", app("1"))
    world.create("shop", verification=spec)


async def test_a_token_and_ca_reach_prometheus() -> None:
    """The token (trailing newline trimmed) and ca.crt of the Secret are what the gate connects with."""
    world = World()
    world.kube.seed(secret(token=b"s3cret\n", **{"ca.crt": b"-----BEGIN CERTIFICATE-----"}))
    gated(world)
    assert (await world.reconcile("shop")).release == 1
    connection = world.prometheus.opened[-1]
    assert (connection.token, connection.username, connection.ca) == ("s3cret", None, b"-----BEGIN CERTIFICATE-----")


async def test_username_and_password_reach_prometheus() -> None:
    """username and password of the Secret are the gate's basic-auth credentials."""
    world = World()
    world.kube.seed(secret(username=b"gate", password=b"pa ss"))
    gated(world)
    assert (await world.reconcile("shop")).release == 1
    connection = world.prometheus.opened[-1]
    assert (connection.token, connection.username, connection.password) == (None, "gate", "pa ss")


@pytest.mark.parametrize(
    ("stored", "reason", "message"),
    [
        (None, "SecretNotFound", f"{WHERE} not found"),
        (secret(user=b"x"), "SecretInvalid", f"{WHERE} holds neither 'token' nor 'username' and 'password'"),
        (secret(token=b"\xff\xfe"), "SecretInvalid", f"{WHERE}: key 'token' is not UTF-8 text"),
    ],
    ids=["missing", "no-credentials", "not-text"],
)
async def test_a_secret_that_cannot_give_credentials_stops_the_deploy(
    stored: dict[str, Any] | None, reason: str, message: str
) -> None:
    """Nothing is applied or recorded; Stalled names the field, the Secret and what is wrong with it."""
    world = World()
    if stored is not None:
        world.kube.seed(stored)
    gated(world)
    await world.reconcile("shop")
    stalled = await world.condition("shop", "Stalled")
    assert stalled is not None and stalled["status"] == "True", stalled
    assert stalled["reason"] == reason and message in stalled["message"], stalled
    assert await world.records("shop") == {} and world.image() is None
