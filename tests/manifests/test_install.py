"""manifests/ applied server-side to a real cluster: the objects, Pod Security, RBAC as the API server decides it."""

from __future__ import annotations

import json

import pytest

from tests.e2e.kube import kubectl, service_account_kubeconfig
from tests.manifests import kit
from tests.manifests.conftest import APISERVICES, Install

HPA_SA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"

# (what, kubectl auth can-i arguments)
GITOPSD_NEEDS = [
    ("read its Environments", ["list", "environments.gitopsd.dev", "-n", kit.GITOPSD_NS]),
    ("watch its Environments", ["watch", "environments.gitopsd.dev", "-n", kit.GITOPSD_NS]),
    ("apply Environments from --config", ["patch", "environments.gitopsd.dev", "-n", kit.GITOPSD_NS]),
    ("write Environment status", ["patch", "environments.gitopsd.dev", "--subresource=status", "-n", kit.GITOPSD_NS]),
    ("list release records", ["list", "secrets", "-n", kit.GITOPSD_NS]),
    ("write release records", ["create", "secrets", "-n", kit.GITOPSD_NS]),
    ("settle release records", ["patch", "secrets", "-n", kit.GITOPSD_NS]),
    ("delete old release records", ["delete", "secrets", "-n", kit.GITOPSD_NS]),
    ("read Git credentials", ["get", "secrets/git-credentials", "-n", kit.GITOPSD_NS]),
    ("watch Git credentials", ["watch", "secrets", "-n", kit.GITOPSD_NS]),
    ("post Events", ["create", "events", "-n", kit.GITOPSD_NS]),
    ("count repeated Events", ["patch", "events", "-n", kit.GITOPSD_NS]),
    ("read the Lease", ["get", "leases.coordination.k8s.io/gitopsd", "-n", kit.GITOPSD_NS]),
    ("create the Lease", ["create", "leases.coordination.k8s.io", "-n", kit.GITOPSD_NS]),
    ("renew the Lease", ["update", "leases.coordination.k8s.io/gitopsd", "-n", kit.GITOPSD_NS]),
    ("apply a Deployment", ["patch", "deployments.apps", "-n", "shop"]),
    ("create a Deployment by apply", ["create", "deployments.apps", "-n", "shop"]),
    ("prune a Deployment", ["delete", "deployments.apps", "-n", "shop"]),
    ("find its objects in every namespace", ["list", "deployments.apps", "--all-namespaces"]),
    ("apply a Namespace", ["create", "namespaces"]),
    ("apply a CRD", ["patch", "customresourcedefinitions.apiextensions.k8s.io"]),
    ("bind the built-in edit role", ["bind", "clusterroles.rbac.authorization.k8s.io/edit"]),
    # spec.serviceAccountName / --default-service-account (docs/install.md, several teams).
    ("act as an Environment's ServiceAccount", ["impersonate", "serviceaccounts", "-n", "team-a"]),
]
GITOPSD_MUST_NOT = [
    ("escalate a role", ["escalate", "clusterroles.rbac.authorization.k8s.io"]),
    ("bind cluster-admin", ["bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin"]),
    ("impersonate a user", ["impersonate", "users"]),
    ("impersonate a group", ["impersonate", "groups"]),
    ("delete whole collections", ["deletecollection", "pods", "-n", "shop"]),
    ("read non-resource URLs", ["get", "/metrics"]),
]
ADAPTER_NEEDS = [
    ("review bearer tokens", ["create", "tokenreviews.authentication.k8s.io"]),
    ("authorize requests", ["create", "subjectaccessreviews.authorization.k8s.io"]),
    (
        "read the front-proxy settings",
        ["get", "configmaps/extension-apiserver-authentication", "-n", "kube-system"],
    ),
    (
        "watch the front-proxy settings",
        ["watch", "configmaps/extension-apiserver-authentication", "-n", "kube-system"],
    ),
    ("list pods' labels", ["list", "pods", "--all-namespaces"]),
    ("watch pods' labels", ["watch", "pods", "--all-namespaces"]),
    ("list deployments' labels", ["list", "deployments.apps", "--all-namespaces"]),
    ("check namespaces", ["get", "namespaces/shop"]),
]
ADAPTER_MUST_NOT = [
    ("read Secrets cluster-wide", ["list", "secrets", "--all-namespaces"]),
    ("read Secrets in its own namespace", ["get", "secrets", "-n", kit.ADAPTER_NS]),
    ("read other kube-system ConfigMaps", ["get", "configmaps/kube-proxy", "-n", "kube-system"]),
    ("change workloads", ["patch", "deployments.apps", "-n", "shop"]),
    ("create pods", ["create", "pods", "-n", "shop"]),
]


@pytest.mark.parametrize(("what", "args"), GITOPSD_NEEDS, ids=[w for w, _ in GITOPSD_NEEDS])
def test_gitopsd_may(installed: Install, what: str, args: list[str]) -> None:
    """The gitopsd ServiceAccount holds each right the daemon uses."""
    assert kit.can_i(installed.cluster, kit.GITOPSD_SA, *args), what


@pytest.mark.parametrize(("what", "args"), GITOPSD_MUST_NOT, ids=[w for w, _ in GITOPSD_MUST_NOT])
def test_gitopsd_may_not(installed: Install, what: str, args: list[str]) -> None:
    """The gitopsd ServiceAccount cannot widen its own rights or anyone's."""
    assert not kit.can_i(installed.cluster, kit.GITOPSD_SA, *args), what


@pytest.mark.parametrize(("what", "args"), ADAPTER_NEEDS, ids=[w for w, _ in ADAPTER_NEEDS])
def test_adapter_may(installed: Install, what: str, args: list[str]) -> None:
    """The metrics-adapter ServiceAccount holds what an aggregated API server and its rules need."""
    assert kit.can_i(installed.cluster, kit.ADAPTER_SA, *args), what


@pytest.mark.parametrize(("what", "args"), ADAPTER_MUST_NOT, ids=[w for w, _ in ADAPTER_MUST_NOT])
def test_adapter_may_not(installed: Install, what: str, args: list[str]) -> None:
    """The metrics-adapter ServiceAccount reads no Secrets and writes nothing."""
    assert not kit.can_i(installed.cluster, kit.ADAPTER_SA, *args), what


def test_hpa_controller_may_read_both_metrics_apis(installed: Install) -> None:
    """The HPA controller's account may read custom (pods) and external metrics."""
    groups = ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
    for group, resource in (("custom.metrics.k8s.io", "pods"), ("external.metrics.k8s.io", "orders_backlog")):
        attributes = {"verb": "get", "group": group, "resource": resource, "namespace": "shop"}
        assert kit.access_review(installed.cluster, HPA_SA, groups, attributes), attributes
        assert not kit.access_review(installed.cluster, "system:serviceaccount:shop:default", groups, attributes)


def test_gitopsd_cannot_escalate_through_git(installed: Install, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Applied as gitopsd, a binding to cluster-admin and a wildcard role are refused; a RoleBinding to edit is not."""
    kubeconfig = service_account_kubeconfig(
        installed.cluster, kit.GITOPSD_NS, "gitopsd", tmp_path_factory.mktemp("sa") / "gitopsd.kubeconfig"
    )
    cluster_admin = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "e2e-from-git-cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}],
    }
    wildcard = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "e2e-from-git-wildcard"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    edit = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "e2e-from-git-edit", "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "Group", "name": "shop-developers", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    for obj in (cluster_admin, wildcard):
        out = kubectl(kubeconfig, "apply", "--server-side", "--field-manager=gitopsd", "-f", "-", input=json.dumps(obj))
        assert out.returncode != 0, f"{obj['kind']} {obj['metadata']['name']} was applied"
        assert "is forbidden" in out.stderr and "attempting to grant RBAC permissions not currently held" in out.stderr
        assert kubectl(installed.cluster, "get", obj["kind"], obj["metadata"]["name"]).returncode != 0
    out = kubectl(kubeconfig, "apply", "--server-side", "--field-manager=gitopsd", "-f", "-", input=json.dumps(edit))
    assert out.returncode == 0, out.stderr
    kubectl(installed.cluster, "delete", "rolebinding", "-n", "shop", "e2e-from-git-edit", "--wait=false")


def test_objects_exist_as_applied(installed: Install) -> None:
    """Every object of both bases and the examples is in the cluster, owned by the install's field manager."""
    for doc in installed.gitopsd + installed.adapter + installed.examples:
        meta = doc["metadata"]
        args = [
            doc["kind"].lower() + "." + doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else doc["kind"]
        ]
        args = [args[0], meta["name"]] + (["-n", meta["namespace"]] if meta.get("namespace") else [])
        live = kit.get(installed.cluster, *args, "--show-managed-fields")
        managers = {m["manager"] for m in live["metadata"].get("managedFields", [])}
        if set(doc) <= {"apiVersion", "kind", "metadata"} and set(meta) <= {"name", "namespace"}:
            continue  # nothing but a name: the API server records no managed fields for it
        assert kit.FIELD_MANAGER in managers, f"{doc['kind']} {meta['name']}: managers {managers}"


def test_deployments_roll_out_their_replicas(installed: Install) -> None:
    """Both Deployments get their two replicas Available and the PodDisruptionBudgets allow one disruption."""
    for ns, name in ((kit.GITOPSD_NS, "gitopsd"), (kit.ADAPTER_NS, "metrics-adapter")):
        out = kubectl(
            installed.cluster, "-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=180s", timeout=200
        )
        assert out.returncode == 0, out.stderr
        assert kit.get(installed.cluster, "deployment", name, "-n", ns)["status"]["availableReplicas"] == 2

        def budget(ns: str = ns, name: str = name) -> bool:
            return kit.get(installed.cluster, "pdb", name, "-n", ns).get("status", {}).get("disruptionsAllowed") == 1

        kit.wait_for(f"PodDisruptionBudget {ns}/{name} allows one disruption", budget, timeout=60)


def test_restricted_pod_security_is_enforced(installed: Install) -> None:
    """The namespaces refuse a pod that would run as root with privileges; the installed pods were admitted."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "e2e-privileged", "namespace": kit.GITOPSD_NS},
        "spec": {"containers": [{"name": "c", "image": "gitopsd", "securityContext": {"privileged": True}}]},
    }
    for ns in (kit.GITOPSD_NS, kit.ADAPTER_NS):
        pod["metadata"]["namespace"] = ns
        out = kubectl(installed.cluster, "create", "-f", "-", input=json.dumps(pod))
        assert out.returncode != 0 and "violates PodSecurity" in out.stderr, out.stderr
        assert kit.get(installed.cluster, "namespace", ns)["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ] == ("restricted")


def test_apiservices_are_registered(installed: Install) -> None:
    """The three APIServices exist with their groups, versions and priorities, pointing at the adapter's Service."""
    for name in APISERVICES:
        spec = kit.get(installed.cluster, "apiservice", name)["spec"]
        version, group = name.split(".", 1)
        assert (spec["group"], spec["version"]) == (group, version)
        assert spec["service"]["name"] == "metrics-adapter" and spec["service"]["namespace"] == kit.ADAPTER_NS
        assert spec["groupPriorityMinimum"] == 100
        assert spec["versionPriority"] == (200 if version == "v1beta2" else 100)


def test_example_environments_were_admitted_by_the_crd(installed: Install) -> None:
    """dev, staging and prod pass the CRD's validation and are listed with their printer columns."""
    out = kubectl(installed.cluster, "get", "env", "-n", kit.GITOPSD_NS, "dev", "staging", "prod")
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0].split()
    assert header[:6] == ["NAME", "READY", "VERIFIED", "REVISION", "RELEASE", "HELD"]
    hpa = kit.get(installed.cluster, "hpa", "web", "-n", "shop")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Pods", "External"]
