"""Wrapper go.mod generation for building Kubernetes from its published modules."""

from __future__ import annotations

from e2e.binaries import staging_modules, wrapper_gomod

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
