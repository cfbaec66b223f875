"""Bad input, tenancy side: Environment specs that try to reach beyond their namespace or identity,
and bad tenancy flags. Each case gets its own error naming the field or flag; nothing is accepted
half (a spec error means the Environment is not reconciled at all: see the daemon's InvalidSpec).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gitopsd.cli import main
from gitopsd.errors import SpecError
from gitopsd.spec import parse_spec

URL = "https://git.example.com/shop.git"
SA_RULES = "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"


def spec(**fields: Any) -> dict[str, Any]:
    return {"source": {"url": URL, "branch": "main"}, **fields}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Impersonation: only a ServiceAccount name of the Environment's own namespace.
        (
            spec(serviceAccountName="Deployer"),
            f"spec.serviceAccountName: 'Deployer' is not a ServiceAccount name ({SA_RULES})",
        ),
        (
            spec(serviceAccountName="system:serviceaccount:kube-system:admin"),
            "spec.serviceAccountName: 'system:serviceaccount:kube-system:admin' is not a ServiceAccount name",
        ),
        (
            spec(serviceAccountName="kube-system/admin"),
            "spec.serviceAccountName: 'kube-system/admin' is not a ServiceAccount name",
        ),
        (spec(serviceAccountName="../admin"), "spec.serviceAccountName: '../admin' is not a ServiceAccount name"),
        (spec(serviceAccountName="deployer\n"), "spec.serviceAccountName: 'deployer\\n' is not a ServiceAccount name"),
        (
            spec(serviceAccountName="a" * 254),
            "spec.serviceAccountName: '" + "a" * 254 + "' is not a ServiceAccount name",
        ),
        (spec(serviceAccountName=5), "spec.serviceAccountName: must be a string (got 5; quote it in YAML)"),
        (spec(serviceAccountName=["deployer"]), "spec.serviceAccountName: must be a string"),
        (
            spec(serviceaccountname="deployer"),
            "spec.serviceaccountname: unknown field (did you mean 'serviceAccountName'?)",
        ),
        # References name no namespace: there is no field to reach another one through.
        (
            spec(source={"url": URL, "branch": "main", "secretRef": {"name": "git", "namespace": "kube-system"}}),
            "spec.source.secretRef.namespace: unknown field",
        ),
        (
            spec(substituteFrom=[{"kind": "Secret", "name": "vals", "namespace": "kube-system"}]),
            "spec.substituteFrom[0].namespace: unknown field",
        ),
        (
            spec(promotion={"requireHealthyIn": [{"name": "staging", "namespace": "other-team"}]}),
            "spec.promotion.requireHealthyIn[0].namespace: unknown field",
        ),
        (spec(notify=[{"notifier": "audit", "namespace": "x"}]), "spec.notify[0].namespace: unknown field"),
        (
            spec(kubeConfig={"secretRef": {"name": "prod", "namespace": "kube-system"}}),
            "spec.kubeConfig.secretRef.namespace: unknown field",
        ),
        # Paths and namespaces stay inside what they name.
        (
            spec(source={"url": URL, "branch": "main", "path": "../../etc"}),
            "spec.source.path: '../../etc' points outside the repository",
        ),
        (
            spec(source={"url": URL, "branch": "main", "path": "a/../../b"}),
            "spec.source.path: 'a/../../b' points outside the repository",
        ),
        (spec(targetNamespace="kube_system"), "spec.targetNamespace: 'kube_system' is not a valid namespace name"),
        (spec(targetNamespace="a" * 64), "spec.targetNamespace: '" + "a" * 64 + "' is not a valid namespace name"),
        (
            spec(substitute={"GITOPSD_ENVIRONMENT": "prod"}),
            "spec.substitute.GITOPSD_ENVIRONMENT: names starting with GITOPSD_ are reserved",
        ),
        (spec(historyLimit=100_000), "spec.historyLimit: must be a whole number from 1 to 100 (got 100000)"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value).startswith(message), str(info.value)


def test_a_service_account_name_is_kept_as_given() -> None:
    assert parse_spec(spec(serviceAccountName="team-a.deployer")).service_account_name == "team-a.deployer"
    assert parse_spec(spec()).service_account_name is None
    assert parse_spec(spec(serviceAccountName="")).service_account_name is None  # empty: as unset


@pytest.fixture(autouse=True)
def _keep_logging_config() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--default-service-account", "Deployer"],
            f"error: --default-service-account Deployer: not a ServiceAccount name ({SA_RULES})",
        ),
        (
            ["--default-service-account", "system:serviceaccount:kube-system:default"],
            "error: --default-service-account system:serviceaccount:kube-system:default: not a ServiceAccount name",
        ),
        (["--default-service-account", ""], "error: --default-service-account '': not a ServiceAccount name"),
        (["--default-service-account"], "error: argument --default-service-account: expected one argument"),
        (["--allow-file-sources=yes"], "error: argument --allow-file-sources: ignored explicit argument 'yes'"),
    ],
)
def test_bad_tenancy_flags_exit_2_before_any_cluster(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", *argv, f"--kubeconfig={tmp_path / 'nonexistent'}"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(line), err


def test_run_config_refuses_a_file_source_without_the_flag_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config's Environments are checked against the daemon's policy before any is applied."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: gitopsd.dev/v1alpha1\nkind: Environment\nmetadata: {name: dev, namespace: team-a}\n"
        "spec:\n  source: {url: 'file:///srv/git/shop.git', branch: main}\n"
    )
    code = main(["run", f"--config={config}", f"--kubeconfig={tmp_path / 'nonexistent'}"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2, err
    assert err == [
        f"error: --config {config}: Environment team-a/dev: spec.source.url: file:// sources are off in this "
        "daemon: start it with --allow-file-sources (a path on the daemon's disk is no team's repository)"
    ]
