"""Authorization decisions reviewed ahead of expiry: requests never wait for a renewal, TTLs still hold."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from metrics_adapter.auth import Attributes, Auth, UserInfo
from metrics_adapter.errors import Forbidden
from metrics_adapter.kube.client import KubeClient, KubeError
from metrics_adapter.metrics import AdapterMetrics

USER = UserInfo("system:serviceaccount:kube-system:horizontal-pod-autoscaler", ("system:authenticated",))
ATTRS = Attributes("get", "", "custom.metrics.k8s.io", "v1beta1", "pods", "requests", "*", "web")


class _Reviews:
    """Answers SubjectAccessReviews as told, counting them; each answer waits until released."""

    source = "kubernetes"

    def __init__(self) -> None:
        self.allowed = True
        self.fail = False
        self.calls = 0
        self.release = asyncio.Event()

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise KubeError(self.source, "connection refused", 0)
        return {"status": {"allowed": self.allowed}}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _auth(reviews: _Reviews, clock: _Clock) -> Auth:
    return Auth(cast(KubeClient, reviews), AdapterMetrics(), allow_ttl=10.0, deny_ttl=5.0, clock=clock)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_allowed_decision_is_renewed_in_the_background_before_it_expires() -> None:
    """Past 80% of the TTL a request is answered at once and one review renews the decision."""

    async def main() -> None:
        reviews, clock = _Reviews(), _Clock()
        auth = _auth(reviews, clock)
        reviews.release.set()
        await auth.authorize(USER, ATTRS)
        assert reviews.calls == 1
        clock.now += 5.0  # half the TTL: served from memory, nothing asked
        await auth.authorize(USER, ATTRS)
        await _settle()
        assert reviews.calls == 1
        reviews.release.clear()
        clock.now += 4.0  # 9 s of 10: served at once, one review started behind it
        await asyncio.wait_for(auth.authorize(USER, ATTRS), 1.0)
        await asyncio.wait_for(auth.authorize(USER, ATTRS), 1.0)
        await _settle()
        assert reviews.calls == 2
        reviews.release.set()
        await _settle()
        clock.now += 5.0  # past the first decision's TTL, within the renewed one
        await asyncio.wait_for(auth.authorize(USER, ATTRS), 1.0)
        assert reviews.calls == 2

    asyncio.run(main())


def test_a_revoked_permission_still_takes_effect_within_the_ttl() -> None:
    """A renewal that is denied replaces the allowed decision: the next request is refused."""

    async def main() -> None:
        reviews, clock = _Reviews(), _Clock()
        auth = _auth(reviews, clock)
        reviews.release.set()
        await auth.authorize(USER, ATTRS)
        reviews.allowed = False
        clock.now += 9.0
        await auth.authorize(USER, ATTRS)  # still allowed: the renewal runs behind it
        await _settle()
        with pytest.raises(Forbidden, match="cannot get pods/requests"):
            await auth.authorize(USER, ATTRS)

    asyncio.run(main())


def test_a_failed_renewal_lets_the_decision_expire() -> None:
    """When the review ahead fails, the decision is not extended: after its TTL a request asks again."""

    async def main() -> None:
        reviews, clock = _Reviews(), _Clock()
        auth = _auth(reviews, clock)
        reviews.release.set()
        await auth.authorize(USER, ATTRS)
        reviews.fail = True
        clock.now += 9.0
        await auth.authorize(USER, ATTRS)
        await _settle()
        assert reviews.calls == 2
        reviews.fail = False
        clock.now += 2.0  # 11 s after the only successful review
        await auth.authorize(USER, ATTRS)
        assert reviews.calls == 3

    asyncio.run(main())
