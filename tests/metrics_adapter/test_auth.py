"""Authentication and authorization of the real adapter, asked directly as the aggregator (or an impostor) would.

Refused: no credentials, a certificate from another CA, a front-proxy certificate with a CN
that is not allowed, a bad bearer token; forbidden: a user SubjectAccessReview denies. Allowed:
the aggregator's identity, a service account token once RBAC grants it. The allowed names are
re-read when the ConfigMap changes.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2e import pki, procs
from tests.e2e.kube import api_client, kubectl, new_namespace
from tests.metrics_adapter.conftest import Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]

DISCOVERY = "/apis/custom.metrics.k8s.io/v1beta1"
METRIC = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/inflight_requests"


@pytest.fixture(scope="module")
def intruder_cert(stack_ipv4: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A client certificate from the front-proxy CA whose CN is not an allowed name."""
    d = stack_ipv4.cluster.directory / "pki"
    ca, key = pki.load_ca(d / "front-proxy-ca.crt", d / "front-proxy-ca.key")
    cert, ckey = pki.issue(ca, key, "intruder", client=True)
    return pki.write_pair(Path(tmp_path_factory.mktemp("intruder")), "intruder", cert, ckey)


def test_health_paths_are_open(stack_ipv4: Stack) -> None:
    """/healthz, /livez and /readyz answer without credentials."""
    for path in ("/healthz", "/livez", "/readyz"):
        status, _ = stack_ipv4.adapter.get(path, user=None, client_cert=None)
        assert status == 200, path


def test_no_credentials_is_401(stack_ipv4: Stack) -> None:
    """Without a certificate or token, API paths and /metrics are refused with a 401 Status."""
    for path in (DISCOVERY, METRIC, "/metrics"):
        status, body = stack_ipv4.adapter.get(path, user=None, client_cert=None)
        assert status == 401, path
        assert body["reason"] == "Unauthorized" and "no credentials" in body["message"]


def test_certificate_from_another_ca_is_refused_at_the_handshake(stack_ipv4: Stack) -> None:
    """The cluster CA's admin certificate is not a front-proxy certificate: the TLS handshake fails."""
    admin = (stack_ipv4.cluster.admin_cert, stack_ipv4.cluster.admin_key)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        stack_ipv4.adapter.get(DISCOVERY, client_cert=admin)


def test_front_proxy_certificate_with_a_disallowed_cn_is_401(
    stack_ipv4: Stack, intruder_cert: tuple[Path, Path]
) -> None:
    """A certificate the front-proxy CA signed for another CN may not assert X-Remote-User."""
    status, body = stack_ipv4.adapter.get(DISCOVERY, client_cert=intruder_cert)
    assert status == 401
    assert "CN 'intruder' is not one of the allowed front-proxy names" in body["message"]


def test_front_proxy_certificate_without_a_user_is_401(stack_ipv4: Stack) -> None:
    """The aggregator's certificate alone, without X-Remote-User, identifies nobody."""
    status, body = stack_ipv4.adapter.get(DISCOVERY, user=None)
    assert status == 401 and "without a user header" in body["message"]


def test_subject_access_review_denial_is_403(stack_ipv4: Stack) -> None:
    """A user RBAC does not allow is forbidden, naming the user and what was asked; discovery stays open to them."""
    status, body = stack_ipv4.adapter.get(METRIC, user="mallory", groups=())
    assert status == 403
    assert body["reason"] == "Forbidden"
    assert 'user "mallory" cannot get pods/inflight_requests "*"' in body["message"]
    # system:discovery grants /apis/* to every authenticated user.
    status, _ = stack_ipv4.adapter.get(DISCOVERY, user="mallory", groups=())
    assert status == 200


@pytest.fixture
def reader_token(stack_ipv4: Stack) -> Iterator[tuple[str, str]]:
    """A service account without RBAC and a token for it; its ClusterRoleBinding is removed after."""
    api = api_client(stack_ipv4.cluster)
    ns = new_namespace(api, "ma-auth")
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    tr = core.create_namespaced_service_account_token("reader", ns, {"spec": {"expirationSeconds": 600}})
    try:
        yield ns, tr.status.token
    finally:
        kubectl(stack_ipv4.cluster, "delete", "clusterrolebinding", f"{ns}-reader", "--ignore-not-found")
        core.delete_namespace(ns)


def test_bearer_tokens_go_through_token_review_and_rbac(stack_ipv4: Stack, reader_token: tuple[str, str]) -> None:
    """A valid token without RBAC is 403, the same token after a binding is 200, a bad token is 401."""
    ns, token = reader_token
    path = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/metrics/inflight_requests"
    status, body = stack_ipv4.adapter.get(
        path, user=None, client_cert=None, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 403, body
    assert f"system:serviceaccount:{ns}:reader" in body["message"]
    out = kubectl(
        stack_ipv4.cluster,
        "create",
        "clusterrolebinding",
        f"{ns}-reader",
        "--clusterrole=system:controller:horizontal-pod-autoscaler",
        f"--serviceaccount={ns}:reader",
    )
    assert out.returncode == 0, out.stderr

    def allowed() -> bool:
        s, _ = stack_ipv4.adapter.get(path, user=None, client_cert=None, headers={"Authorization": f"Bearer {token}"})
        return s in (200, 404)  # authorized: the metric may simply have no value in this namespace

    procs.wait_until("RBAC binding honoured (denials are cached a few seconds)", allowed, timeout=20)
    status, body = stack_ipv4.adapter.get(
        path, user=None, client_cert=None, headers={"Authorization": "Bearer nonsense"}
    )
    assert status == 401 and "not accepted" in body["message"]


def test_allowed_names_are_reloaded_when_the_configmap_changes(stack_ipv4: Stack) -> None:
    """Changing requestheader-allowed-names takes effect without a restart (and changing it back too)."""
    cm = ["-n", "kube-system", "patch", "configmap", "extension-apiserver-authentication", "--type=merge", "-p"]
    original = json.dumps({"data": {"requestheader-allowed-names": '["front-proxy-client"]'}})
    other = json.dumps({"data": {"requestheader-allowed-names": '["someone-else"]'}})
    try:
        assert kubectl(stack_ipv4.cluster, *cm, other).returncode == 0
        # kube-apiserver merges its own name back within ~30 s; the adapter must notice well before.
        status_body = procs.wait_until(
            "front-proxy-client refused",
            lambda: (r := stack_ipv4.adapter.get(DISCOVERY))[0] == 401 and r,
            timeout=15,
            interval=0.2,
        )
        assert "someone-else" in status_body[1]["message"]
    finally:
        assert kubectl(stack_ipv4.cluster, *cm, original).returncode == 0
    procs.wait_until(
        "front-proxy-client accepted again", lambda: stack_ipv4.adapter.get(DISCOVERY)[0] == 200, timeout=15
    )
