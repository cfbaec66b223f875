"""Wrapper go.mod generation for building Kubernetes from its published modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import binaries
from e2e.binaries import ALL_BINARIES, staging_modules, wrapper_gomod

KUBERNETES_GOMOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tk8s.io/api v0.0.0
\tgithub.com/spf13/cobra v1.8.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-aggregator => ./staging/src/k8s.io/kube-aggregator
)
"""


def test_staging_modules_are_read_from_replace_directives() -> None:
    """Only modules replaced by ./staging directories are picked up."""
    assert staging_modules(KUBERNETES_GOMOD) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kube-aggregator"]


def test_wrapper_gomod_pins_staging_modules_to_matching_v0_release() -> None:
    """v1.33.13 maps every staging module to v0.33.13."""
    text = wrapper_gomod("v1.33.13", ["k8s.io/api", "k8s.io/client-go"])
    assert "require k8s.io/kubernetes v1.33.13" in text
    assert "\tk8s.io/api => k8s.io/api v0.33.13" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.33.13" in text
    assert "./staging" not in text


def _fake_binaries(directory: Path, names: tuple[str, ...]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)


def test_kubebuilder_assets_are_used_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every binary in $KUBEBUILDER_ASSETS wins; nothing is built even with no Go and an empty cache."""
    _fake_binaries(tmp_path / "assets", ALL_BINARIES)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("GITOPSD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(binaries, "GO_CANDIDATES", ())
    found = binaries.ensure_binaries()
    assert found.kube_apiserver == tmp_path / "assets" / "kube-apiserver"
    assert found.kwok == tmp_path / "assets" / "kwok"
    assert not (tmp_path / "cache").exists()


def test_assets_and_cache_combine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """envtest assets usually lack kwok: the cached build fills the gap."""
    _fake_binaries(tmp_path / "assets", ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"))
    _fake_binaries(tmp_path / "cache" / "bin" / f"kwok-{binaries.KWOK_VERSION}", ("kwok",))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("GITOPSD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(binaries, "GO_CANDIDATES", ())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = binaries.ensure_binaries()
    assert found.etcd == tmp_path / "assets" / "etcd"
    assert found.kwok == tmp_path / "cache" / "bin" / f"kwok-{binaries.KWOK_VERSION}" / "kwok"


def test_no_binaries_and_no_go_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without binaries or Go, the error names what is missing and both ways to get it."""
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("GITOPSD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(binaries, "GO_CANDIDATES", ())
    with pytest.raises(binaries.BinariesUnavailable) as err:
        binaries.ensure_binaries()
    message = str(err.value)
    assert "kube-apiserver" in message and "kwok" in message
    assert "KUBEBUILDER_ASSETS" in message and "install Go" in message
