"""Bad input, several clusters: kubeconfig Secrets gitopsd must refuse (``spec.kubeConfig``).

Each is ``KubeConfigInvalid`` (Stalled) with one message naming the Secret, the key and the
problem, and no message ever holds a credential from the Secret.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from gitopsd.clusters import KubeConfigInvalid, connect
from gitopsd.clusters.kubeconfig import connection_of
from gitopsd.clusters.spec import KubeConfigRef
from gitopsd.kube.secrets import SecretData
from gitopsd.spec import parse_environment
from tests.fakes import FakeKube

TOKEN = "tok-7f3a9c-SECRET"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KEY_DATA = base64.b64encode(
    b"-----BEGIN EC PRIVATE KEY-----\nPRIVATE-KEY-BYTES\n-----END EC PRIVATE KEY-----\n"
).decode()
LABEL = "spec.kubeConfig.secretRef: Secret apps/prod"


def config(**change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "prod",
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "deployer"}}],
        "clusters": [
            {"name": "prod", "cluster": {"server": "https://prod.example:6443", "certificate-authority-data": CA}}
        ],
        "users": [{"name": "deployer", "user": {"token": TOKEN}}],
    }
    for path, value in change.items():
        section, _, field = path.partition(".")
        body = doc[section][0]["cluster" if section == "clusters" else "user"]
        if value is None:
            body.pop(field, None)
        else:
            body[field] = value
    return doc


def secret(value: bytes | str | None, key: str = "value") -> SecretData:
    data = {} if value is None else {key: value.encode() if isinstance(value, str) else value}
    return SecretData("apps", "prod", data, "spec.kubeConfig.secretRef")


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("data", "ref", "says"),
    [
        (secret(None), KubeConfigRef("prod"), f"{LABEL} has no key 'value' or 'value.yaml' (keys: none)"),
        (secret(dump(config()), "config"), KubeConfigRef("prod", "kubeconfig"),
         f"{LABEL} has no key 'kubeconfig' (keys: config)"),
        (secret("clusters: [unclosed\n  token: " + TOKEN), KubeConfigRef("prod"),
         f"{LABEL} key 'value': not YAML at line"),
        (secret(b"\xff\xfe" + TOKEN.encode()), KubeConfigRef("prod"), "not UTF-8 text"),
        (secret("- a list"), KubeConfigRef("prod"), "not a kubeconfig (expected a mapping"),
        (secret(dump({k: v for k, v in config().items() if k != "current-context"})), KubeConfigRef("prod"),
         f"{LABEL} key 'value': no current-context"),
        (secret(dump({**config(), "current-context": "other"})), KubeConfigRef("prod"),
         "no contexts entry named 'other'"),
        (secret(dump(config(**{"users.exec": {"command": "/bin/sh", "args": ["-c", "id"]}}))), KubeConfigRef("prod"),
         "user 'deployer': exec credential plugins are not supported"),
        (secret(dump(config(**{"users.auth-provider": {"name": "oidc", "config": {"id-token": TOKEN}}}))),
         KubeConfigRef("prod"), "auth-provider plugins are not supported"),
        (secret(dump(config(**{"users.tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}))),
         KubeConfigRef("prod"), "tokenFile is a file path"),
        (secret(dump(config(**{"users.client-certificate": "/etc/gitopsd/tls.crt"}))), KubeConfigRef("prod"),
         "client-certificate is a file path"),
        (secret(dump(config(**{"users.client-key": "/etc/gitopsd/tls.key"}))), KubeConfigRef("prod"),
         "client-key is a file path"),
        (secret(dump(config(**{"clusters.certificate-authority": "/etc/ssl/ca.pem"}))), KubeConfigRef("prod"),
         "certificate-authority is a file path"),
        (secret(dump(config(**{"users.password": TOKEN, "users.username": "admin"}))), KubeConfigRef("prod"),
         "basic authentication (username/password) is not supported"),
        (secret(dump(config(**{"clusters.server": "http://prod.example:8080"}))), KubeConfigRef("prod"),
         "server 'http://prod.example:8080' is not an https:// URL"),
        (secret(dump(config(**{"clusters.server": f"https://admin:{TOKEN}@prod.example"}))), KubeConfigRef("prod"),
         "must not carry user info"),
        (secret(dump(config(**{"clusters.server": None}))), KubeConfigRef("prod"), "cluster 'prod': no server URL"),
        (secret(dump(config(**{"clusters.certificate-authority-data": "%%%"}))), KubeConfigRef("prod"),
         "certificate-authority-data is not base64"),
        (secret(dump(config(**{"clusters.certificate-authority-data": base64.b64encode(TOKEN.encode()).decode()}))),
         KubeConfigRef("prod"), "certificate-authority-data: holds no PEM certificate"),
        (secret(dump(config(**{"users.client-key-data": KEY_DATA}))), KubeConfigRef("prod"),
         "give both client-certificate-data and client-key-data"),
    ],
)  # fmt: skip
def test_a_bad_kubeconfig_secret_is_refused_by_name_without_its_credentials(
    data: SecretData, ref: KubeConfigRef, says: str
) -> None:
    """One KubeConfigInvalid naming the Secret and the problem; no token, password or key in it."""
    with pytest.raises(KubeConfigInvalid) as caught:
        connection_of(data, ref)
    message = str(caught.value)
    assert says in message, message
    assert "Secret apps/prod" in message
    assert caught.value.reason == "KubeConfigInvalid" and not caught.value.transient
    assert TOKEN not in message and "PRIVATE-KEY-BYTES" not in message and "tok-7f3a" not in message


def test_flux_keys_value_then_value_yaml_and_an_explicit_key() -> None:
    """Without secretRef.key, ``value`` wins over ``value.yaml``; with it, only that key is read."""
    good, other = dump(config()), dump(config(**{"clusters.server": "https://other.example"}))
    both = SecretData("apps", "prod", {"value": good.encode(), "value.yaml": other.encode()})
    assert connection_of(both, KubeConfigRef("prod")).server == "https://prod.example:6443"
    only_yaml = SecretData("apps", "prod", {"value.yaml": other.encode()})
    assert connection_of(only_yaml, KubeConfigRef("prod")).server == "https://other.example"
    assert connection_of(both, KubeConfigRef("prod", "value.yaml")).server == "https://other.example"


def test_a_good_kubeconfig_gives_embedded_credentials_and_shows_none() -> None:
    """Token and CA data come through; the connection's repr holds neither."""
    conn = connection_of(secret(dump(config())), KubeConfigRef("prod"))
    assert conn.authorization() == f"Bearer {TOKEN}"
    assert conn.ca_data is not None and "BEGIN CERTIFICATE" in conn.ca_data
    assert (conn.ca_file, conn.cert_file, conn.key_file, conn.refreshes) == (None, None, None, False)
    assert TOKEN not in repr(conn) and "MIIB" not in repr(conn)


async def test_connect_names_a_missing_secret() -> None:
    """``clusters.connect`` on a Secret that does not exist: KubeConfigInvalid naming it."""
    env = parse_environment(
        {"metadata": {"name": "shop", "namespace": "apps"},
         "spec": {"source": {"url": "https://git.example.com/x.git", "branch": "main"},
                  "kubeConfig": {"secretRef": {"name": "prod"}}}}
    )  # fmt: skip
    with pytest.raises(KubeConfigInvalid, match="Secret apps/prod not found"):
        await connect(FakeKube(namespaces=("apps",)), env)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"secretRef": {}}, "spec.kubeConfig.secretRef.name: is required"),
        ({}, "spec.kubeConfig.secretRef: is required"),
        (
            {"secretRef": {"name": "Prod_Cluster"}},
            "spec.kubeConfig.secretRef.name: 'Prod_Cluster' is not a Secret name",
        ),
        ({"secretRef": {"name": "prod", "key": 3}}, "spec.kubeConfig.secretRef.key: must be a string"),
    ],
)
def test_a_bad_kubeconfig_field_names_the_field(raw: Any, says: str) -> None:
    """The spec field itself: a SpecError naming the field."""
    from gitopsd.errors import SpecError
    from gitopsd.spec import parse_spec

    with pytest.raises(SpecError) as caught:
        parse_spec({"source": {"url": "https://git.example.com/x.git", "branch": "main"}, "kubeConfig": raw})
    assert says in str(caught.value)
