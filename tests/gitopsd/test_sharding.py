"""Shard selectors checked at start; one Lease name per shard."""

from __future__ import annotations

import pytest

from gitopsd.sharding import check_selector, lease_name


@pytest.mark.parametrize(
    "selector",
    ["gitopsd.dev/shard=a", "gitopsd.dev/shard==a", "shard!=b", "!gitopsd.dev/shard", "gitopsd.dev/shard",
     "tier in (a, b),zone notin (x)", " shard = a ", "shard="],
)  # fmt: skip
def test_valid_selectors(selector: str) -> None:
    """Kubernetes' label-selector forms are accepted."""
    assert check_selector(selector) == selector.strip()


@pytest.mark.parametrize("selector", ["", "  ", "shard a", "=a", "shard in a", "sh ard=a", "a=b=c", "-x=1", "a=(b)"])
def test_invalid_selectors(selector: str) -> None:
    """Typos fail at start instead of silently matching nothing."""
    with pytest.raises(ValueError):
        check_selector(selector)


def test_lease_names_differ_per_shard_and_are_valid() -> None:
    """No shard: the base name; each selector its own readable, DNS-valid name."""
    names = {
        lease_name("gitopsd", s) for s in (None, "gitopsd.dev/shard=a", "gitopsd.dev/shard=b", "!gitopsd.dev/shard")
    }
    assert len(names) == 4 and "gitopsd" in names
    assert lease_name("gitopsd", "gitopsd.dev/shard=a").startswith("gitopsd-gitopsd-dev-shard-a-")
    assert all(len(n) <= 63 and n.replace("-", "").isalnum() and n == n.lower() for n in names)
    assert lease_name("gitopsd", "gitopsd.dev/shard=a") == lease_name("gitopsd", "gitopsd.dev/shard=a")
