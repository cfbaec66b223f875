"""How fresh an ``ls-remote`` answer a reconcile needs: a quarter of its Environment's interval."""

from __future__ import annotations

from typing import Any, cast

import pytest

from gitopsd.gitsource import GitSource
from gitopsd.model import Revision
from gitopsd.sources import GitSources
from gitopsd.spec import Environment, parse_environment
from tests.fakes import FakeKube


class _Recording:
    """Stands in for GitSources: records the ``max_age`` each resolve allowed."""

    def __init__(self) -> None:
        self.max_ages: list[float] = []

    async def resolve(self, source: Any, creds: Any, *, max_age: float) -> Revision:
        self.max_ages.append(max_age)
        return Revision("main", "0" * 40)


def _env(interval: str) -> Environment:
    return parse_environment(
        {
            "apiVersion": "gitopsd.dev/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": "web", "namespace": "ops", "uid": "u1"},
            "spec": {
                "source": {"url": "https://git.example/app.git", "branch": "main", "path": "deploy"},
                "targetNamespace": "app",
                "interval": interval,
            },
        }
    )


@pytest.mark.parametrize(("interval", "max_age"), [("1m", 15.0), ("10m", 150.0), ("2s", 1.0)])
async def test_an_answer_younger_than_a_quarter_interval_is_reused(interval: str, max_age: float) -> None:
    recording = _Recording()
    source = GitSource(FakeKube(), cast(GitSources, recording), desired=cast(Any, None), ls_remote_max_age=1.0)
    await source.resolve(_env(interval), fresh=False)
    assert recording.max_ages == [max_age]


async def test_a_fresh_run_asks_the_remote_again() -> None:
    recording = _Recording()
    source = GitSource(FakeKube(), cast(GitSources, recording), desired=cast(Any, None))
    await source.resolve(_env("1h"), fresh=True)
    assert recording.max_ages == [0.0]
