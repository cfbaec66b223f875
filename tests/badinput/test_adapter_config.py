"""prometheus-adapter's edges against the real program: its config shapes, its flags, missing and NaN data.

Config and flag cases stop before any cluster or Prometheus is contacted (exit code and the
exact stderr). The data cases run one adapter against a real Prometheus scraping an exporter:
each answer's status and exact message.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import procs, services
from e2e.adapter import RunningAdapter, adapter_binary, start_adapter
from e2e.cluster import ClusterInfo
from e2e.exporter import Exporter
from metrics_adapter.catalog import NO_NAMESPACE_LABEL, Catalog
from metrics_adapter.errors import redact_url
from metrics_adapter.kube import mapper as kmapper
from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.rules import config as rules_config
from tests.metrics_adapter.rawhttp import send

SHAPE = Path(__file__).parent / "data" / "prometheus_adapter_shape.yaml"
EXT = "/apis/external.metrics.k8s.io/v1beta1"
CM = "/apis/custom.metrics.k8s.io/v1beta1"
IGNORED_LINE = "warning: ignoring prometheus-adapter flags that change nothing here: "
# prometheus-adapter's deploy/manifests/deployment.yaml, verbatim apart from the paths.
PA_CIPHERS = (
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,"
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,"
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_256_CBC_SHA"
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [adapter_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-default-kubeconfig")},
    )


# -- the config shapes ------------------------------------------------------------------------


def test_prometheus_adapter_sample_shape_loads() -> None:
    """Its docs' sample layout loads: an externalRule with no namespace mapping is served (and warned about)."""
    config = rules_config.load(SHAPE)
    assert (len(config.rules), len(config.external_rules)) == (4, 2)
    assert [r.resources.namespaced for r in config.external_rules] == [True, False]
    catalog = Catalog(config, None, kmapper.builtin(), AdapterMetrics())
    unknown = "give --kubeconfig to check it against the cluster"
    assert catalog.validate(unknown_resource=unknown) == [
        f"rules[3].resources.overrides.widget: no resource 'widget' in group 'gadgets.example.com' "
        f"in the cluster (built-in resource table, no cluster): {unknown}",
        f"externalRules[0]: {NO_NAMESPACE_LABEL}",
    ]


def test_check_without_a_cluster_warns_instead_of_failing(tmp_path: Path) -> None:
    """`check` without --kubeconfig: a CRD override and no namespace label are warnings; only Prometheus fails."""
    url = f"http://127.0.0.1:{procs.free_port()}"
    out = run(tmp_path, "check", f"--config={SHAPE}", f"--prometheus-url={url}")
    lines = out.stdout.splitlines()
    assert out.returncode == 1, out.stderr
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith(f"FAIL prometheus {url}: unreachable: "), fails
    assert "externalRules[0]: not checked (Prometheus unreachable)" in lines
    assert f"warning: externalRules[0]: {NO_NAMESPACE_LABEL}" in lines
    assert (
        "warning: rules[3].resources.overrides.widget: no resource 'widget' in group 'gadgets.example.com' in the "
        "cluster (built-in resource table, no cluster): give --kubeconfig to check it against the cluster"
    ) in lines
    assert lines[-1] == "check failed: 1 problem(s)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "externalRules:\n- seriesQuery: up\n  name: {as: backlog}\n  resources: {namespaced: false}\n"
            "  metricsQuery: up\nqueues:\n- name: backlog\n  redis: {url: 'redis://127.0.0.1:1', list: jobs}\n",
            "queues[0] and externalRules[0] both serve the external metric 'backlog'; rename one",
        ),
        (
            "externalRules:\n- seriesQuery: up\n  resources: {namespaced: 'no'}\n  metricsQuery: up\n",
            "externalRules[0].resources.namespaced must be true or false",
        ),
        (
            "externalRules:\n- seriesQuery: up\n  resources: {namespaced: false, scope: cluster}\n  metricsQuery: up\n",
            "externalRules[0].resources: unknown field 'scope' (known: namespaced, overrides, template)",
        ),
    ],
    ids=["queue-and-rule-same-name", "namespaced-not-bool", "unknown-resources-field"],
)
@pytest.mark.parametrize("mode", ["check", "serve"])
def test_bad_external_rules_are_refused(tmp_path: Path, mode: str, text: str, message: str) -> None:
    """Refused at start with exit 2 and one line naming the file, entries and field."""
    (tmp_path / "a.yaml").write_text(text)
    args = (
        ["check", "--prometheus-url=http://127.0.0.1:1"] if mode == "check" else ["--prometheus-url=http://127.0.0.1:1"]
    )
    out = run(tmp_path, *args, "--config=a.yaml")
    assert (out.returncode, out.stderr) == (2, f"error: config file a.yaml: {message}\n")


# -- prometheus-adapter's flags ---------------------------------------------------------------

MISSING = "error: config file missing.yaml: cannot read it: No such file or directory\n"


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ["--audit-log-path=/var/log/audit.log", "--audit-log-maxage", "7", "--logtostderr=true", "--disable-http2"],
            f"{IGNORED_LINE}--audit-log-path, --audit-log-maxage, --logtostderr, --disable-http2\n{MISSING}",
        ),
        (
            ["--prometheus-auth-config=/etc/auth.yaml"],
            "error: --prometheus-auth-config is not supported by metrics-adapter: "
            "use --prometheus-token-file / --prometheus-ca-file / --prometheus-client-tls-*\n",
        ),
        (["--prometheus-auth-incluster"], "error: --prometheus-auth-incluster is not supported by metrics-adapter: "
         "use --prometheus-token-file with the service account token path\n"),
        (["--audit-log-pathx=1"], "error: unrecognized arguments: --audit-log-pathx=1 (see '{prog} --help')\n"),
        (["--prometheus-u=x"], "error: unrecognized arguments: --prometheus-u=x (see '{prog} --help')\n"),
    ],
    ids=["ignored-one-line", "refused-auth-config", "refused-incluster", "unknown", "abbreviated"],
)  # fmt: skip
@pytest.mark.parametrize("mode", ["check", "serve"])
def test_prometheus_adapter_flags(tmp_path: Path, mode: str, args: list[str], stderr: str) -> None:
    """Ignored ones in one warning line, refused ones by name, unknown ones in one line: the same in check and serve."""
    prog = "metrics-adapter check" if mode == "check" else "metrics-adapter"
    out = run(tmp_path, *(["check"] if mode == "check" else []), "--config=missing.yaml", *args)
    assert (out.returncode, out.stderr) == (2, stderr.format(prog=prog))


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ["--cert-dir=serving", "--metrics-relist-interval=1m", "--prometheus-url=https://prometheus.monitoring.svc:9090/",
             "--secure-port=6443", f"--tls-cipher-suites={PA_CIPHERS}"],
            MISSING,
        ),
        (["--tls-cipher-suites=TLS_FOO_WITH_BAR"],
         "error: --tls-cipher-suites: unknown cipher suite 'TLS_FOO_WITH_BAR' (give IANA names, as Go does)\n"),
        (["--tls-min-version=VersionTLS99"],
         "error: --tls-min-version 'VersionTLS99': use one of "
         "VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13\n"),
        (["--tls-min-version=VersionTLS10", "--v=2"],
         f"{IGNORED_LINE}--tls-min-version=VersionTLS10 (TLS 1.2 is the floor here)\n{MISSING}"),
    ],
    ids=["deployment-args", "unknown-suite", "unknown-version", "tls10-raised"],
)  # fmt: skip
def test_serving_tls_flags(tmp_path: Path, args: list[str], stderr: str) -> None:
    """prometheus-adapter's deployment args pass; TLS flag values are checked, one line each."""
    out = run(tmp_path, "--config=missing.yaml", *args)
    assert (out.returncode, out.stderr) == (2, stderr)


# -- missing and NaN data, against the real program --------------------------------------------

CONFIG = """
rules:
- seriesQuery: '{__name__="bi_pod_load",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: bi_load}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="bi_ext_nolabel"}'
  name: {as: ext_nolabel}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: '{__name__="bi_ext_depth",queue!=""}'
  name: {as: ext_depth}
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
queues:
- name: q_down
  redis: {url: "redis://127.0.0.1:1", list: jobs}
"""
SUITES = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"


@pytest.fixture(scope="module")
def data_adapter(cluster_ipv4: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAdapter]:
    """One adapter reading a real Prometheus that scrapes series with values, NaN, and none."""
    prom = services.start_prometheus(cluster_ipv4.ip_family)
    exporter = Exporter(cluster_ipv4.host).start()
    try:
        exporter.set("bi_pod_load", {"namespace": "bi", "pod": "a"}, 3.0)
        exporter.set("bi_pod_load", {"namespace": "bi", "pod": "nan"}, float("nan"))
        exporter.set("bi_ext_nolabel", {"pool": "p"}, 1.0)
        exporter.set("bi_ext_depth", {"namespace": "other", "queue": "q1"}, 7.0)
        exporter.set("bi_ext_depth", {"namespace": "other", "queue": "qnan"}, float("nan"))
        prom.add_target("bi-exporter", exporter.address)
        PROM_URL.append(prom.url)
        adapter = start_adapter(
            cluster_ipv4,
            tmp_path_factory.mktemp("badinput-data"),
            CONFIG,
            prometheus_url=prom.url,
            extra_args=["--metrics-relist-interval=2s", "--refresh-interval=1s", f"--tls-cipher-suites={SUITES}"],
        )
        try:
            procs.wait_until(
                "series discovered",
                lambda: send(adapter, "GET", f"{CM}/namespaces/bi/pods/a/bi_load")[0] == 200,
                timeout=60,
                interval=0.5,
            )
            yield adapter
        finally:
            adapter.stop()
    finally:
        exporter.stop()
        prom.stop()


PROM_URL: list[str] = []  # the module's Prometheus, for messages that name it


def _prom(adapter: RunningAdapter) -> str:
    return f"prometheus {redact_url(PROM_URL[-1])}"


DATA_CASES: dict[str, tuple[str, int, Any]] = {
    "custom: no series for the object": (
        f"{CM}/namespaces/bi/pods/zzz/bi_load", 404, "the server could not find the metric bi_load for pods zzz"
    ),
    "custom: NaN for the object": (
        f"{CM}/namespaces/bi/pods/nan/bi_load",
        503,
        lambda a: f"{_prom(a)}: the metric bi_load for pods nan is nan (NaN and infinite values are not served)",
    ),
    "external: no namespace label (as prometheus-adapter, a 500)": (
        f"{EXT}/namespaces/default/ext_nolabel",
        500,
        f"the external metric ext_nolabel comes from externalRules[0]: {NO_NAMESPACE_LABEL}",
    ),
    "external: NaN": (
        f"{EXT}/namespaces/default/ext_depth?labelSelector=queue%3Dqnan",
        503,
        lambda a: f"{_prom(a)}: the external metric ext_depth is nan for "
        "{'queue': 'qnan'} (NaN and infinite values are not served)",
    ),
    "external: no series": (
        f"{EXT}/namespaces/default/ext_depth?labelSelector=queue%3Dnone",
        404,
        "the server could not find the external metric ext_depth in namespace default: "
        "Prometheus has no series for its query",
    ),
    "queue: the broker cannot be read": (
        f"{EXT}/namespaces/default/q_down",
        503,
        "redis redis://127.0.0.1:1/0 list 'jobs': no value yet: cannot connect: Connection refused",
    ),
}  # fmt: skip


@pytest.mark.cluster
@pytest.mark.services
@pytest.mark.parametrize("name", list(DATA_CASES))
def test_missing_or_nan_data_is_an_error(data_adapter: RunningAdapter, name: str) -> None:
    """Never 0 and never an empty list: the exact status and message."""
    path, status, message = DATA_CASES[name]
    got, body = send(data_adapter, "GET", path)
    text = message(data_adapter) if callable(message) else message
    assert (got, body["kind"], body["code"], body["message"]) == (status, "Status", status, text)


@pytest.mark.cluster
@pytest.mark.services
def test_namespaced_false_serves_another_namespace_and_the_value_when_present(data_adapter: RunningAdapter) -> None:
    """namespaced: false: no namespace matcher, so the HPA's namespace reads series of another; values are real."""
    status, body = send(data_adapter, "GET", f"{EXT}/namespaces/default/ext_depth?labelSelector=queue%3Dq1")
    assert status == 200, body
    assert [(i["metricLabels"], i["value"]) for i in body["items"]] == [({"queue": "q1"}, "7")]
    status, body = send(data_adapter, "GET", f"{CM}/namespaces/bi/pods/a/bi_load")
    assert (status, [i["value"] for i in body["items"]]) == (200, ["3"])


@pytest.mark.cluster
@pytest.mark.services
def test_tls_cipher_suites_are_applied(data_adapter: RunningAdapter) -> None:
    """--tls-cipher-suites limits TLS 1.2: an allowed suite is negotiated, a client offering only others is refused."""

    def handshake(ciphers: str) -> str:
        ctx = ssl.create_default_context(cafile=str(data_adapter.cluster.ca_cert))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
        with (
            socket.create_connection(("localhost", data_adapter.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            cipher = tls.cipher()
            assert cipher is not None
            return cipher[0]

    assert handshake("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256") in {
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    }
    with pytest.raises(ssl.SSLError):
        handshake("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
