"""The receiver in-process over real HTTP: statuses, what is triggered, and a standby forwarding to the leader."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gitopsd.webhooks.receiver import Receiver, ReceiverSettings
from gitopsd.webhooks.signatures import Provider, sign

SECRET = b"s3cret"
URL = "https://git.example.com/org/shop.git"


@dataclass
class FakeDaemon:
    """The Targets side: Environments as raw objects, triggers recorded."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggered: list[str] = field(default_factory=list)
    ready: bool = True

    def synced(self) -> bool:
        return self.ready

    def environments(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return list(self.objects.items())

    def trigger(self, key: str, *, fresh: bool = True) -> bool:
        self.triggered.append(key)
        return True


@dataclass
class Leader:
    is_leader: bool = True
    identity: str = "me"
    leader_url: str | None = None


def _env(branch: str, generation: int = 1, url: str = URL) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"source": {"url": url, "branch": branch}}}


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeDaemon, Receiver, str]]:
    daemon = FakeDaemon({"ops/staging": _env("main"), "ops/dev": _env("develop")})
    secrets: dict[str, tuple[bytes, ...]] = {"generic": (SECRET,), "github": (SECRET,)}
    receiver = Receiver(daemon, lambda p: secrets.get(p), settings=ReceiverSettings(max_body=4096, read_timeout=1))
    runner, base = await _serve(receiver)
    yield daemon, receiver, base
    await runner.cleanup()


async def _post(base: str, provider: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/hooks/{provider}", data=body, headers=headers) as resp,
    ):
        return resp.status, json.loads(await resp.text())


def _generic(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"X-Signature": sign(SECRET, raw), "Content-Type": "application/json"}


async def test_a_signed_push_triggers_the_matching_environment(served: tuple[FakeDaemon, Receiver, str]) -> None:
    """202 triggered, the key listed, only that Environment triggered."""
    daemon, _, base = served
    status, answer = await _post(base, "generic", *_generic({"repository": "git@git.example.com:org/shop",
                                                              "ref": "refs/heads/main"}))  # fmt: skip
    assert (status, answer["result"], answer["triggered"]) == (202, "triggered", ["ops/staging"])
    assert daemon.triggered == ["ops/staging"]


async def test_refusals(served: tuple[FakeDaemon, Receiver, str]) -> None:
    """404 unconfigured/unknown host, 401 unsigned, 413 over the limit, 400 not JSON, 503 before the first list."""
    daemon, _, base = served
    body, headers = _generic({"repository": URL, "ref": "refs/heads/main"})
    assert (await _post(base, "gitlab", body, {}))[0] == 404  # no secret configured for it
    assert (await _post(base, "bitbucket", body, {}))[0] == 404
    assert (await _post(base, "generic", body, {}))[0] == 401
    big = b"{" + b" " * 5000 + b"}"
    assert (await _post(base, "generic", big, {"X-Signature": sign(SECRET, big)}))[0] == 413
    assert (await _post(base, "generic", b"<xml/>", {"X-Signature": sign(SECRET, b"<xml/>")}))[0] == 400
    daemon.ready = False
    status, answer = await _post(base, "generic", body, headers)
    assert status == 503 and answer["result"] == "unavailable"
    assert daemon.triggered == []


async def test_spec_changes_are_seen_and_invalid_specs_skipped(served: tuple[FakeDaemon, Receiver, str]) -> None:
    """A new generation's branch is used at once; an Environment whose spec does not parse is left out."""
    daemon, receiver, base = served
    daemon.objects["ops/dev"] = _env("main", generation=2)
    daemon.objects["ops/broken"] = {"metadata": {"generation": 1}, "spec": {"source": {"url": URL}}}
    _, answer = await _post(base, "generic", *_generic({"repository": URL, "ref": "refs/heads/main"}))
    assert answer["triggered"] == ["ops/dev", "ops/staging"]
    del daemon.objects["ops/dev"]
    await _post(base, "generic", *_generic({"repository": URL, "ref": "refs/heads/main"}))
    assert "ops/dev" not in dict(receiver.sources())


async def test_a_standby_forwards_to_the_leader_and_relays_its_answer() -> None:
    """Standby → leader (verbatim body and signature); no leader known → 503; never forwarded twice."""
    leader_daemon = FakeDaemon({"ops/staging": _env("main")})
    secrets = lambda p: (SECRET,) if p == "generic" else None  # noqa: E731
    leader_runner, leader_base = await _serve(Receiver(leader_daemon, secrets))
    standby = Leader(is_leader=False, identity="standby-1", leader_url=None)
    standby_daemon = FakeDaemon({"ops/staging": _env("main")})
    standby_runner, standby_base = await _serve(Receiver(standby_daemon, secrets, leadership=standby))
    try:
        body, headers = _generic({"repository": URL, "ref": "refs/heads/main"})
        status, answer = await _post(standby_base, "generic", body, headers)
        assert status == 503 and "no leader" in answer["message"]
        standby.leader_url = leader_base
        status, answer = await _post(standby_base, "generic", body, headers)
        assert (status, answer["triggered"]) == (202, ["ops/staging"])
        assert leader_daemon.triggered == ["ops/staging"] and standby_daemon.triggered == []
        # A bad signature is judged by the leader: 401 relayed, nothing triggered.
        status, _ = await _post(standby_base, "generic", body, {"X-Signature": sign(b"wrong", body)})
        assert status == 401 and leader_daemon.triggered == ["ops/staging"]
        # Loops are cut: a request that was already forwarded is not forwarded again.
        status, _ = await _post(standby_base, "generic", body, {**headers, "X-Gitopsd-Forwarded": "other"})
        assert status == 503
        # The leader is gone: 503 with Retry-After, not a hang.
        await leader_runner.cleanup()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{standby_base}/hooks/generic", data=body, headers=headers) as resp,
        ):
            assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    finally:
        await standby_runner.cleanup()
        await leader_runner.cleanup()


@pytest.mark.parametrize(
    ("provider", "event", "payload", "result"),
    [
        ("github", "ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, (200, "ping")),
        ("github", "issues", {"action": "opened"}, (202, "ignored")),
        ("github", "create", {"ref": "main", "ref_type": "branch"}, (202, "ignored")),
        ("generic", None, {"event": "ping"}, (200, "ping")),
        ("generic", None, {"event": "tag", "repository": URL}, (202, "ignored")),
    ],
)
async def test_pings_and_other_events(
    served: tuple[FakeDaemon, Receiver, str], provider: Provider, event: str | None, payload: Any, result: Any
) -> None:
    """Pings are answered; events other than pushes are acknowledged and ignored."""
    daemon, _, base = served
    raw = json.dumps(payload).encode()
    headers = {"X-Hub-Signature-256" if provider == "github" else "X-Signature": sign(SECRET, raw)}
    if event:
        headers["X-GitHub-Event"] = event
    status, answer = await _post(base, provider, raw, headers)
    assert (status, answer["result"]) == result
    assert daemon.triggered == []


async def test_github_without_an_event_header_is_a_bad_request(served: tuple[FakeDaemon, Receiver, str]) -> None:
    """A signed GitHub body with no X-GitHub-Event: 400 naming the header."""
    _, _, base = served
    raw = b"{}"
    status, answer = await _post(base, "github", raw, {"X-Hub-Signature-256": sign(SECRET, raw)})
    assert status == 400 and "X-GitHub-Event" in answer["message"]
