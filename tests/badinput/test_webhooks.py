"""Bad webhook requests, one per row: the exact status and message, and nothing triggered.

The receiver runs in-process over real HTTP with all four hosts configured and one
Environment following ``main`` of the repository the pushes name, so a request that got
through by mistake would show up in ``triggered``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from gitopsd.webhooks.receiver import Receiver, ReceiverSettings
from gitopsd.webhooks.signatures import sign
from tests.gitopsd.webhooks.test_receiver import URL, FakeDaemon, _env

SECRET = b"bad-input-secret"
AFTER = "a" * 40
PUSH = json.dumps({"repository": URL, "ref": "refs/heads/main", "after": AFTER}).encode()
GITHUB_PUSH = json.dumps({"ref": "refs/heads/main", "after": AFTER, "repository": {"clone_url": URL}}).encode()


def _hex(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Case:
    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    message: str
    method: str = "POST"


NOT_JSON = "the body is not JSON ({}); set the hook's content type to application/json"
FORM = b"payload=" + PUSH

CASES: dict[str, Case] = {
    "github: unsigned": Case(
        "/hooks/github", GITHUB_PUSH, {"X-GitHub-Event": "push"}, 401, "missing X-Hub-Signature-256 header"
    ),
    "github: sha1 scheme": Case(
        "/hooks/github",
        GITHUB_PUSH,
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha1=" + "0" * 40},
        401,
        "X-Hub-Signature-256: unsupported signature scheme 'sha1' (expected sha256=<hex>)",
    ),
    "github: other secret": Case(
        "/hooks/github",
        GITHUB_PUSH,
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(b"other", GITHUB_PUSH)},
        401,
        "X-Hub-Signature-256 does not match the body signed with the configured secret",
    ),
    "github: short digest": Case(
        "/hooks/github",
        GITHUB_PUSH,
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(SECRET, GITHUB_PUSH)[:-2]},
        401,
        "X-Hub-Signature-256: a SHA-256 signature is 64 hex digits (got 62)",
    ),
    "github: body changed after signing": Case(
        "/hooks/github",
        GITHUB_PUSH + b" ",
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(SECRET, GITHUB_PUSH)},
        401,
        "X-Hub-Signature-256 does not match the body signed with the configured secret",
    ),
    "github: missing event header": Case(
        "/hooks/github",
        GITHUB_PUSH,
        {"X-Hub-Signature-256": sign(SECRET, GITHUB_PUSH)},
        400,
        "missing X-GitHub-Event header",
    ),
    "github: unknown event": Case(
        "/hooks/github",
        GITHUB_PUSH,
        {"X-GitHub-Event": "issues", "X-Hub-Signature-256": sign(SECRET, GITHUB_PUSH)},
        202,
        "event 'issues' ignored (only pushes deploy)",
    ),
    "github: form-encoded body (wrong content type)": Case(
        "/hooks/github",
        FORM,
        {
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sign(SECRET, FORM),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        400,
        NOT_JSON.format("Expecting value: line 1 column 1 (char 0)"),
    ),
    "gitea: not hex": Case(
        "/hooks/gitea",
        PUSH,
        {"X-Gitea-Event": "push", "X-Gitea-Signature": "z" * 64},
        401,
        "X-Gitea-Signature: a SHA-256 signature is 64 hex digits (got 64)",
    ),
    "gitea: other secret": Case(
        "/hooks/gitea",
        PUSH,
        {"X-Gitea-Event": "push", "X-Gitea-Signature": _hex(PUSH, b"other")},
        401,
        "X-Gitea-Signature does not match the body signed with the configured secret",
    ),
    "gitlab: wrong token": Case(
        "/hooks/gitlab",
        PUSH,
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"},
        401,
        "X-Gitlab-Token does not match the configured secret",
    ),
    "gitlab: blank token": Case(
        "/hooks/gitlab",
        PUSH,
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "  "},
        401,
        "missing X-Gitlab-Token header",
    ),
    "generic: signature without scheme": Case(
        "/hooks/generic", PUSH, {"X-Signature": _hex(PUSH)}, 401, "X-Signature: expected sha256=<64 hex digits>"
    ),
    "generic: oversize body (Content-Length)": Case(
        "/hooks/generic",
        b"{" + b" " * 5000 + b"}",
        {"X-Signature": sign(SECRET, b"{" + b" " * 5000 + b"}")},
        413,
        "body of 5002 bytes is over 4096",
    ),
    "generic: malformed JSON": Case(
        "/hooks/generic",
        b'{"ref": ',
        {"X-Signature": sign(SECRET, b'{"ref": ')},
        400,
        NOT_JSON.format("Expecting value: line 1 column 9 (char 8)"),
    ),
    "generic: nested too deeply": Case(
        "/hooks/generic",
        b"[" * 2000 + b"]" * 2000,
        {"X-Signature": sign(SECRET, b"[" * 2000 + b"]" * 2000)},
        400,
        "the JSON body is nested too deeply",
    ),
    "generic: ref not a full ref name": Case(
        "/hooks/generic",
        b'{"repository": "%s", "ref": "main"}' % URL.encode(),
        {"X-Signature": sign(SECRET, b'{"repository": "%s", "ref": "main"}' % URL.encode())},
        400,
        "ref: expected a full ref name such as refs/heads/main (got 'main')",
    ),
    "generic: a JSON array": Case(
        "/hooks/generic",
        b"[]",
        {"X-Signature": sign(SECRET, b"[]")},
        400,
        "the body must be a JSON object (got list)",
    ),
    "generic: a repository nobody reads": Case(
        "/hooks/generic",
        b'{"repository": "https://git.example.com/org/other.git", "ref": "refs/heads/main"}',
        {
            "X-Signature": sign(
                SECRET, b'{"repository": "https://git.example.com/org/other.git", "ref": "refs/heads/main"}'
            )
        },
        202,
        "no Environment reads https://git.example.com/org/other.git",
    ),
    "unknown host": Case(
        "/hooks/bitbucket", PUSH, {}, 404, "no such hook: /hooks/bitbucket (github, gitlab, gitea, generic)"
    ),
}


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[FakeDaemon, str]]:
    daemon = FakeDaemon({"ops/staging": _env("main")})
    settings = ReceiverSettings(max_body=4096, read_timeout=2)
    receiver = Receiver(daemon, lambda p: (SECRET,), settings=settings)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield daemon, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_webhook_request(hooks: tuple[FakeDaemon, str], name: str) -> None:
    """The exact status and message; no Environment triggered."""
    daemon, base = hooks
    case = CASES[name]
    headers = {"Content-Type": "application/json", **case.headers}
    async with (
        aiohttp.ClientSession() as session,
        session.request(case.method, base + case.path, data=case.body, headers=headers) as resp,
    ):
        status, answer = resp.status, json.loads(await resp.text())
    assert (status, answer["message"]) == (case.status, case.message)
    assert daemon.triggered == []


async def test_a_get_on_a_hook_is_405_and_triggers_nothing(hooks: tuple[FakeDaemon, str]) -> None:
    """Hooks are POST only: GET is 405 with Allow: POST."""
    daemon, base = hooks
    async with aiohttp.ClientSession() as session, session.get(base + "/hooks/github") as resp:
        assert (resp.status, resp.headers["Allow"]) == (405, "POST")
    assert daemon.triggered == []


async def test_an_unconfigured_host_is_404_naming_the_config() -> None:
    """A host with no secret in the daemon config: 404 saying so, even with a valid-looking signature."""
    daemon = FakeDaemon({"ops/staging": _env("main")})
    receiver = Receiver(daemon, lambda p: (SECRET,) if p == "github" else None)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/hooks/gitea", data=PUSH, headers={"X-Gitea-Signature": _hex(PUSH)}
            ) as resp,
        ):
            answer = json.loads(await resp.text())
        assert (resp.status, answer["message"]) == (
            404,
            "/hooks/gitea is not configured (no secret for it in the daemon config)",
        )
        assert daemon.triggered == []
    finally:
        await runner.cleanup()
