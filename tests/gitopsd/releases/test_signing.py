"""Signed, bounded release records against a real API server and a real ``gitopsd run``.

- the key Secret is created on the daemon's first start in its own namespace and reused after
  a restart;
- a forged "Healthy" record (digests recomputed, no key) is refused by ``gitopsd rollback`` by
  name, marked by ``gitopsd history``, skipped (with one Event) by the automatic rollback, and
  refused by the daemon when a user without the key asks for it anyway;
- a head claiming a million parts costs one GET, and an 896 KiB inflate bomb is stopped at the
  bundle limit (what the daemon and the CLI do before they inflate anything).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.kube import Kube
from gitopsd.model import Manifest
from gitopsd.releases import signing
from gitopsd.releases.info import MAX_BUNDLE, Owner, ReleaseError
from gitopsd.releases.record import LABEL_RESULT, canonical, digest_of, secret_name
from gitopsd.releases.store import SECRETS, ReleaseStore
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import (
    apply_objects,
    condition,
    environment,
    get_json,
    gitopsd_cli,
    wait_for,
    wait_ready,
)
from tests.gitopsd.test_releases import app, records, status_of

pytestmark = pytest.mark.cluster

A = "release.gitopsd.dev/"


def _key_secret(cluster: ClusterInfo, namespace: str) -> dict[str, Any] | None:
    out = kubectl(cluster, "get", "secret", signing.KEY_SECRET, "-n", namespace, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_the_key_secret_is_created_on_first_start_and_reused_after_a_restart(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    start_daemon: Callable[..., DaemonProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """First start: gitopsd-release-signing (32 random bytes) in $POD_NAMESPACE; a restart keeps the same key."""
    own = namespaces("gitopsd-own")
    monkeypatch.setenv("POD_NAMESPACE", own)
    assert _key_secret(gitopsd_crd, own) is None
    daemon = start_daemon(f"--namespace={own}")
    first = _key_secret(gitopsd_crd, own)
    assert first is not None and first["type"] == signing.KEY_TYPE
    assert len(base64.b64decode(first["data"]["key"])) == 32
    assert first["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gitopsd"}
    assert daemon.stop() == 0
    daemon.start()
    again = _key_secret(gitopsd_crd, own)
    assert again is not None
    assert (again["metadata"]["uid"], again["data"]) == (first["metadata"]["uid"], first["data"])
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]  # not even rewritten


def _forge(head: dict[str, Any], number: int, evil: list[Manifest]) -> dict[str, Any]:
    """Release ``number`` copied from a genuine head: an evil bundle, digests recomputed, Healthy, no key."""
    forged = copy.deepcopy(head)
    meta = forged["metadata"]
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        meta.pop(field, None)
    name = meta["name"].rsplit(".v", 1)[0] + f".v{number}"
    meta["name"] = name
    meta["labels"].update({"gitopsd.dev/release": str(number), LABEL_RESULT: "Healthy"})
    packed = _gzip(canonical(evil))
    forged["data"] = {"bundle": base64.b64encode(packed).decode()}
    meta["annotations"].update({
        A + "digest": digest_of(evil),
        A + "packed": "sha256:" + hashlib.sha256(packed).hexdigest(),
        A + "size": str(len(packed)),
        A + "parts": "1",
        A + "objects": str(len(evil)),
        A + "revision": "v9.9.9@sha1:" + "9" * 40,
    })  # fmt: skip
    return forged


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def test_a_forged_healthy_record_is_never_restored(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rollback --to the forged release: exit 1 naming it; history marks it; auto rollback skips it (one Event)."""
    cluster = gitopsd_crd
    ops, app_ns = namespaces("sign-ops"), namespaces("sign-app")
    monkeypatch.setenv("POD_NAMESPACE", ops)  # the daemon's key lives in ops
    repo.commit(app("v1"))
    v1 = repo.tag("v1.0.0")
    start_daemon(f"--namespace={ops}")
    manifest = environment("prod", ops, repo.file_url, target=app_ns, semver=">=1.0.0")
    manifest["spec"].update(wait={"timeout": "8s"}, rollback={"auto": True})
    apply_objects(cluster, manifest)
    wait_ready(cluster, ops, "prod", revision=f"v1.0.0@sha1:{v1}")
    head = records(cluster, ops, "prod")[1]
    assert head["metadata"]["annotations"][A + "signature"].startswith("hmac-sha256:")

    # Someone who may write Secrets in ops forges release 2: Healthy, a ConfigMap "evil", digests right.
    evil = [Manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evil"}, "data": {"a": "b"}},
                     "deploy/evil.yaml")]  # fmt: skip
    apply_objects(cluster, _forge(head, 2, evil))
    refused_line = (
        f"release 2 of {ops}/prod is not signed by this gitopsd (forged or from another installation): "
        "refusing to restore it"
    )

    # The CLI, with the key: refused by name, exit 1, nothing requested.
    out = gitopsd_cli(cluster, "rollback", "prod", "-n", ops, "--to", "2", "--gitopsd-namespace", ops)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.strip() == f"error: cannot roll back {ops}/prod: {refused_line}", out.stderr
    assert "gitopsd.dev/rollback" not in (
        get_json(cluster, "env", "prod", "-n", ops)["metadata"].get("annotations") or {}
    )

    # history marks it: SIGNED no, in the table and in JSON.
    out = gitopsd_cli(cluster, "history", "prod", "-n", ops, "--gitopsd-namespace", ops)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    header, *rows = out.stdout.splitlines()
    assert "SIGNED" in header.split()
    forged_row = next(r for r in rows if secret_name("prod", 2) in r)
    assert forged_row.split()[:3] == ["?", "Invalid", "no"] and refused_line in forged_row
    doc = json.loads(
        gitopsd_cli(cluster, "history", "prod", "-n", ops, "--gitopsd-namespace", ops, "-o", "json").stdout
    )
    assert [r["signed"] for r in doc["releases"]] == [True]
    assert doc["invalid"] == [
        {"secret": secret_name("prod", 2), "reason": "ReleaseNotSigned", "error": refused_line, "signed": False}
    ]

    # v2 fails its health gate: the automatic rollback restores release 1, not the forged (newer) 2.
    repo.commit(app("v2", ready=False))
    repo.tag("v2.0.0")

    def rolled_back() -> dict[str, Any] | None:
        st = status_of(cluster, ops, "prod")
        ok = st.get("release") == 4 and condition({"status": st}, "Ready").get("status") == "True"
        return st if ok else None

    wait_for("the automatic rollback of v2 (release 3) to release 1, as release 4", rolled_back, timeout=90)
    fourth = records(cluster, ops, "prod")[4]["metadata"]["annotations"]
    assert fourth[A + "note"] == "rollback to 1" and fourth[A + "restored-from"] == "1"
    assert kubectl(cluster, "get", "configmap", "evil", "-n", app_ns).returncode != 0  # never applied
    skipped = get_json(cluster, "events", "-n", ops, "--field-selector", "reason=InvalidReleaseSkipped")["items"]
    assert [e["involvedObject"]["name"] for e in skipped] == ["prod"] and refused_line in skipped[0]["message"]

    # A user who cannot read the key: the CLI says so and asks; the daemon refuses by name.
    out = gitopsd_cli(cluster, "history", "prod", "-n", ops, "--gitopsd-namespace", app_ns)  # no key there
    assert "warning: signatures not checked (SIGNED ?)" in out.stderr, out.stderr
    out = gitopsd_cli(
        cluster, "rollback", "prod", "-n", ops, "--to", "2", "--wait", "--timeout", "60s", "--gitopsd-namespace", app_ns
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the signature of release 2 was not checked here" in out.stderr
    assert refused_line in out.stderr.splitlines()[-1], out.stderr
    st = status_of(cluster, ops, "prod")
    assert st["lastHandledRollback"]["result"] == "Refused" and st["release"] == 4
    assert kubectl(cluster, "get", "configmap", "evil", "-n", app_ns).returncode != 0


def _bogus_head(namespace: str, uid: str, *, parts: str, packed: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "gitopsd.dev/release.v1",
        "metadata": {
            "name": secret_name("shop", 1),
            "namespace": namespace,
            "labels": {"gitopsd.dev/release-of": "shop", "gitopsd.dev/release": "1", LABEL_RESULT: "Healthy"},
            "ownerReferences": [
                {"apiVersion": "gitopsd.dev/v1alpha1", "kind": "Environment", "name": "shop", "uid": uid}
            ],
            "annotations": {
                A + "revision": "v1",
                A + "digest": "sha256:" + "0" * 64,
                A + "applied-at": "2026-12-07T00:00:00Z",
                A + "parts": parts,
                A + "size": str(len(packed)),
                A + "packed": "sha256:" + hashlib.sha256(packed).hexdigest(),
            },
        },
        "data": {"bundle": base64.b64encode(packed).decode()},
    }


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join([packer.compress(block) for _ in range(900)] + [packer.flush()])


def test_a_parts_bomb_costs_one_get_and_an_inflate_bomb_stops_at_the_limit(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str]
) -> None:
    """parts=1000000: refused after the head's GET, listed as invalid; 896 KiB of gzip: stopped at 64 MiB."""
    ns = namespaces("sign-bombs")
    # A real owner (no daemon watches ns): the garbage collector deletes records of a missing one.
    apply_objects(gitopsd_crd, environment("shop", ns, "file:///nowhere.git", target=ns, branch="main"))
    owner = Owner(ns, "shop", get_json(gitopsd_crd, "env", "shop", "-n", ns)["metadata"]["uid"])
    bomb = _bomb()
    assert len(bomb) > 880 * 1024

    async def run() -> None:
        async with Kube.from_kubeconfig(str(gitopsd_crd.kubeconfig), None) as kube:
            # The daemon's store (key created in ns) and a user's store that cannot read any key.
            daemon = ReleaseStore(kube, keys=signing.Keyring(kube, ns))
            user = ReleaseStore(kube, keys=signing.Keyring(kube, ns, name="absent", create=False, required=False))
            await kube.create(SECRETS.path(ns), _bogus_head(ns, owner.uid, parts="1000000", packed=b"x"))
            for store in (daemon, user):
                kube.stats.reset()
                with pytest.raises(ReleaseError, match=r"parts is 1000000: a record has 1 to 8 parts"):
                    await store.read(owner, 1)
                assert kube.stats.snapshot() == {"GET secrets": 1}
                listing = await store.scan(owner)
                assert listing.records == {} and "parts is 1000000" in listing.invalid[secret_name("shop", 1)].message
            await kube.delete(SECRETS.path(ns, secret_name("shop", 1)))

            await kube.create(SECRETS.path(ns), _bogus_head(ns, owner.uid, parts="1", packed=bomb))
            with pytest.raises(ReleaseError, match="is not signed by this gitopsd"):
                await daemon.read(owner, 1)  # the daemon never inflates what it did not sign
            tracemalloc.start()
            try:
                with pytest.raises(ReleaseError, match="inflates to more than 64 MiB"):
                    await user.read(owner, 1)  # unsigned, unchecked: still bounded
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < MAX_BUNDLE + 16 * 1024 * 1024, peak

    asyncio.run(run())
