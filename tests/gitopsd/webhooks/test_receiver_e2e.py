"""Push to deploy through a real ``gitopsd run``: signed GitHub, GitLab, Gitea and generic hooks and ``gitopsd notify``.

One daemon for the module, Environments polling once an hour: anything that moves them in a
test was triggered by a webhook. Their repository is served over https (git's own backend), and
payloads name it in the other spellings a host uses (``git@host:path``, no ``.git``), so URL
normalisation is exercised end to end.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e import procs
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from e2e.gitserver import GitHttpsServer
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, env_object, environment, secret, wait_for, wait_ready
from tests.gitopsd.webhooks.payloads import (
    ZERO,
    encode,
    gitea_push,
    github_push,
    gitlab_push,
    hmac_hex,
    post,
    signed_headers,
)

pytestmark = pytest.mark.cluster
log = logging.getLogger(__name__)

APP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  release: "{release}"
"""


@dataclass
class Hooked:
    cluster: ClusterInfo
    ops: str
    target: str  # prefix of the target namespaces
    repo: WorkRepo
    other: WorkRepo
    https_url: str
    name: str  # repository name on the git server
    daemon: DaemonProcess
    hooks: str  # http://127.0.0.1:PORT
    secrets: dict[str, bytes]

    def url(self, provider: str) -> str:
        return f"{self.hooks}/hooks/{provider}"

    def send(self, provider: str, payload: dict[str, Any], event: str | None = None) -> tuple[int, dict[str, Any]]:
        body = encode(payload)
        return post(self.url(provider), body, signed_headers(provider, self.secrets[provider], body, event))

    def github(self, ref: str, after: str) -> dict[str, Any]:
        return github_push(
            ref, after, clone_url=self.https_url, ssh_url=f"git@127.0.0.1:{self.name}.git",
            html_url=f"https://127.0.0.1/{self.name}",
        )  # fmt: skip

    def revision(self, env: str) -> str:
        return str((env_object(self.cluster, self.ops, env).get("status") or {}).get("lastAttemptedRevision"))

    def reconciles(self, env: str) -> float:
        return self.daemon.metric("gitopsd_reconcile_total", environment=f"{self.ops}.{env}")


@pytest.fixture(scope="module")
def hooked(
    gitopsd_crd: ClusterInfo, git_https_server: GitHttpsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hooked]:
    """A daemon with all four hooks configured; dev/staging/prod/tagged read one https repo, other a file:// one."""
    cluster = gitopsd_crd
    tmp = tmp_path_factory.mktemp("hooks")
    suffix = secrets.token_hex(3)
    ops, target = f"hooks-{suffix}", f"hooks-app-{suffix}"
    assert kubectl(cluster, "create", "namespace", ops).returncode == 0
    name = f"hooks-{suffix}"
    repo = git_https_server.new_repo(name)
    repo.commit({"deploy/app.yaml": APP.format(release="one")})
    repo.tag("v1.0.0")
    repo.branch("develop")
    repo.switch("main")
    other = WorkRepo.create(tmp / "other.git", tmp / "other-work")
    other.commit({"deploy/app.yaml": APP.format(release="other")})
    keys = {p: secrets.token_hex(16).encode() for p in ("github", "gitlab", "gitea", "generic")}
    apply_objects(
        cluster,
        secret("hook-secrets", ops, keys),
        secret("git", ops, git_https_server.secret_data()),
    )
    config = tmp / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "gitopsd.dev/v1alpha1",
                "kind": "DaemonConfig",
                "secretNamespace": ops,
                "webhooks": {p: {"secretRef": {"name": "hook-secrets", "key": p}} for p in keys},
            }
        )
    )
    port = procs.free_port("127.0.0.1")
    daemon = DaemonProcess(
        cluster.kubeconfig, tmp / "daemon", f"--namespace={ops}", f"--config={config}",
        f"--webhook-bind-address=127.0.0.1:{port}", "--webhook-read-timeout=2", name="gitopsd-hooks",
    ).start()  # fmt: skip
    try:
        https_url = git_https_server.url(name)
        refs = {"dev": {"branch": "develop"}, "staging": {"branch": "main"}, "prod": {"semver": ">=1.0.0 <2.0.0"},
                "tagged": {"tag": "v1.0.0"}}  # fmt: skip
        for env in (*refs, "other"):  # one target namespace each: they all apply a ConfigMap named app
            assert kubectl(cluster, "create", "namespace", f"{target}-{env}").returncode == 0
        apply_objects(
            cluster,
            *(environment(n, ops, https_url, target=f"{target}-{n}", interval="1h", secretRef={"name": "git"}, **ref)
              for n, ref in refs.items()),
            environment("other", ops, other.file_url, target=f"{target}-other", interval="1h", branch="main"),
        )  # fmt: skip
        for env in (*refs, "other"):
            wait_ready(cluster, ops, env)
        hooked = Hooked(cluster, ops, target, repo, other, https_url, name, daemon, f"http://127.0.0.1:{port}", keys)
        yield hooked
    finally:
        code = daemon.stop()
        for ns in (ops, *(f"{target}-{e}" for e in ("dev", "staging", "prod", "tagged", "other"))):
            kubectl(cluster, "delete", "namespace", ns, "--wait=false")
    assert code == 0, daemon.log_text()[-3000:]


def _settled(h: Hooked, env: str, seconds: float = 3.0) -> tuple[str, float, str]:
    """(lastAttemptedRevision, reconcile count, resourceVersion) after ``seconds`` of quiet."""
    time.sleep(seconds)
    obj = env_object(h.cluster, h.ops, env)
    return str(obj["status"].get("lastAttemptedRevision")), h.reconciles(env), obj["metadata"]["resourceVersion"]


def test_signed_github_push_deploys_without_waiting_for_the_interval(hooked: Hooked) -> None:
    """A signed GitHub push of main deploys staging at once (interval 1h); dev, whose branch also moved, stays."""
    h = hooked
    h.repo.switch("develop")
    dev_commit = h.repo.commit({"deploy/app.yaml": APP.format(release="dev-2")})
    h.repo.switch("main")
    commit = h.repo.commit({"deploy/app.yaml": APP.format(release="two")})
    dev_before = h.reconciles("dev")
    started = time.monotonic()
    status, answer = h.send("github", h.github("refs/heads/main", commit))
    assert (status, answer["result"], answer["triggered"]) == (202, "triggered", [f"{h.ops}/staging"]), answer
    wait_ready(h.cluster, h.ops, "staging", revision=f"main@sha1:{commit}")
    latency = time.monotonic() - started
    log.info("webhook -> staging Ready at the new commit: %.2fs", latency)
    print(f"webhook latency (hook sent -> Environment Ready at the pushed commit): {latency:.2f}s")
    assert h.revision("dev") != f"develop@sha1:{dev_commit}"  # no hook for develop: still the old commit
    assert h.reconciles("dev") == dev_before


def test_bad_or_missing_signatures_trigger_nothing(hooked: Hooked) -> None:
    """Forged, wrong-secret, unsigned, wrong-scheme and wrong-length signatures: 401 and dev untouched."""
    h = hooked
    h.repo.switch("develop")
    commit = h.repo.commit({"deploy/app.yaml": APP.format(release="dev-3")})
    h.repo.switch("main")
    before = _settled(h, "dev", 0)
    body = encode(h.github("refs/heads/develop", commit))
    good = signed_headers("github", h.secrets["github"], body)
    wrong = signed_headers("github", b"not-the-secret", body)  # a replay signed with another secret
    cases = {
        "forged": {**good, "X-Hub-Signature-256": "sha256=" + secrets.token_hex(32)},
        "wrong secret": wrong,
        "unsigned": {k: v for k, v in good.items() if k != "X-Hub-Signature-256"},
        "sha1 scheme": {**good, "X-Hub-Signature-256": "sha1=" + secrets.token_hex(20)},
        "short": {**good, "X-Hub-Signature-256": good["X-Hub-Signature-256"][:-2]},
        "not hex": {**good, "X-Hub-Signature-256": "sha256=" + "z" * 64},
        "no scheme": {**good, "X-Hub-Signature-256": hmac_hex(h.secrets["github"], body)},
        "body changed": {**good},
    }
    for what, headers in cases.items():
        sent = body if what != "body changed" else body.replace(b'"after"', b'"after" ', 1)
        status, answer = post(h.url("github"), sent, headers)
        assert (status, answer.get("result")) == (401, "unauthorized"), (what, answer)
    # GitLab's token and Gitea's bare-hex signature, wrong, and the generic hook unsigned.
    gl = encode(gitlab_push("refs/heads/develop", commit, http_url=h.https_url, ssh_url="x", web_url="y"))
    assert post(h.url("gitlab"), gl, {"X-Gitlab-Token": "nope", "X-Gitlab-Event": "Push Hook"})[0] == 401
    gt = encode(gitea_push("refs/heads/develop", commit, clone_url=h.https_url, ssh_url="x", html_url="y"))
    assert post(h.url("gitea"), gt, {"X-Gitea-Signature": hmac_hex(b"nope", gt), "X-Gitea-Event": "push"})[0] == 401
    assert post(h.url("gitea"), gt, {"X-Gitea-Signature": "sha256=" + hmac_hex(h.secrets["gitea"], gt),
                                     "X-Gitea-Event": "push"})[0] == 401  # fmt: skip
    generic = encode({"repository": h.https_url, "ref": "refs/heads/develop"})
    assert post(h.url("generic"), generic, {"Content-Type": "application/json"})[0] == 401
    assert _settled(h, "dev") == before  # lastAttemptedRevision, reconciles and resourceVersion unchanged
    status, answer = post(h.url("github"), body, good)
    assert (status, answer["triggered"]) == (202, [f"{h.ops}/dev"])
    wait_ready(h.cluster, h.ops, "dev", revision=f"develop@sha1:{commit}")


def test_gitlab_gitea_generic_and_notify_each_trigger_the_right_environments(hooked: Hooked, tmp_path: Path) -> None:
    """GitLab tag push (ssh URL forms) moves prod only; Gitea, generic and gitopsd notify move only their branch's."""
    h = hooked
    h.repo.switch("main")
    main_commit = h.repo.commit({"deploy/app.yaml": APP.format(release="three")})
    tag_commit = h.repo.tag("v1.1.0", message="release 1.1.0")
    staging_before = h.revision("staging")

    # GitLab names the repository as git@host:path.git and http://host/path (no port, no .git).
    payload = gitlab_push("refs/tags/v1.1.0", tag_commit, http_url=f"http://127.0.0.1/{h.name}",
                          ssh_url=f"git@127.0.0.1:{h.name}.git", web_url=f"http://127.0.0.1/{h.name}")  # fmt: skip
    status, answer = h.send("gitlab", payload, "Tag Push Hook")
    assert (status, answer["triggered"]) == (202, [f"{h.ops}/prod"]), answer  # tagged follows v1.0.0 only
    wait_ready(h.cluster, h.ops, "prod", revision=f"v1.1.0@sha1:{tag_commit}")
    assert h.revision("staging") == staging_before  # main moved, but the hook was for a tag

    h.repo.switch("develop")
    dev_commit = h.repo.commit({"deploy/app.yaml": APP.format(release="dev-4")})
    payload = gitea_push(
        "refs/heads/develop",
        dev_commit,
        clone_url=f"https://127.0.0.1/{h.name}.git",
        ssh_url=f"ssh://git@127.0.0.1:2222/{h.name}.git",
        html_url=f"https://127.0.0.1/{h.name}",
    )
    status, answer = h.send("gitea", payload)
    assert (status, answer["triggered"]) == (202, [f"{h.ops}/dev"]), answer
    wait_ready(h.cluster, h.ops, "dev", revision=f"develop@sha1:{dev_commit}")
    assert h.revision("staging") == staging_before

    status, answer = h.send("generic", {"repository": f"git@127.0.0.1:{h.name}", "ref": "refs/heads/main",
                                         "after": main_commit})  # fmt: skip
    assert (status, answer["triggered"]) == (202, [f"{h.ops}/staging"]), answer
    wait_ready(h.cluster, h.ops, "staging", revision=f"main@sha1:{main_commit}")

    dev_commit = h.repo.commit({"deploy/app.yaml": APP.format(release="dev-5")})
    h.repo.switch("main")
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(h.secrets["generic"] + b"\n")
    staging_reconciles = h.reconciles("staging")
    out = subprocess.run(
        [sys.executable, "-m", "gitopsd", "notify", "--url", h.https_url, "--ref", "refs/heads/develop",
         "--after", dev_commit, "--receiver", h.hooks, "--secret-file", str(secret_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{h.ops}/dev" in out.stdout and "staging" not in out.stdout
    wait_ready(h.cluster, h.ops, "dev", revision=f"develop@sha1:{dev_commit}")
    assert h.reconciles("staging") == staging_reconciles

    # Wrong secret: gitopsd notify says so and exits 1; a bad ref is a usage error (2).
    secret_file.write_text("wrong")
    out = subprocess.run(
        [sys.executable, "-m", "gitopsd", "notify", "--url", h.https_url, "--ref", "refs/heads/develop",
         "--receiver", h.hooks, "--secret-file", str(secret_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1 and "401" in out.stderr, out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "gitopsd", "notify", "--url", h.https_url, "--ref", "develop",
         "--receiver", h.hooks, "--secret-file", str(secret_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "--ref 'develop'" in out.stderr, out.stderr


def test_a_burst_of_pushes_coalesces_into_the_newest_commit(hooked: Hooked) -> None:
    """Ten pushes and ten hooks at once: dev ends on the newest commit after at most two reconciles."""
    h = hooked
    h.repo.switch("develop")
    commits = [h.repo.commit({"deploy/app.yaml": APP.format(release=f"burst-{i}")}) for i in range(10)]
    h.repo.switch("main")
    before = h.reconciles("dev")
    results: list[tuple[int, dict[str, Any]]] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(h.send("github", h.github("refs/heads/develop", c))))
        for c in commits
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in results] == [202] * 10
    wait_ready(h.cluster, h.ops, "dev", revision=f"develop@sha1:{commits[-1]}")
    time.sleep(2)
    assert 1 <= h.reconciles("dev") - before <= 2


def test_bad_input_gets_clear_statuses_and_triggers_nothing(hooked: Hooked) -> None:
    """413, 400 (not JSON, deep nesting, no ref), 408 slow body, 202 for unknown events/repositories, ping, 404."""
    h = hooked
    before = {env: _settled(h, env, 0) for env in ("dev", "staging", "prod", "other")}
    huge = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    status, answer = post(h.url("github"), huge, signed_headers("github", h.secrets["github"], huge))
    assert (status, answer["result"]) == (413, "too_large")
    assert _chunked_post(h.hooks, "/hooks/generic", huge, h.secrets["generic"]) == 413
    status, answer = post(h.url("generic"), b"not json", signed_headers("generic", h.secrets["generic"], b"not json"))
    assert (status, answer["result"]) == (400, "bad_request") and "not JSON" in answer["message"]
    deep = b"[" * 200_000 + b"]" * 200_000
    status, answer = post(h.url("generic"), deep, signed_headers("generic", h.secrets["generic"], deep))
    assert status == 400 and "nested too deeply" in answer["message"], answer
    status, answer = h.send("generic", {"repository": h.https_url})
    assert status == 400 and answer["message"].startswith("ref:"), answer
    status, answer = h.send("generic", {"repository": h.https_url, "ref": "refs/heads/main", "after": "HEAD"})
    assert status == 400 and answer["message"].startswith("after:"), answer
    status, answer = h.send("github", {"zen": "Design for failure.", "hook_id": 1}, "ping")
    assert (status, answer["result"]) == (200, "ping")
    status, answer = h.send("github", {"action": "opened", "issue": {}}, "issues")
    assert (status, answer["result"]) == (202, "ignored")
    status, answer = h.send("gitlab", {"object_kind": "note"}, "Note Hook")
    assert (status, answer["result"]) == (202, "ignored")
    unknown = github_push(
        "refs/heads/main",
        "a" * 40,
        clone_url="https://git.example.com/someone/else.git",
        ssh_url="git@git.example.com:someone/else.git",
        html_url="https://git.example.com/x",
    )
    status, answer = h.send("github", unknown)
    assert (status, answer["result"]) == (202, "unknown_repository")
    # A tag outside prod's range, a pull-request ref, and a branch nobody follows: nothing to do.
    for ref in ("refs/tags/v2.0.0", "refs/pull/1/head", "refs/heads/feature"):
        status, answer = h.send("github", h.github(ref, "b" * 40))
        assert (status, answer["result"], answer["triggered"]) == (202, "ignored", []), (ref, answer)
    status, _ = post(f"{h.hooks}/hooks/bitbucket", b"{}", {"Content-Type": "application/json"})
    assert status == 404
    # Slow loris: the body trickles in; the read timeout answers 408, meanwhile hooks are served.
    with socket.create_connection(("127.0.0.1", int(h.hooks.rsplit(":", 1)[1])), timeout=10) as slow:
        slow.sendall(b"POST /hooks/generic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"rep")  # fmt: skip
        started = time.monotonic()
        assert h.send("github", {"zen": "x"}, "ping")[0] == 200  # not blocked by the slow client
        reply = slow.recv(4096)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    log.info("slow body answered 408 after %.1fs", waited)
    # Slow headers (the classic slow loris) or no request at all: the connection is closed.
    with socket.create_connection(("127.0.0.1", int(h.hooks.rsplit(":", 1)[1])), timeout=10) as slow:
        slow.sendall(b"POST /hooks/generic HTTP/1.1\r\nHost: x\r\n")
        assert h.send("github", {"zen": "x"}, "ping")[0] == 200
        assert slow.recv(4096) == b""  # closed by the server (the read timeout is 2s here; recv waits up to 10)
    after = {env: _settled(h, env) for env in ("dev", "staging", "prod", "other")}
    assert after == before


def test_deleted_branch_triggers_its_environment_to_report_it_gone(hooked: Hooked) -> None:
    """An all-zero after-sha triggers the branch's Environment: it reports the branch gone, keeps its objects."""
    h = hooked
    h.repo.branch("doomed")
    commit = h.repo.head()
    target = f"{h.target}-doomed"
    assert kubectl(h.cluster, "create", "namespace", target).returncode == 0
    doomed = environment("doomed", h.ops, h.https_url, target=target, interval="1h", secretRef={"name": "git"},
                         branch="doomed")  # fmt: skip
    apply_objects(h.cluster, doomed)
    wait_ready(h.cluster, h.ops, "doomed", revision=f"doomed@sha1:{commit}")
    h.repo.switch("main")
    h.repo.delete_remote("refs/heads/doomed")
    status, answer = h.send("github", h.github("refs/heads/doomed", ZERO) | {"before": commit})
    assert (status, answer["triggered"]) == (202, [f"{h.ops}/doomed"]), answer

    def stalled() -> bool:
        ready = next(c for c in env_object(h.cluster, h.ops, "doomed")["status"]["conditions"] if c["type"] == "Ready")
        return bool(ready["status"] == "False" and ready["reason"] == "RefNotFound")

    wait_for("doomed Ready=False RefNotFound", stalled, timeout=30)
    assert kubectl(h.cluster, "get", "configmap", "app", "-n", target).returncode == 0  # nothing was deleted
    kubectl(h.cluster, "delete", "namespace", target, "--wait=false")


def _chunked_post(base: str, path: str, body: bytes, secret: bytes) -> int:
    """POST ``body`` chunked (no Content-Length), so the limit is enforced while reading."""
    host, port = base.removeprefix("http://").split(":")
    sig = "sha256=" + hmac_hex(secret, body)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Signature: {sig}\r\n\r\n".encode()
        )
        try:
            for start in range(0, len(body), 65536):
                chunk = body[start : start + 65536]
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        reply = conn.recv(4096)
    return int(reply.split(b" ", 2)[1])
