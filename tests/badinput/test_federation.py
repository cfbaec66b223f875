"""Bad external providers and bad ``externalProviders`` config, against the real program.

One front adapter lists one provider per failure: down (nothing listening), black-holed (a
listener that never accepts: connected, never answered), garbage, 401, 403, another metric's
name, another kind, 404, and a provider whose breaker opens after two failures. The misbehaving
providers are one in-process HTTPS server that answers by path prefix. Each request must get
its exact status and message naming the provider, and the adapter's own queue keeps answering.
Config errors exit 2 with one line naming the file, entry and field.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from e2e import procs, services
from e2e.adapter import RunningAdapter, adapter_binary, start_adapter
from e2e.aggregation import serving_cert
from e2e.cluster import ClusterInfo
from e2e.tcpproxy import TcpProxy
from metrics_adapter.errors import ConfigError
from metrics_adapter.rules.config import parse

pytestmark = [pytest.mark.cluster, pytest.mark.services]

EXT = "/apis/external.metrics.k8s.io/v1beta1"
TOKEN = "s3cret-forwarder-token"


def _status(code: int, message: str) -> bytes:
    return json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    ).encode()


# prefix -> (status, content type, body) for metric requests; discovery answers an empty list.
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "garbage": (200, "text/html", b"<html>oops</html>"),
    "unauth": (401, "application/json", _status(401, "Unauthorized")),
    "forbidden": (403, "application/json", _status(403, 'forbidden: User "x" cannot get resource')),
    "renamed": (
        200,
        "application/json",
        json.dumps(
            {
                "kind": "ExternalMetricValueList",
                "apiVersion": "external.metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": [{"metricName": "something_else", "metricLabels": {}, "timestamp": "T", "value": "1"}],
            }
        ).encode(),
    ),
    "wrongkind": (200, "application/json", _status(200, "fine")),
    "missing": (404, "application/json", _status(404, "no such metric")),
}


@dataclass
class FakeProviders:
    """An HTTPS server that misbehaves by path prefix; remembers the Authorization headers it saw."""

    server: ThreadingHTTPServer
    seen_auth: set[str] = field(default_factory=set)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


def _fake(cert: Path, key: Path) -> FakeProviders:
    fake: FakeProviders

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.seen_auth.add(self.headers.get("Authorization", ""))
            prefix, _, rest = self.path.lstrip("/").partition("/")
            if "/namespaces/" not in rest:
                body = json.dumps({"kind": "APIResourceList", "groupVersion": "x", "resources": []}).encode()
                status, ctype = 200, "application/json"
            elif prefix == "good":  # a correct answer for whatever metric is asked
                metric = rest.rsplit("/", 1)[-1]
                item = {"metricName": metric, "metricLabels": {}, "timestamp": "2026-01-01T00:00:00Z", "value": "4"}
                body = json.dumps({"kind": "ExternalMetricValueList", "items": [item]}).encode()
                status, ctype = 200, "application/json"
            else:
                status, ctype, body = ANSWERS[prefix]
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    fake = FakeProviders(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake


def _blackhole() -> socket.socket:
    """A listener that never accepts: the kernel completes the handshake, nothing ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@dataclass
class Front:
    adapter: RunningAdapter
    fake: FakeProviders
    down_port: int
    hole_port: int
    redis: redis.Redis
    own_list: str
    proxy: TcpProxy


@pytest.fixture(scope="module")
def front(
    cluster_ipv4: ClusterInfo, redis_server: services.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    directory = tmp_path_factory.mktemp("federation-bad")
    cert = serving_cert(cluster_ipv4, directory / "fake", "fake-provider", "default")
    fake = _fake(cert.cert, cert.key)
    hole = _blackhole()
    down_port = procs.free_port("127.0.0.1")
    proxy = TcpProxy("127.0.0.1", fake.port)  # starts down: "recovering" refuses until the test brings it up
    (directory / "token").write_text(TOKEN + "\n")
    own_list = f"fed-bad-{uuid.uuid4().hex[:8]}"
    ca, token = cluster_ipv4.ca_cert, directory / "token"
    lines = [
        "queues:",
        f"- {{name: own_backlog, redis: {{url: '{redis_server.url}', list: '{own_list}'}}}}",
        "externalProviders:",
    ]
    for prefix in ANSWERS:
        lines.append(
            f"- {{name: {prefix}, url: 'https://localhost:{fake.port}/{prefix}', caFile: '{ca}', "
            f"tokenFile: '{token}', metrics: [m_{prefix}], failureThreshold: 100}}"
        )
    lines += [
        f"- {{name: down, url: 'https://127.0.0.1:{down_port}', caFile: '{ca}', metrics: [m_down], "
        "failureThreshold: 100}",
        f"- {{name: slow, url: 'https://127.0.0.1:{hole.getsockname()[1]}', caFile: '{ca}', metrics: [m_slow], "
        "timeout: 1s, failureThreshold: 100}",
        f"- {{name: flaky, url: 'https://127.0.0.1:{down_port}', caFile: '{ca}', metrics: [m_flaky], "
        "failureThreshold: 2}",
        f"- {{name: recovering, url: 'https://127.0.0.1:{proxy.port}/good', caFile: '{ca}', "
        "metrics: [m_recovering], failureThreshold: 2}",
    ]
    adapter = start_adapter(cluster_ipv4, directory / "front", "\n".join(lines) + "\n", prometheus_url=None)
    try:
        yield Front(
            adapter, fake, down_port, hole.getsockname()[1], redis.Redis.from_url(redis_server.url), own_list, proxy
        )
    finally:
        adapter.stop()
        proxy.down()
        fake.server.shutdown()
        hole.close()


def _expected(front: Front) -> dict[str, tuple[int, str]]:
    return {
        "garbage": (503, "external provider garbage: answered something that is not JSON: '<html>oops</html>'"),
        "unauth": (503, "external provider unauth: refused the adapter's credentials (HTTP 401: Unauthorized)"),
        "forbidden": (
            503,
            "external provider forbidden: refused the adapter's credentials "
            '(HTTP 403: forbidden: User "x" cannot get resource)',
        ),
        "renamed": (503, "external provider renamed: answered metric 'something_else' when asked for 'm_renamed'"),
        "wrongkind": (503, "external provider wrongkind: answered a Status instead of an ExternalMetricValueList"),
        "missing": (404, "external provider missing: does not have it (HTTP 404: no such metric)"),
        "down": (503, f"external provider down: cannot connect to 127.0.0.1:{front.down_port}: Connection refused"),
        "slow": (503, "external provider slow: no answer within 1s (timeout)"),
    }


@pytest.mark.parametrize(
    "provider", ["garbage", "unauth", "forbidden", "renamed", "wrongkind", "missing", "down", "slow"]
)
def test_bad_provider_answer(front: Front, provider: str) -> None:
    """Each misbehaving provider gives its exact status and message, naming it; nothing of its answer is served."""
    status, body = front.adapter.get(f"{EXT}/namespaces/default/m_{provider}")
    want_status, want_message = _expected(front)[provider]
    assert (status, body["message"]) == (want_status, want_message), body
    assert body["kind"] == "Status"


def test_the_bearer_token_is_sent_upstream(front: Front) -> None:
    """The provider receives the token from tokenFile, not the caller's credentials."""
    front.adapter.get(f"{EXT}/namespaces/default/m_garbage")
    assert front.fake.seen_auth == {f"Bearer {TOKEN}"}


def test_a_slow_provider_does_not_hold_other_names(front: Front) -> None:
    """While a request to the black-holed provider waits, the adapter's own metric is answered."""
    front.redis.delete(front.own_list)
    front.redis.rpush(front.own_list, "a", "b")
    result: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: result.update(slow=front.adapter.get(f"{EXT}/namespaces/default/m_slow")), daemon=True
    )
    waiting.start()
    status, body = front.adapter.get(f"{EXT}/namespaces/default/own_backlog")
    slow_pending = waiting.is_alive()
    waiting.join(30)
    assert status == 200 and body["items"][0]["value"] == "2", body
    assert slow_pending, "the own metric was answered only after the slow provider's timeout"
    assert result["slow"][0] == 503


def test_breaker_opens_and_refuses_at_once(front: Front) -> None:
    """After failureThreshold consecutive failures the provider is not called: 503 naming it."""
    messages = []
    for _ in range(4):
        status, body = front.adapter.get(f"{EXT}/namespaces/default/m_flaky")
        assert status == 503
        messages.append(body["message"])
        if "circuit open" in body["message"]:
            break
    last = messages[-1]
    assert re.fullmatch(
        rf"external provider flaky: not asked for [0-9.]+s more after [0-9]+ consecutive failures \(circuit open\); "
        rf"last error: cannot connect to 127\.0\.0\.1:{front.down_port}: Connection refused",
        last,
    ), messages
    _, text = front.adapter.get("/metrics")
    assert 'metrics_adapter_federation_circuit_state{provider="flaky"} 1.0' in text
    assert re.search(r'metrics_adapter_federation_errors_total\{kind="circuit_open",provider="flaky"\} [1-9]', text)
    # The other providers' breakers are untouched.
    assert 'metrics_adapter_federation_circuit_state{provider="garbage"} 0.0' in text


def test_breaker_lets_one_probe_through_and_closes_when_the_provider_is_back(front: Front) -> None:
    """Open while the provider is down; once it is back a probe after the cooldown succeeds and closes it."""
    path = f"{EXT}/namespaces/default/m_recovering"
    for _ in range(4):
        status, body = front.adapter.get(path)
        assert status == 503, body
        if "circuit open" in body["message"]:
            break
    assert "circuit open" in body["message"], body
    front.proxy.up()

    def served() -> dict[str, Any] | None:
        status, body = front.adapter.get(path)
        return body if status == 200 else None

    body = procs.wait_until("m_recovering served again", served, timeout=60, interval=0.5)
    assert [(i["metricName"], i["value"]) for i in body["items"]] == [("m_recovering", "4")]
    _, text = front.adapter.get("/metrics")
    assert 'metrics_adapter_federation_circuit_state{provider="recovering"} 0.0' in text


# -- config ------------------------------------------------------------------------------------

BASE = "queues:\n- {name: jobs_backlog, redis: {url: 'redis://127.0.0.1:1', list: x}}\nexternalProviders:\n"
CONFIG_CASES: dict[str, tuple[str, str]] = {
    "not a list": ("  name: keda", "'externalProviders' must be a list, got a mapping"),
    "no name": ("- {url: 'https://keda:443'}", "externalProviders[0]: name: is required"),
    "bad name": (
        "- {name: KEDA, url: 'https://keda'}",
        "externalProviders[0]: name: 'KEDA' must be a DNS label (lower-case alphanumerics and '-', at most 63)",
    ),
    "unknown field": (
        "- {name: keda, url: 'https://keda', tokenfile: /t}",
        "externalProviders[0] (keda): tokenfile: unknown field (did you mean 'tokenFile'?)",
    ),
    "no url": ("- {name: keda}", "externalProviders[0] (keda): url: is required"),
    "http url": (
        "- {name: keda, url: 'http://keda:80'}",
        "externalProviders[0] (keda): url: scheme must be https://; got 'http'",
    ),
    "url with credentials": (
        "- {name: keda, url: 'https://u:p@keda'}",
        "externalProviders[0] (keda): url: must not carry credentials; use tokenFile or clientCert/clientKey",
    ),
    "caFile and insecure": (
        "- {name: keda, url: 'https://keda', caFile: /ca, insecureSkipTLSVerify: true}",
        "externalProviders[0] (keda): insecureSkipTLSVerify: cannot be true together with caFile: "
        "verify with caFile, or do not verify",
    ),
    "insecure not a bool": (
        "- {name: keda, url: 'https://keda', insecureSkipTLSVerify: 'yes'}",
        "externalProviders[0] (keda): insecureSkipTLSVerify: must be true or false, got 'yes'",
    ),
    "cert without key": (
        "- {name: keda, url: 'https://keda', clientCert: /c}",
        "externalProviders[0] (keda): clientKey: clientCert and clientKey must be given together",
    ),
    "metrics empty": (
        "- {name: keda, url: 'https://keda', metrics: []}",
        "externalProviders[0] (keda): metrics: must be a non-empty list of metric names or globs "
        "(omit it to forward every name)",
    ),
    "metric with a slash": (
        "- {name: keda, url: 'https://keda', metrics: ['a/b']}",
        "externalProviders[0] (keda): metrics[0]: 'a/b' is not a metric name: no whitespace, '/' or control characters",
    ),
    "timeout too long": (
        "- {name: keda, url: 'https://keda', timeout: 2m}",
        "externalProviders[0] (keda): timeout: must be between 1ms and 60s, got '2m'",
    ),
    "maxConnections zero": (
        "- {name: keda, url: 'https://keda', maxConnections: 0}",
        "externalProviders[0] (keda): maxConnections: must be between 1 and 1024, got 0",
    ),
    "same name twice": (
        "- {name: keda, url: 'https://a', metrics: [a]}\n- {name: keda, url: 'https://b', metrics: [b]}",
        "externalProviders[1] (keda): name: 'keda' is also externalProviders[0] (keda)",
    ),
    "same metric in two providers": (
        "- {name: a, url: 'https://a', metrics: [x]}\n- {name: b, url: 'https://b', metrics: [x]}",
        "externalProviders[1] (b): metrics: 'x' is also listed by externalProviders[0] (a)",
    ),
    "two catch-all providers": (
        "- {name: a, url: 'https://a'}\n- {name: b, url: 'https://b'}",
        "externalProviders[1] (b): metrics: omitted here and in externalProviders[0] (a): only one provider can "
        "receive every name; list this one's metrics",
    ),
    "a queue name listed by a provider": (
        "- {name: keda, url: 'https://keda', metrics: ['s0-*', jobs_backlog]}",
        "external metric 'jobs_backlog' is served by queues[0] and also listed in externalProviders[0] (keda).metrics: "
        "remove one of them",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_provider_config(case: str) -> None:
    """Each bad field is refused with its exact message naming the file, entry and field."""
    text, message = CONFIG_CASES[case]
    with pytest.raises(ConfigError) as exc:
        parse(BASE + text, "adapter.yaml")
    assert str(exc.value) == f"config file adapter.yaml: {message}"


def test_an_external_rule_name_listed_by_a_provider_is_refused() -> None:
    """A fixed externalRules name (name.as) listed by a provider is refused naming both."""
    text = (
        "externalRules:\n- seriesQuery: 'backlog'\n  name: {as: jobs}\n  metricsQuery: 'sum(<<.Series>>)'\n"
        "externalProviders:\n- {name: keda, url: 'https://keda', metrics: [jobs]}\n"
    )
    with pytest.raises(ConfigError) as exc:
        parse(text, "adapter.yaml")
    assert str(exc.value) == (
        "config file adapter.yaml: external metric 'jobs' is served by externalRules[0] and also listed in "
        "externalProviders[0] (keda).metrics: remove one of them"
    )


def _run(cluster: ClusterInfo, directory: Path, config: str) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(config)
    cert = serving_cert(cluster, directory / "serving", "metrics-adapter", "kube-system")
    argv = [
        adapter_binary(),
        f"--config={directory / 'config.yaml'}",
        f"--secure-port={procs.free_port('127.0.0.1')}",
        "--bind-address=127.0.0.1",
        f"--tls-cert-file={cert.cert}",
        f"--tls-private-key-file={cert.key}",
        f"--kubeconfig={cluster.kubeconfig}",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("case", "provider", "message"),
    [
        (
            "clash",
            "{name: keda, url: 'https://keda', metrics: [jobs_backlog]}",
            "external metric 'jobs_backlog' is served by queues[0] and also listed in externalProviders[0] (keda)"
            ".metrics: remove one of them",
        ),
        (
            "caFile missing",
            "{name: keda, url: 'https://keda', caFile: /nonexistent/ca.crt}",
            "externalProviders[0] (keda): caFile: cannot use /nonexistent/ca.crt: No such file or directory",
        ),
        (
            "tokenFile missing",
            "{name: keda, url: 'https://keda', tokenFile: /nonexistent/token}",
            "externalProviders[0] (keda): tokenFile: cannot read /nonexistent/token: No such file or directory",
        ),
    ],
)
def test_the_program_refuses_a_bad_provider_at_start(
    cluster_ipv4: ClusterInfo, tmp_path: Path, case: str, provider: str, message: str
) -> None:
    """The real program exits 2 with one line naming the file and field; it never serves."""
    out = _run(cluster_ipv4, tmp_path, BASE + f"- {provider}\n")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"error: config file {tmp_path / 'config.yaml'}: {message}"
