"""The Environment CRD (manifests/gitopsd): installed from its kustomization, validating what spec.py validates."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e.cluster import ClusterInfo
from gitopsd.errors import SpecError
from gitopsd.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_spec
from tests.e2e.kube import api_client, kubectl, new_namespace

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "gitopsd"
CRD_NAME = f"{PLURAL}.{GROUP}"
URL = "https://git.example.com/shop.git"

# Specs that gitopsd/spec.py accepts: the schema must accept each of them.
GOOD: list[dict[str, Any]] = [
    {"source": {"url": URL, "branch": "main"}},
    {"source": {"url": URL, "branch": "feature/login-1.2"}},
    {"source": {"url": URL, "tag": "v1.4.2"}},
    {"source": {"url": URL, "semver": ">=1.0.0 <2.0.0"}},
    {"source": {"url": URL, "semver": "*"}},
    {"source": {"url": URL, "commit": "3f2c9a1"}},
    {"source": {"url": URL, "commit": "3f2c9a1b7d0e4c5f6a7b8c9d0e1f2a3b4c5d6e7f"}},
    {"source": {"url": "ssh://git@git.example.com:2222/shop.git", "branch": "main"}},
    {"source": {"url": "git@github.com:org/shop.git", "branch": "main"}},
    {"source": {"url": "file:///srv/git/shop.git", "branch": "main"}},
    {"source": {"url": URL, "branch": "", "tag": "v1"}},  # an empty ref counts as not given
    {"source": {"url": URL, "branch": "main"}, "targetNamespace": ""},
    {
        "source": {"url": URL, "branch": "main", "path": "./deploy/prod/", "secretRef": {"name": "git-creds"}},
        "targetNamespace": "shop-prod",
        "serviceAccountName": "team-a.deployer",
        "interval": "1m30s",
        "prune": False,
        "allowEmpty": True,
        "wait": {"timeout": "0"},
        "suspend": True,
        "force": True,
        "substitute": {"REGISTRY": "registry.example.com", "_under": "x", "N": "3"},
    },
    {"source": {"url": URL, "branch": "main"}, "interval": "1.5h", "wait": {"timeout": "2h0m5s"}},
    {"source": {"url": URL, "branch": "main"}, "interval": "1s", "wait": {"timeout": "500ms"}},
    {
        "source": {"url": URL, "tag": "v1"},
        "historyLimit": 3,
        "rollback": {"auto": True},
        "freeze": [
            {"start": "2026-12-24T00:00:00Z", "end": "2026-12-27T00:00:00+01:00"},
            {"cron": "0 18 * * FRI", "duration": "64h", "timezone": "Asia/Tokyo"},
            {"cron": "*/15 9-17 * * MON-FRI", "duration": "5m"},
        ],
    },
]

# Release gates (docs/gates.md).
_PROM = {"url": "http://prometheus.monitoring:9090"}
_METRIC = {
    "name": "error-ratio",
    "query": 'x{ns="{{.namespace}}"}[{{.window}}]',
    "window": "2m",
    "range": {"max": 0.01},
}


def _gated(**verification: Any) -> dict[str, Any]:
    return {"source": {"url": URL, "branch": "main"}, "verification": {"prometheus": _PROM, "metrics": [_METRIC],
                                                                       **verification}}  # fmt: skip


GOOD += [
    _gated(),
    {
        **_gated(startDelay="0s", interval="1s", samples=1, deadline="2s", onFailure="Hold", enforce=False),
        "substitute": {"APP": "web"},
        "promotion": {"requireHealthyIn": [{"name": "staging"}, {"name": "qa"}], "match": "content"},
    },
    _gated(metrics=[{"name": "up", "query": "min(up)", "range": {"min": 1, "max": 1}, "failureThreshold": 2,
                     "noData": "Fail"}], samples=2),
]  # fmt: skip
GATES_BAD: list[tuple[str, dict[str, Any]]] = [
    ("spec.verification.samples", _gated(samples=0)),
    ("spec.verification.metrics[0].range", _gated(metrics=[{**_METRIC, "range": {"min": 2, "max": 1}}])),
    ("spec.verification.metrics[0].range", _gated(metrics=[{**_METRIC, "range": {}}])),
    ("spec.verification.metrics[0].window", _gated(metrics=[{k: v for k, v in _METRIC.items() if k != "window"}])),
    ("spec.verification.metrics", _gated(metrics=[_METRIC, _METRIC])),
    ("spec.verification.metrics", _gated(samples=2, metrics=[{**_METRIC, "failureThreshold": 3}])),
    ("spec.verification.deadline", _gated(deadline="1m")),
    ("spec.verification.interval", _gated(interval="500ms")),
    ("spec.verification.prometheus.url", {**_gated(), "verification": {"prometheus": {"url": "prom:9090"},
                                                                       "metrics": [_METRIC]}}),
    ("spec.verification.onFailure", _gated(onFailure="Retry")),
    ("spec.promotion.requireHealthyIn", {"source": {"url": URL, "branch": "main"},
                                         "promotion": {"requireHealthyIn": [{"name": "a"}, {"name": "a"}]}}),
    ("spec.promotion.match", {"source": {"url": URL, "branch": "main"},
                              "promotion": {"requireHealthyIn": [{"name": "a"}], "match": "tree"}}),
]  # fmt: skip

# Specs spec.py refuses, with the field it names: the schema must refuse each, naming the same field.
BAD: list[tuple[str, dict[str, Any]]] = [
    ("spec.source", {"source": {"url": URL, "branch": "main", "tag": "v1"}}),
    ("spec.source", {"source": {"url": URL, "branch": "main", "semver": "*", "commit": "3f2c9a1"}}),
    ("spec.source", {"source": {"url": URL}}),
    ("spec.source", {"interval": "1m"}),
    ("spec.source.url", {"source": {"url": "ftp://example.com/x", "branch": "main"}}),
    ("spec.source.url", {"source": {"url": "example.com/shop", "branch": "main"}}),
    ("spec.source.url", {"source": {"branch": "main"}}),
    ("spec.source.commit", {"source": {"url": URL, "commit": "xyz"}}),
    ("spec.source.commit", {"source": {"url": URL, "commit": "3F2C9A1"}}),
    ("spec.source.branch", {"source": {"url": URL, "branch": "a..b"}}),
    ("spec.source.branch", {"source": {"url": URL, "branch": "has space"}}),
    ("spec.source.tag", {"source": {"url": URL, "tag": "-v1"}}),
    ("spec.source.tag", {"source": {"url": URL, "tag": "v1^{}"}}),
    ("spec.source.semver", {"source": {"url": URL, "semver": "   "}}),
    ("spec.source.secretRef.name", {"source": {"url": URL, "branch": "main", "secretRef": {"name": ""}}}),
    ("spec.interval", {"source": {"url": URL, "branch": "main"}, "interval": "soon"}),
    ("spec.interval", {"source": {"url": URL, "branch": "main"}, "interval": "100ms"}),
    ("spec.interval", {"source": {"url": URL, "branch": "main"}, "interval": "0"}),
    ("spec.interval", {"source": {"url": URL, "branch": "main"}, "interval": "5"}),
    ("spec.wait.timeout", {"source": {"url": URL, "branch": "main"}, "wait": {"timeout": "1d"}}),
    ("spec.prune", {"source": {"url": URL, "branch": "main"}, "prune": "yes"}),
    ("spec.targetNamespace", {"source": {"url": URL, "branch": "main"}, "targetNamespace": "Shop_Prod"}),
    ("spec.serviceAccountName", {"source": {"url": URL, "branch": "main"}, "serviceAccountName": "Deployer"}),
    (
        "spec.serviceAccountName",
        {"source": {"url": URL, "branch": "main"}, "serviceAccountName": "system:serviceaccount:kube-system:x"},
    ),
    ("spec.substitute", {"source": {"url": URL, "branch": "main"}, "substitute": {"GITOPSD_REVISION": "x"}}),
    ("spec.substitute", {"source": {"url": URL, "branch": "main"}, "substitute": {"1X": "a"}}),
    ("spec.substitute.REPLICAS", {"source": {"url": URL, "branch": "main"}, "substitute": {"REPLICAS": 3}}),
    ("spec.historyLimit", {"source": {"url": URL, "branch": "main"}, "historyLimit": 0}),
    ("spec.rollback.auto", {"source": {"url": URL, "branch": "main"}, "rollback": {"auto": "yes"}}),
    ("spec.freeze[0]", {"source": {"url": URL, "branch": "main"}, "freeze": [{"start": "2026-12-24T00:00:00Z"}]}),
    (
        "spec.freeze[0]",
        {"source": {"url": URL, "branch": "main"}, "freeze": [{"start": "2026-12-24T00:00:00Z", "cron": "* * * * *"}]},
    ),
    (
        "spec.freeze[0].end",
        {
            "source": {"url": URL, "branch": "main"},
            "freeze": [{"start": "2026-12-24T00:00:00Z", "end": "2026-12-23T00:00:00Z"}],
        },
    ),
    ("spec.freeze[0].start", {"source": {"url": URL, "branch": "main"}, "freeze": [{"start": "soon", "end": "later"}]}),
    (
        "spec.freeze[0].cron",
        {"source": {"url": URL, "branch": "main"}, "freeze": [{"cron": "0 18 * *", "duration": "1h"}]},
    ),
    ("spec.freeze[0].duration", {"source": {"url": URL, "branch": "main"}, "freeze": [{"cron": "0 18 * * FRI"}]}),
    (
        "spec.freeze[0].duration",
        {"source": {"url": URL, "branch": "main"}, "freeze": [{"cron": "0 18 * * FRI", "duration": "0"}]},
    ),
    (
        "spec.freeze[0].duration",
        {"source": {"url": URL, "branch": "main"}, "freeze": [{"cron": "0 18 * * FRI", "duration": "2d"}]},
    ),
]

BAD += GATES_BAD

# What the schema leaves to spec.py (the daemon then reports the Environment Stalled, field named).
PARSER_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("spec.source.semver", {"source": {"url": URL, "semver": ">=1.0 <<2"}}),  # the range grammar
    ("spec.source.path", {"source": {"url": URL, "branch": "main", "path": "../../etc"}}),  # `..` walking out
    (  # the values of cron fields
        "spec.freeze[0].cron",
        {"source": {"url": URL, "branch": "main"}, "freeze": [{"cron": "61 18 * * FRI", "duration": "1h"}]},
    ),
    (  # the IANA zone database
        "spec.freeze[0].timezone",
        {
            "source": {"url": URL, "branch": "main"},
            "freeze": [{"cron": "0 18 * * *", "duration": "1h", "timezone": "Mars/Olympus_Mons"}],
        },
    ),
]


def _environment(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@pytest.fixture(scope="module")
def crd(cluster_ipv4: ClusterInfo) -> ClusterInfo:
    """The CRD file of manifests/gitopsd installed and Established (tests/manifests installs the whole base)."""
    out = kubectl(cluster_ipv4, "apply", "--server-side", "--force-conflicts", "-f", str(MANIFESTS / "crd.yaml"))
    assert out.returncode == 0, out.stderr
    out = kubectl(cluster_ipv4, "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    assert out.returncode == 0, out.stderr
    return cluster_ipv4


@pytest.fixture(scope="module")
def api(crd: ClusterInfo) -> Iterator[client.ApiClient]:
    with api_client(crd) as api:
        yield api


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = new_namespace(api, "crd")
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def _dry_run(api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> str | None:
    """None if the server accepts the Environment (server-side dry run), else its message."""
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _environment(f"e-{uuid.uuid4().hex[:8]}", namespace, spec), dry_run="All"
        )
    except client.ApiException as exc:
        return str(json.loads(exc.body).get("message", exc.body))
    return None


def _parser_error(spec: dict[str, Any]) -> SpecError | None:
    try:
        parse_spec(spec)
    except SpecError as exc:
        return exc
    return None


def test_crd_is_established_with_the_designed_names(crd: ClusterInfo) -> None:
    """Group gitopsd.dev, v1alpha1, Environment, namespaced, short name env, status subresource, accepted."""
    out = kubectl(crd, "get", "crd", CRD_NAME, "-o", "json")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    assert obj["spec"]["scope"] == "Namespaced"
    assert obj["spec"]["names"]["kind"] == KIND and obj["spec"]["names"]["shortNames"] == ["env"]
    [version] = obj["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize(("field", "spec"), BAD, ids=[f"{f}:{json.dumps(s)[-40:]}" for f, s in BAD])
def test_schema_and_parser_refuse_the_same_specs_naming_the_same_field(
    api: client.ApiClient, namespace: str, field: str, spec: dict[str, Any]
) -> None:
    """Every spec spec.py refuses is refused at admission, and both name the same field."""
    parsed = _parser_error(spec)
    assert parsed is not None and str(parsed).startswith(field), f"spec.py said: {parsed}"
    message = _dry_run(api, namespace, spec)
    assert message is not None, "the API server accepted it"
    assert f"{field}:" in message, message


@pytest.mark.parametrize("spec", GOOD, ids=[json.dumps(s)[-50:] for s in GOOD])
def test_schema_and_parser_accept_the_same_specs(api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> None:
    """Every spec spec.py accepts passes admission (server-side dry run)."""
    assert _parser_error(spec) is None
    assert _dry_run(api, namespace, spec) is None


@pytest.mark.parametrize(("field", "spec"), PARSER_ONLY, ids=[f for f, _ in PARSER_ONLY])
def test_what_the_schema_leaves_to_the_parser(
    api: client.ApiClient, namespace: str, field: str, spec: dict[str, Any]
) -> None:
    """The semver grammar and `..` in paths pass admission but spec.py refuses them, naming the field."""
    assert _dry_run(api, namespace, spec) is None
    parsed = _parser_error(spec)
    assert parsed is not None and str(parsed).startswith(f"{field}:")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            {"source": {"url": URL, "branch": "main", "tag": "v1"}},
            'spec.source: Invalid value: "object": give exactly one of branch, tag, semver, commit (got branch, tag)',
        ),
        ({"source": {"url": URL}}, "give exactly one of branch, tag, semver, commit"),
        (
            {"source": {"url": URL, "branch": "main"}, "interval": "soon"},
            'spec.interval: Invalid value: "string": must be a duration such as 30s, 5m or 1h',
        ),
        (
            {"source": {"url": "ftp://bob:hunter2@example.com/x", "branch": "main"}},
            'spec.source.url: Invalid value: "string": must be a Git URL',
        ),
        ({"source": {"url": URL, "branch": "main"}, "replicas": 3}, 'unknown field "spec.replicas"'),
    ],
)
def test_kubectl_apply_of_a_bad_environment_is_refused_and_creates_nothing(
    crd: ClusterInfo, namespace: str, tmp_path: Path, spec: dict[str, Any], words: str
) -> None:
    """kubectl apply fails with the field and problem named; no object exists afterwards; no secret echoed."""
    name = f"bad-{uuid.uuid4().hex[:6]}"
    manifest = tmp_path / "env.yaml"
    manifest.write_text(yaml.safe_dump(_environment(name, namespace, spec)))
    out = kubectl(crd, "apply", "-f", str(manifest))
    assert out.returncode != 0
    assert words in out.stderr, out.stderr
    assert "hunter2" not in out.stderr
    assert kubectl(crd, "get", "env", name, "-n", namespace).returncode != 0


def test_kubectl_get_env_shows_the_designed_columns(crd: ClusterInfo, api: client.ApiClient, namespace: str) -> None:
    """NAME READY VERIFIED REVISION RELEASE HELD CLUSTER AGE STATUS, filled from the status subresource."""
    objects = client.CustomObjectsApi(api)
    spec = {"source": {"url": URL, "semver": ">=1.0.0 <2.0.0", "path": "deploy/prod"}, "targetNamespace": "shop"}
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _environment("prod", namespace, spec)
    )
    status = {
        "observedGeneration": 1,
        "lastAppliedRevision": "v1.2.0@sha1:3f2c9a1b",
        "lastAttemptedRevision": "v1.3.0@sha1:9ab1c2d3",
        "release": 7,
        "cluster": "prod-cluster",
        "held": {"revision": "sha1:9ab1c2d3", "reason": "HealthCheckFailed"},
        "history": [{"release": 7, "revision": "v1.2.0@sha1:3f2c9a1b", "result": "Healthy"}],
        "inventory": {"entries": [{"id": "shop_web_apps_Deployment", "v": "v1"}]},
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "HealthCheckFailed",
                "message": "Deployment shop/web: 0 of 2 replicas ready",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-22T20:00:00Z",
            },
            {
                "type": "Verified",
                "status": "True",
                "reason": "VerificationPassed",
                "message": "release 7: error-ratio passed",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-22T20:00:00Z",
            },
        ],
        "verification": {
            "release": 7,
            "phase": "Passed",
            "metrics": [
                {
                    "name": "error-ratio",
                    "query": "sum(rate(x[2m]))",
                    "phase": "Passed",
                    "passed": 5,
                    "samples": [{"time": "2026-11-22T20:00:00.000Z", "value": "NaN", "outcome": "NoData"}],
                }
            ],
        },
    }
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "prod", {"status": status})

    out = kubectl(crd, "get", "env", "-n", namespace)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "VERIFIED", "REVISION", "RELEASE", "HELD", "CLUSTER", "AGE", "STATUS"]
    cells = row.split()
    assert cells[:7] == ["prod", "False", "True", "v1.2.0@sha1:3f2c9a1b", "7", "sha1:9ab1c2d3", "prod-cluster"]
    assert row.endswith("Deployment shop/web: 0 of 2 replicas ready")

    stored = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "prod")
    assert stored["status"] == status  # later-issue fields (release, held, history, verification) are kept
    assert stored["metadata"]["generation"] == created["metadata"]["generation"]  # status writes are not spec changes


def test_spec_writes_cannot_set_status(api: client.ApiClient, namespace: str) -> None:
    """With the status subresource on, status in a create or update of the object is dropped."""
    objects = client.CustomObjectsApi(api)
    body = _environment("nostatus", namespace, {"source": {"url": URL, "branch": "main"}})
    body["status"] = {"lastAppliedRevision": "main@sha1:forged"}
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert "status" not in created or "lastAppliedRevision" not in created["status"]


def test_condition_entries_are_validated(api: client.ApiClient, namespace: str) -> None:
    """A condition without a reason, or with a status other than True/False/Unknown, is refused."""
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _environment("conds", namespace, {"source": {"url": URL, "branch": "main"}})
    )
    bad = {"type": "Ready", "status": "Maybe", "message": "", "lastTransitionTime": "2026-11-22T20:00:00Z"}
    with pytest.raises(client.ApiException) as err:
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "conds", {"status": {"conditions": [bad]}}
        )
    message = json.loads(err.value.body)["message"]
    assert "status.conditions[0].status: Unsupported value" in message
    assert "status.conditions[0].reason: Required value" in message


def _properties(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _properties(sub, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _properties(items, f"{path}[]")


def test_every_field_is_documented_for_kubectl_explain() -> None:
    """Each property of the schema has a description (metadata excepted: it is ObjectMeta)."""
    [crd] = [doc for doc in yaml.safe_load_all((MANIFESTS / "crd.yaml").read_text()) if doc]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [path for path, sub in _properties(schema, "") if path != ".metadata" and not sub.get("description")]
    assert missing == []
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert "crd.yaml" in kustomization["resources"]  # the base installs the CRD it documents
