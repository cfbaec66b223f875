"""The Grafana dashboard (manifests/grafana/gitopsd.json) against real figures.

A real ``gitopsd run`` (metrics, webhook receiver, a webhook notifier) and a real
``metrics-adapter`` are scraped by the harness's Prometheus, as an operator's Prometheus would
scrape them: the adapter over TLS with a ServiceAccount token allowed ``get /metrics``. The test
makes each panel's story happen (a deploy, a release that never turns Ready rolled back and held,
a signed webhook, a notification, custom and external metric requests, an upstream that is down)
and then runs every panel query, the template variable and the annotation through Prometheus's
HTTP API with Grafana's variables filled in as Grafana would.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e import multicluster, procs, services
from e2e.adapter import RunningAdapter, start_adapter
from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.exporter import Exporter
from e2e.gitrepo import WorkRepo
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, condition, env_object, environment, secret, wait_for, wait_ready
from tests.gitopsd.notify.receivers import Receiver
from tests.gitopsd.webhooks.payloads import encode, post, signed_headers

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "grafana" / "gitopsd.json"
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

# The window Grafana's $__rate_interval gives with a 15 s scrape interval (4 x 15 s).
RATE_INTERVAL = "1m"

# Panels whose query is only checked to parse, each with the reason its data cannot exist here.
PARSES_ONLY: dict[str, str] = {}

# What the scene makes certain, as the least value each of these panels must show (first query,
# all series summed): one Environment held after one automatic rollback (releases 1 -> 2 -> 3),
# one whose reconciles fail, one that each poke moves (so Git fetches keep happening).
AT_LEAST: dict[str, float] = {
    "Environments ready": 1,
    "Environments not ready": 1,
    "Held revisions": 1,
    "Rollbacks in range": 1,
    "Rollbacks by environment and reason (in range)": 1,
    "Current release by environment": 3,
    "Releases by environment (in range)": 2,
    "Objects managed": 2,
}

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{release: "{release}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web{never}}}}}
    spec: {{containers: [{{name: web, image: "registry.invalid/web:{release}"}}]}}
"""
POKE = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: poke-marker}}
data: {{poke: "{n}"}}
"""

NEVER_READY = ', "e2e.gitopsd.dev/never-ready": "true"'

ADAPTER_CONFIG = """
rules:
- seriesQuery: '{__name__="e2e_dash_inflight",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^e2e_dash_(.*)$", as: "${1}"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="e2e_dash_queue_messages",namespace!="",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  name: {as: "dash_queue_messages"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
queues:
- name: dash_dead_backlog
  redis: {url: "redis://127.0.0.1:DEAD_PORT/0", list: jobs}
"""
ADAPTER_ARGS = ["--metrics-relist-interval=2s", "--refresh-interval=1s", "--max-staleness=10s"]


# -- the dashboard as data (pure) ---------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return result


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels") or []:
        found.append(panel)
        found.extend(panel.get("panels") or [])
    return found


def substitute(expr: str, range_seconds: int) -> str:
    """``expr`` with Grafana's variables as Grafana fills them (``$environment``, ``$cluster`` = All)."""
    values = {
        "environment": ".*",
        "cluster": ".*",
        "__rate_interval": RATE_INTERVAL,
        "__interval": "15s",
        "__range": f"{range_seconds}s",
        "__range_s": str(range_seconds),
    }

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def legend_labels(legend: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or ""))


def test_dashboard_is_valid_grafana_json() -> None:
    """uid, title, templating; unique panel ids; gridPos on each; every query panel uses the ${datasource} variable."""
    dash = load_dashboard()
    assert dash.get("uid") and dash.get("title"), "a dashboard needs a uid and a title"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dash["uid"]), dash["uid"]
    assert isinstance(dash.get("schemaVersion"), int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, var in variables.items():
        if var["type"] == "query":
            assert var.get("datasource") == DATASOURCE_REF, f"variable {name}: datasource must be {DATASOURCE_REF}"
    for note in dash.get("annotations", {}).get("list", []):
        if note.get("expr"):
            assert note.get("datasource") == DATASOURCE_REF, f"annotation {note.get('name')}"
    all_panels = panels(dash)
    ids: list[int] = [p["id"] for p in all_panels if isinstance(p.get("id"), int)]
    assert len(ids) == len(all_panels), "every panel needs an integer id"
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    for p in all_panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        assert p.get("title") and p.get("type"), where
        grid = p.get("gridPos") or {}
        assert all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")), f"{where}: gridPos {grid}"
        assert grid["w"] >= 1 and grid["x"] + grid["w"] <= 24, f"{where}: gridPos {grid} is wider than 24 columns"
        if p["type"] == "row":
            continue
        assert p.get("datasource") == DATASOURCE_REF, f"{where}: datasource {p.get('datasource')}"
        targets = p.get("targets") or []
        assert targets, f"{where}: no queries"
        ref_ids = [t.get("refId") for t in targets]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), f"{where}: refIds {ref_ids}"
        for t in targets:
            assert t.get("expr"), f"{where}: target {t.get('refId')} has no expr"
            assert t.get("datasource", DATASOURCE_REF) == DATASOURCE_REF, f"{where}: target datasource"
    titles = {p["title"] for p in all_panels}
    assert set(PARSES_ONLY) <= titles and set(AT_LEAST) <= titles, "PARSES_ONLY / AT_LEAST name a missing panel"


def test_substitute_fills_grafana_variables_and_refuses_unknown_ones() -> None:
    """$environment, ${environment}, $__rate_interval and $__range are filled; an unknown variable is an error."""
    out = substitute('rate(x{environment=~"$environment"}[$__rate_interval]) + increase(y[${__range}])', 93)
    assert out == f'rate(x{{environment=~".*"}}[{RATE_INTERVAL}]) + increase(y[93s])'
    with pytest.raises(AssertionError, match=r"\$tenant"):
        substitute('up{tenant=~"$tenant"}', 60)


# -- the scene: real daemons, real Prometheus ---------------------------------------------


@dataclass
class Scene:
    cluster: ClusterInfo
    prometheus: services.Prometheus
    daemon: DaemonProcess
    adapter: RunningAdapter
    environment_key: str
    started: float
    poke: Callable[[], None]  # one more webhook and round of adapter requests


def _kubectl_ok(cluster: ClusterInfo, *args: str, input: str | None = None) -> str:
    out = kubectl(cluster, *args, input=input)
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return str(out.stdout)


def _scrape_token(cluster: ClusterInfo, namespace: str, name: str, path: Path) -> Path:
    """A token of a ServiceAccount allowed ``get /metrics`` and nothing else, as Prometheus's would be."""
    rbac: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prometheus", "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}]},
    ]  # fmt: skip
    apply_objects(cluster, *rbac)
    token = _kubectl_ok(cluster, "create", "token", "prometheus", "-n", namespace, "--duration=1h").strip()
    path.write_text(token)
    return path


def _wait_scraped(prom: services.Prometheus, promql: str, what: str, timeout: float = 60) -> None:
    wait_for(f"Prometheus to have {what} ({promql})", lambda: prom.query(promql), timeout=timeout)


CUSTOM = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/web-0/inflight"
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/dash_queue_messages"
DEAD = "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/dash_dead_backlog"


def _drive_adapter(adapter: RunningAdapter, namespace: str) -> None:
    """Custom and external metric requests (answered, then from memory), and one for a queue whose Redis is down."""
    custom, external = CUSTOM.format(ns=namespace), EXTERNAL.format(ns=namespace)
    for path in (custom, external):
        wait_for(f"adapter GET {path} = 200", lambda p=path: adapter.get(p)[0] == 200, timeout=60)  # type: ignore[misc]
    for _ in range(3):
        assert adapter.get(custom)[0] == 200
        assert adapter.get(external)[0] == 200
    status, body = adapter.get(DEAD.format(ns=namespace))
    assert status == 503, (status, body)


@pytest.fixture(scope="module")
def scene(
    cluster_ipv4: ClusterInfo, prometheus: services.Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    """gitopsd and metrics-adapter scraped by Prometheus, after every kind of activity the dashboard shows."""
    started = time.monotonic()
    cluster = cluster_ipv4
    tmp = tmp_path_factory.mktemp("dashboard")
    suffix = secrets.token_hex(3)
    ops, app, role = f"dash-{suffix}", f"dash-app-{suffix}", f"e2e-dashboard-scrape-{suffix}"
    _kubectl_ok(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    _kubectl_ok(cluster, "wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=60s")
    for ns in (ops, app):
        _kubectl_ok(cluster, "create", "namespace", ns)
    hook_secret, notify_secret = secrets.token_hex(16).encode(), secrets.token_hex(16).encode()
    apply_objects(
        cluster, secret("hooks", ops, {"generic": hook_secret}), secret("audit", ops, {"secret": notify_secret})
    )
    receiver = Receiver()
    exporter = Exporter().start()
    cleanup: list[Any] = [receiver.stop, exporter.stop]
    daemon: DaemonProcess | None = None
    adapter: RunningAdapter | None = None
    try:
        repo = WorkRepo.create(tmp / "shop.git", tmp / "work")
        good = repo.commit({"deploy/app.yaml": APP.format(release="1", never="")})
        config = tmp / "gitopsd.yaml"
        config.write_text(json.dumps({
            "apiVersion": "gitopsd.dev/v1alpha1", "kind": "DaemonConfig", "secretNamespace": ops,
            "webhooks": {"generic": {"secretRef": {"name": "hooks", "key": "generic"}}},
            "notifiers": [{"name": "audit", "type": "webhook", "url": receiver.url("/audit"),
                           "secretRef": {"name": "audit"}}],
        }))  # fmt: skip
        hook_port = procs.free_port("127.0.0.1")
        daemon = DaemonProcess(
            cluster.kubeconfig, tmp / "daemon", f"--namespace={ops}", f"--config={config}",
            f"--webhook-bind-address=127.0.0.1:{hook_port}", name="gitopsd-dashboard",
        ).start()  # fmt: skip
        prometheus.add_target(f"gitopsd-dashboard-{suffix}", f"127.0.0.1:{daemon.port}")

        # The adapter starts while gitopsd deploys: series in the exporter, one queue on a dead port.
        exporter.set("e2e_dash_inflight", {"namespace": app, "pod": "web-0"}, 3)
        exporter.set("e2e_dash_queue_messages", {"namespace": app, "queue": "jobs"}, 7)
        prometheus.add_target(f"dashboard-exporter-{suffix}", exporter.address)
        adapter_config = ADAPTER_CONFIG.replace("DEAD_PORT", str(procs.free_port("127.0.0.1")))
        adapter = start_adapter(cluster, tmp / "adapter", adapter_config, prometheus_url=prometheus.url,
                                extra_args=ADAPTER_ARGS)  # fmt: skip
        token = _scrape_token(cluster, ops, role, tmp / "scrape-token")
        adapter_job = f"metrics-adapter-{suffix}"
        prometheus.add_tls_job(adapter_job, f"localhost:{adapter.port}", ca_file=cluster.ca_cert, token_file=token)
        cleanup.append(lambda: prometheus.remove_job(adapter_job))

        env = environment("web", ops, repo.file_url, target=app, interval="2s", branch="main",
                          wait={"timeout": "6s"}, rollback={"auto": True}, notify=[{"notifier": "audit"}])  # fmt: skip
        # An Environment whose path is not in the repository: its reconciles fail.
        broken = environment("broken", ops, repo.file_url, target=app, path="missing", interval="2s", branch="main")
        apply_objects(cluster, env, broken)
        wait_ready(cluster, ops, "web", revision=f"main@sha1:{good}")

        # A release whose pods never turn Ready: rolled back to release 1, its revision held.
        bad = repo.commit({"deploy/app.yaml": APP.format(release="2", never=NEVER_READY)})

        def held() -> bool:
            st = env_object(cluster, ops, "web").get("status") or {}
            ready = condition({"status": st}, "Ready").get("status") == "True"
            return ready and (st.get("held") or {}).get("revision") == f"main@sha1:{bad}"

        wait_for("the bad release rolled back and held", held, timeout=90)

        # A third Environment follows branch `poke`, where every poke pushes a change: the mirror
        # fetches each time, so the fetch-duration rate has samples inside its 1m window however
        # long the scene took to settle (a held `main` is only ls-remote'd, never fetched again).
        # It deploys through a kubeconfig Secret pointing back at this cluster: a remote target to
        # gitopsd, so the per-cluster metrics (gitopsd_cluster_*) have series, moved by every poke.
        repo.branch("poke")
        repo.commit({"poke/marker.yaml": POKE.format(n=0)})
        itself = multicluster.kubeconfig(cluster.api_url, cluster.ca_cert.read_bytes(), multicluster.own_admin(cluster))
        apply_objects(cluster, multicluster.kubeconfig_secret("itself", ops, itself))
        apply_objects(cluster, environment("poked", ops, repo.file_url, target=app, path="poke",
                                           interval="1h", branch="poke",
                                           kubeConfig={"secretRef": {"name": "itself"}}))  # fmt: skip
        wait_ready(cluster, ops, "poked")
        running, pokes = adapter, iter(range(1, 10_000))

        def poke() -> None:
            """Signed generic webhooks for both branches (main stays held; `poke` fetches), adapter requests."""
            after = repo.commit({"poke/marker.yaml": POKE.format(n=next(pokes))})
            for ref, sha in (("refs/heads/main", bad), ("refs/heads/poke", after)):
                body = encode({"repository": repo.file_url, "ref": ref, "after": sha})
                status, answer = post(f"http://127.0.0.1:{hook_port}/hooks/generic", body,
                                      signed_headers("generic", hook_secret, body))  # fmt: skip
                assert (status, answer.get("result")) == (202, "triggered"), answer
            _drive_adapter(running, app)

        poke()
        wait_for("a notification delivered", lambda: receiver.at("/audit"), timeout=30)

        _wait_scraped(prometheus, 'gitopsd_rollbacks_total{reason="HealthCheckFailed"}', "the rollback")
        _wait_scraped(prometheus, 'gitopsd_reconcile_total{result="failed"}', "a failed reconcile")
        _wait_scraped(prometheus, "gitopsd_webhook_requests_total", "the webhook request")
        _wait_scraped(prometheus, "gitopsd_notifications_total", "the notification")
        _wait_scraped(
            prometheus, 'metrics_adapter_request_duration_seconds_count{route="external"}', "adapter requests"
        )
        _wait_scraped(prometheus, "metrics_adapter_upstream_errors_total", "the upstream error")
        _wait_scraped(prometheus, f'gitopsd_cluster_reachable{{cluster="{ops}/itself"}}', "the remote target")
        yield Scene(cluster, prometheus, daemon, adapter, f"{ops}.web", started, poke)
    finally:
        if daemon is not None:
            code = daemon.stop()
            assert code == 0, f"gitopsd exited {code}:\n{daemon.log_text()[-3000:]}"
        if adapter is not None:
            adapter.stop()
        for fn in reversed(cleanup):
            fn()
        kubectl(cluster, "delete", "clusterrolebinding,clusterrole", role, "--ignore-not-found")
        for ns in (ops, app):
            kubectl(cluster, "delete", "namespace", ns, "--wait=false")


# -- queries through Prometheus's HTTP API ------------------------------------------------


def _api(prom: services.Prometheus, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    """GET an API path; returns the decoded body whether the status is success or error."""
    url = f"{prom.url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback URL
            body: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    return body


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _check_query(prom: services.Prometheus, title: str, expr: str, legend: str, data: bool) -> str | None:
    """None when ``expr`` runs and (``data``) returns a number whose labels the legend names; else what is wrong."""
    body = _api(prom, "/api/v1/query", [("query", expr)])
    if body.get("status") != "success":
        return f"{title!r}: {expr}\n    does not run: {body.get('errorType')}: {body.get('error')}"
    result = body["data"]["result"]
    if not data:
        return None
    if not any(not math.isnan(_value(s)) for s in result):
        return f"{title!r}: {expr}\n    returned no samples" + (" but NaN" if result else "")
    missing = {name for name in legend_labels(legend) for series in result if name not in series["metric"]}
    if missing:
        return f"{title!r}: {expr}\n    legend {legend!r} names labels the result lacks: {sorted(missing)}"
    least = AT_LEAST.get(title)
    if least is not None:
        total = sum(_value(s) for s in result if not math.isnan(_value(s)))
        if total < least:
            return f"{title!r}: {expr}\n    shows {total:g}, the scene makes it at least {least:g}"
    return None


def _panel_problems(scene: Scene) -> list[str]:
    range_s = math.ceil(time.monotonic() - scene.started) + 1
    problems = []
    for panel in panels(load_dashboard()):
        for target in panel.get("targets") or []:
            expr = substitute(target["expr"], range_s)
            data = panel["title"] not in PARSES_ONLY
            problem = _check_query(scene.prometheus, panel["title"], expr, target.get("legendFormat", ""), data)
            if problem:
                problems.append(problem)
    return problems


@pytest.mark.cluster
@pytest.mark.services
def test_every_panel_query_runs_and_returns_data(scene: Scene) -> None:
    """Each panel target, variables filled, runs on the real Prometheus and returns samples (legend labels present)."""
    problems: list[str] = []

    def settled() -> bool:
        problems[:] = _panel_problems(scene)
        return not problems

    # A rate needs a counter to move between two scrapes inside its window: keep the hooks and
    # adapter requests coming, a few scrape intervals apart, until every panel shows data (bounded).
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        scene.poke()
        time.sleep(3)
        if settled():
            break
    assert not problems, "dashboard panels failing:\n  " + "\n  ".join(problems)


@pytest.mark.cluster
@pytest.mark.services
def test_template_variables_and_annotations_run(scene: Scene) -> None:
    """label_values() variables list this test's Environment; the rollback annotation query runs."""
    dash = load_dashboard()
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*", query)
        assert match, f"variable {var['name']}: unsupported query {query!r} (only label_values() is checked)"
        selector, label = match.groups()
        params = [("match[]", selector)] if selector else []
        body = _api(scene.prometheus, f"/api/v1/label/{label}/values", params)
        assert body.get("status") == "success", f"variable {var['name']}: {query!r}: {body}"
        if var["name"] == "environment":
            assert scene.environment_key in body["data"], (scene.environment_key, body["data"])
        else:
            assert body["data"], f"variable {var['name']}: {query!r} has no values"
    range_s = math.ceil(time.monotonic() - scene.started) + 1
    for note in dash.get("annotations", {}).get("list", []):
        if note.get("expr"):
            problem = _check_query(scene.prometheus, f"annotation {note['name']}", substitute(note["expr"], range_s),
                                   "", data=False)  # fmt: skip
            assert problem is None, problem
