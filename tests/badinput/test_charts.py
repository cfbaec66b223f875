"""Bad input: charts as an attacker would send them.

A chart repository (its ``index.yaml``, its archives, an OCI registry's answers) and an
Environment's ``spec.chart`` / ``spec.helm`` are other people's input to the daemon. Each case goes
through what the daemon does with it (``parse_spec``; ``Charts.resolve`` and ``Charts.tree`` against
a real HTTP server on loopback; the renderer) and must fail with a condition that names what is
wrong, bounded in time and memory, and leave nothing behind: no unpacked chart in the cache, so
no render and nothing applied (the reconcile stops at the first error of resolve or render).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.helmrepo import HelmRepo, write_chart
from gitopsd.errors import GitopsdError, SpecError
from gitopsd.model import Revision
from gitopsd.render import HelmOptions, RenderOptions, render
from gitopsd.render.errors import HelmError, ValuesFileNotFound
from gitopsd.render.helm import HELM_VARIABLE
from gitopsd.render.helmspec import parse_chart
from gitopsd.render.scopes import OfflineScopes
from gitopsd.sources import LocalTree
from gitopsd.sources.charts import MAX_ENTRIES, MAX_UNPACKED_BYTES, Charts
from gitopsd.sources.charts_http import (
    HELM_LAYER,
    MAX_LISTED_VERSIONS,
    ChartAuthenticationFailed,
    ChartInvalid,
    ChartTooLarge,
    Login,
)
from gitopsd.spec import parse_spec

CHART_YAML = b"apiVersion: v2\nname: shop\nversion: 1.0.0\n"
NAME_RULES = (
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
)


def spec(chart: dict[str, Any] | None = None, **helm: Any) -> dict[str, Any]:
    chart = {"repository": "https://charts.example.com", "name": "shop", **(chart or {})}
    return {"chart": chart, "targetNamespace": "shop", **({"helm": helm} if helm else {})}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            spec(valuesFiles=["../../etc/passwd"]),
            "spec.helm.valuesFiles[0]: '../../etc/passwd' points outside the chart",
        ),
        (
            spec(valuesFiles=["templates/../../x"]),
            "spec.helm.valuesFiles[0]: 'templates/../../x' points outside the chart",
        ),
        (
            spec(valuesFrom=[{"kind": "Secret", "name": "db", "namespace": "kube-system"}]),
            "spec.helm.valuesFrom[0].namespace: unknown field",
        ),
        (
            spec(valuesFrom=[{"kind": "Secret", "name": "kube-system/db"}]),
            f"spec.helm.valuesFrom[0].name: 'kube-system/db' is not a Secret name ({NAME_RULES})",
        ),
        (
            spec(valuesFrom=[{"kind": "Secret", "name": ".."}]),
            "spec.helm.valuesFrom[0].name: '..' is not a Secret name",
        ),
        (
            spec(valuesFrom=[{"kind": "ConfigMap", "name": "v", "key": "../values.yaml"}]),
            "spec.helm.valuesFrom[0].key: '../values.yaml' is not a ConfigMap key (letters, digits, '-', '_', '.')",
        ),
        (
            spec(valuesFrom=[{"kind": "Node", "name": "v"}]),
            "spec.helm.valuesFrom[0].kind: must be ConfigMap or Secret (got 'Node')",
        ),
        (spec({"name": "../shop"}), "spec.chart.name: '../shop' is not a chart name"),
        (spec({"name": "team/shop"}), "spec.chart.name: 'team/shop' is not a chart name"),
        (spec({"name": ".."}), "spec.chart.name: '..' is not a chart name"),
        (spec({"version": "1.0.0/../../x"}), "spec.chart.version: '1.0.0/../../x' is neither a version nor a version"),
        (spec({"version": "../1.0.0"}), "spec.chart.version: '../1.0.0' is neither a version nor a version range"),
        (spec({"secretRef": {"name": ".."}}), "spec.chart.secretRef.name: '..' is not a Secret name"),
        (
            spec({"repository": "https://user:pw@charts.example.com"}),
            "spec.chart.repository: must not hold credentials",
        ),
        (spec({"repository": "file:///etc"}), "spec.chart.repository: 'file:///etc' is neither an http(s)://"),
    ],
)
def test_chart_and_helm_fields_that_reach_outside_are_refused(raw: dict[str, Any], message: str) -> None:
    """Paths out of the chart, names with '/' or '..', other namespaces: refused naming the field."""
    with pytest.raises(SpecError) as refused:
        parse_spec(raw)
    assert str(refused.value).startswith(message), str(refused.value)


# -- archives --------------------------------------------------------------------------------------


def _member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _archive(members: list[tuple[tarfile.TarInfo, bytes]], *, huge: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        tar.addfile(*_with_data(_member("shop/Chart.yaml", CHART_YAML)))
        for info, data in members:
            tar.addfile(*_with_data((info, data)))
        if huge:  # zeros: a 1000:1 gzip bomb
            info = tarfile.TarInfo("shop/templates/huge.yaml")
            info.size = huge
            tar.addfile(info, io.BytesIO(bytes(huge)))
    return buf.getvalue()


def _with_data(member: tuple[tarfile.TarInfo, bytes]) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info, data = member
    return info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None


def _serve(root: Path, url: str, archives: dict[str, bytes]) -> None:
    """``archives`` (version -> bytes) as shop-VERSION.tgz, and an index announcing their true digests."""
    entries = []
    for version, body in archives.items():
        (root / f"shop-{version}.tgz").write_bytes(body)
        digest = hashlib.sha256(body).hexdigest()
        entries.append({"name": "shop", "version": version, "urls": [f"shop-{version}.tgz"], "digest": digest})
    (root / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"shop": entries}}))


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[HelmRepo]:
    served = HelmRepo(tmp_path / "repo").start()
    yield served
    served.stop()


ARCHIVES: list[tuple[str, list[tuple[tarfile.TarInfo, bytes]], int, type[GitopsdError], str]] = [
    (
        "path traversal",
        [_member("shop/../../../evil.yaml", b"x")],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive cannot be unpacked: 'shop/../../../evil.yaml' would be extracted to",
    ),
    (
        "absolute path",
        [_member("/etc/cron.d/evil", b"x")],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive holds an absolute path ('/etc/cron.d/evil')",
    ),
    (
        "symlink to the service account token",
        [_member("shop/files/token", kind=tarfile.SYMTYPE, link="/var/run/secrets/kubernetes.io/serviceaccount/token")],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive cannot be unpacked: 'shop/files/token' is a link to an absolute path",
    ),
    (
        "relative symlink out of the chart",
        [_member("shop/values.yaml", kind=tarfile.SYMTYPE, link="../../../../../../etc/passwd")],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive cannot be unpacked: 'shop/values.yaml' would link to",
    ),
    (
        "hard link out of the chart",
        [_member("shop/values.yaml", kind=tarfile.LNKTYPE, link="../../etc/passwd")],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive cannot be unpacked: 'shop/values.yaml'",
    ),
    (
        "device file",
        [_member("shop/templates/disk", kind=tarfile.BLKTYPE)],
        0,
        ChartInvalid,
        "shop@1.0.0: the archive cannot be unpacked: 'shop/templates/disk' is a special file",
    ),
    (
        "a file bigger than the chart limit (gzip bomb)",
        [],
        MAX_UNPACKED_BYTES + 1,
        ChartTooLarge,
        f"shop@1.0.0: the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes ('shop/templates/huge.yaml'",
    ),
    (
        "too many entries",
        [_member(f"shop/templates/{n}.yaml") for n in range(MAX_ENTRIES + 1)],
        0,
        ChartTooLarge,
        f"shop@1.0.0: the archive holds more than {MAX_ENTRIES} entries",
    ),
    (
        "no chart in it",
        [],
        -1,
        ChartInvalid,
        "shop@1.0.0: the archive holds no chart directory",
    ),
]


@pytest.mark.parametrize(
    ("members", "huge", "error", "message"), [case[1:] for case in ARCHIVES], ids=[case[0] for case in ARCHIVES]
)
def test_hostile_chart_archives_are_refused_and_leave_nothing(
    repo: HelmRepo, tmp_path: Path, members: Any, huge: int, error: type[GitopsdError], message: str
) -> None:
    """An archive whose digest matches the index but whose content escapes, bombs or is no chart: refused
    (not retried by itself) and nothing unpacked is left in the cache."""
    body = _archive(members, huge=max(huge, 0)) if huge >= 0 else _no_chart()
    _serve(repo.root, repo.url, {"1.0.0": body})
    chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.0.0"})
    assert chart is not None
    cache = tmp_path / "cache"

    async def scenario() -> None:
        charts = Charts(cache)
        revision = await charts.resolve(chart, None, max_age=0)
        with pytest.raises(error) as refused:
            await charts.tree(chart, revision, None)
        assert str(refused.value).startswith(message), str(refused.value)
        assert not refused.value.transient

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 60  # bounded: the bomb is not inflated whole
    assert not (cache / "unpacked").exists() or list((cache / "unpacked").iterdir()) == []
    assert not (tmp_path / "evil.yaml").exists()


def _no_chart() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info, data = _member("README.md", b"no chart here")
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- index.yaml ------------------------------------------------------------------------------------


def _alias_bomb() -> str:
    """96 KiB that list four million versions through one anchor."""
    lines = ["apiVersion: v1", "entries:", "  shop: &all"]
    lines += [f"  - {{version: 1.0.{n}, urls: [shop-1.0.{n}.tgz]}}" for n in range(2000)]
    lines += [f"  copy{n}: *all" for n in range(2000)]
    return "\n".join(lines)


def _laughs() -> str:
    """A version whose value is an exponential structure (billion laughs): never turned into text."""
    lines = ["apiVersion: v1", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    lines += [
        "entries:",
        "  shop:",
        "  - {version: *l8, urls: [x.tgz]}",
        "  - {version: 1.0.0, urls: [shop-1.0.0.tgz]}",
    ]
    return "\n".join(lines)


INDEXES: list[tuple[str, str, str]] = [
    ("alias bomb", _alias_bomb(), f"lists more than {MAX_LISTED_VERSIONS} chart versions"),
    ("deep nesting", "entries: " + "[" * 100_000 + "]" * 100_000, "is not YAML"),
    ("not an index", "- just\n- a list\n", "is not a Helm repository index (no entries)"),
    ("binary", "\x00\x01\x02 not yaml: [", "is not YAML"),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in INDEXES], ids=[case[0] for case in INDEXES])
def test_hostile_indexes_are_refused_quickly(repo: HelmRepo, tmp_path: Path, text: str, message: str) -> None:
    """An index.yaml built to exhaust the daemon (aliases, nesting) or that is no index: ChartInvalid, fast."""
    (repo.root / "index.yaml").write_text(text)
    chart = parse_chart({"repository": repo.url, "name": "shop", "version": "*"})
    assert chart is not None

    async def scenario() -> None:
        with pytest.raises(ChartInvalid, match=r"index\.yaml") as refused:
            await Charts(tmp_path / "cache").resolve(chart, None, max_age=0)
        assert message in str(refused.value) and not refused.value.transient

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30


def test_an_exponential_version_is_skipped_not_expanded(repo: HelmRepo, tmp_path: Path) -> None:
    """A version that is an aliased structure is not a version: skipped (never str()-ed), the real one chosen."""
    (repo.root / "index.yaml").write_text(_laughs())
    chart = parse_chart({"repository": repo.url, "name": "shop", "version": "*"})
    assert chart is not None
    revision = asyncio.run(Charts(tmp_path / "cache").resolve(chart, None, max_age=0))
    assert revision == Revision("shop", "1.0.0", chart=True)


def test_credentials_go_only_to_the_repository_host(tmp_path: Path) -> None:
    """An index that names its archive on another host gets no credentials sent there (as Helm without
    --pass-credentials): that host asks for them and the fetch fails as ChartAuthenticationFailed."""
    repo = HelmRepo(tmp_path / "repo", login="ci:letmein").start()
    elsewhere = HelmRepo(tmp_path / "elsewhere", login="ci:letmein").start()
    try:
        body = _archive([])
        (elsewhere.root / "shop-1.0.0.tgz").write_bytes(body)
        entry = {
            "version": "1.0.0",
            "urls": [f"{elsewhere.url}/shop-1.0.0.tgz"],
            "digest": hashlib.sha256(body).hexdigest(),
        }
        (repo.root / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"shop": [entry]}}))
        chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.0.0"})
        assert chart is not None

        async def scenario() -> None:
            charts, login = Charts(tmp_path / "cache"), Login("ci", "letmein")
            revision = await charts.resolve(chart, login, max_age=0)  # the repository itself: accepted
            with pytest.raises(ChartAuthenticationFailed, match=elsewhere.url):
                await charts.tree(chart, revision, login)

        asyncio.run(scenario())
        assert elsewhere.counts["/shop-1.0.0.tgz"] == 1
    finally:
        repo.stop()
        elsewhere.stop()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:25/x"])
def test_an_archive_listed_at_a_non_http_url_is_refused(repo: HelmRepo, tmp_path: Path, url: str) -> None:
    """An index entry whose URL is file:// or another scheme: ChartInvalid naming it (not retried forever)."""
    entry = {"version": "1.0.0", "urls": [url], "digest": "0" * 64}
    (repo.root / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"shop": [entry]}}))
    chart = parse_chart({"repository": repo.url, "name": "shop", "version": "1.0.0"})
    assert chart is not None

    async def scenario() -> None:
        charts = Charts(tmp_path / "cache")
        revision = await charts.resolve(chart, None, max_age=0)
        with pytest.raises(ChartInvalid, match=f"chart shop version 1.0.0 is listed at '{url}', not an http"):
            await charts.tree(chart, revision, None)

    asyncio.run(scenario())


# -- OCI registries --------------------------------------------------------------------------------


def _registry_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


OCI: list[tuple[str, dict[str, str], str]] = [
    ("tag list not JSON", {"v2/shop/tags/list": "<html>login</html>"}, "the tag list is not a JSON object"),
    ("tags not a list", {"v2/shop/tags/list": '{"tags": "1.0.0"}'}, "tags is not a list of at most"),
    (
        "layer digest with a path",
        {
            "v2/shop/tags/list": '{"tags": ["1.0.0"]}',
            "v2/shop/manifests/1.0.0": json.dumps(
                {"layers": [{"mediaType": HELM_LAYER, "digest": "sha256:../../../v2/other/blobs/x", "size": 10}]}
            ),
        },
        "the chart layer has no sha256 digest and size",
    ),
    (
        "manifest not JSON",
        {"v2/shop/tags/list": '{"tags": ["1.0.0"]}', "v2/shop/manifests/1.0.0": "[]"},
        "the manifest is not a JSON object",
    ),
]


@pytest.mark.parametrize(("files", "message"), [case[1:] for case in OCI], ids=[case[0] for case in OCI])
def test_hostile_registry_answers_are_refused(
    repo: HelmRepo, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    """A registry (here: static answers on loopback) that answers with something else than the v2 API's JSON."""
    _registry_files(repo.root, files)
    chart = parse_chart({"repository": f"oci://127.0.0.1:{repo.port}", "name": "shop", "version": "*"})
    assert chart is not None

    async def scenario() -> None:
        charts = Charts(tmp_path / "cache")
        with pytest.raises(ChartInvalid) as refused:
            revision = await charts.resolve(chart, None, max_age=0)
            await charts.tree(chart, revision, None)
        assert message in str(refused.value), str(refused.value)

    asyncio.run(scenario())


# -- charts in Git -----------------------------------------------------------------------------------


def test_a_values_file_symlink_out_of_the_checkout_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """values-prod.yaml -> /etc/passwd in a chart directory: ValuesFileNotFound naming it; helm never runs."""
    monkeypatch.setenv(HELM_VARIABLE, str(tmp_path / "no-helm"))  # reached only if the check let it through
    chart = write_chart(tmp_path / "repo" / "deploy", {"Chart.yaml": CHART_YAML.decode()})
    (chart / "values-prod.yaml").symlink_to("/etc/passwd")
    options = RenderOptions("deploy", "e", None, helm=HelmOptions("web", values_files=("values-prod.yaml",)))
    with pytest.raises(ValuesFileNotFound, match=r"spec.helm.valuesFiles\[0\]: deploy/values-prod.yaml is not a file"):
        render(LocalTree(tmp_path / "repo"), options, OfflineScopes())


def test_a_chart_lock_bomb_is_refused_before_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Chart.lock whose dependencies are an alias bomb: refused by name, fast, without running helm."""
    monkeypatch.setenv(HELM_VARIABLE, str(tmp_path / "no-helm"))
    lock = ["dependencies: &all", *[f"- {{name: d{n}, version: 1.0.0, repository: https://x}}" for n in range(1001)]]
    write_chart(tmp_path / "repo" / "deploy", {"Chart.yaml": CHART_YAML.decode(), "Chart.lock": "\n".join(lock)})
    options = RenderOptions("deploy", "e", None, helm=HelmOptions("web"))
    with pytest.raises(HelmError, match=r"deploy/Chart.yaml: Chart.lock dependencies must be a list of at most 1000"):
        render(LocalTree(tmp_path / "repo"), options, OfflineScopes())


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("../../../../../../tmp/evil", "1.0.0"),  # would write the fetched archive outside charts/
        ("shop", "1.0.0/../../../../unpacked/x/shop/charts/evil"),
        ("..", "1.0.0"),
        ("shop", "latest"),
    ],
)
def test_a_chart_lock_entry_that_names_a_path_is_refused_before_any_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, version: str
) -> None:
    """A Chart.lock dependency's name and version become a file name under charts/ (and a repository path):
    one with '/' or '..' or no exact version is refused naming the entry; nothing is fetched nor written."""
    monkeypatch.setenv(HELM_VARIABLE, str(tmp_path / "no-helm"))
    lock = f"dependencies:\n- {{name: {json.dumps(name)}, version: {json.dumps(version)}, repository: https://x}}\n"
    write_chart(tmp_path / "repo" / "deploy", {"Chart.yaml": CHART_YAML.decode(), "Chart.lock": lock})
    fetched: list[tuple[str, str, str]] = []

    def fetch(repository: str, chart: str, exact: str) -> Path:
        fetched.append((repository, chart, exact))
        return tmp_path / "never"

    options = RenderOptions("deploy", "e", None, helm=HelmOptions("web", fetch_dependency=fetch))
    with pytest.raises(
        HelmError, match=r"deploy/Chart.yaml: Chart.lock entry .*: not a chart name and an exact version"
    ):
        render(LocalTree(tmp_path / "repo"), options, OfflineScopes())
    assert fetched == [] and not (tmp_path / "evil-1.0.0.tgz").exists()
