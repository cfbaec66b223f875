"""The ``metrics-adapter`` command as a user runs it: ``check`` dry runs, start-up errors and their exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e import procs
from e2e.adapter import adapter_binary, start_adapter
from tests.metrics_adapter.conftest import Stack, stack_config

pytestmark = [pytest.mark.cluster, pytest.mark.services]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([adapter_binary(), *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_check_lists_what_would_be_served(stack_ipv4: Stack, tmp_path: Path) -> None:
    """`check` discovers series, runs one query per rule, reads each queue, and prints every metric (exit 0)."""
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text(stack_config(stack_ipv4.rabbitmq, stack_ipv4.redis))
    stack_ipv4.exporter.set("e2e_inflight_requests", {"namespace": "cli", "pod": "p"}, 1)
    stack_ipv4.exporter.set("e2e_node_load", {"node": "n"}, 1)
    procs.wait_until("series scraped", lambda: stack_ipv4.prometheus.query("e2e_node_load"), timeout=30)
    out = run(
        "check",
        f"--config={cfg}",
        f"--prometheus-url={stack_ipv4.prometheus.url}",
        f"--kubeconfig={stack_ipv4.cluster.kubeconfig}",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"prometheus {stack_ipv4.prometheus.url}: reachable" in out.stdout
    assert "  pods/inflight_requests (namespaced)" in out.stdout
    assert "  nodes/e2e_node_load" in out.stdout
    assert "rules[3]: query ok" in out.stdout
    assert "  orders_backlog  (queue rabbitmq" in out.stdout
    assert "queue orders_backlog (rabbitmq" in out.stdout and "backlog" in out.stdout
    assert "guest" not in out.stdout  # no credentials in output
    assert out.stdout.rstrip().endswith("check passed")


def test_check_without_prometheus_fails_with_the_reason(tmp_path: Path) -> None:
    """An unreachable Prometheus makes `check` exit 1 naming it; no cluster needed (built-in resources)."""
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text("rules: [{seriesQuery: up, metricsQuery: up, resources: {overrides: {pod: {resource: pod}}}}]\n")
    port = procs.free_port()
    out = run("check", f"--config={cfg}", f"--prometheus-url=http://127.0.0.1:{port}")
    assert out.returncode == 1
    assert f"FAIL prometheus http://127.0.0.1:{port}: unreachable" in out.stdout
    assert "built-in resource table" in out.stdout


@pytest.mark.parametrize(
    ("config", "args", "fragment"),
    [
        ("rules: [{seriesQuery: up, resources: {template: <<.Resource>>}}]", [], "rules[0].metricsQuery is required"),
        ("resourceRules: {cpu: {}}", [], "resourceRules.memory is required"),
        (
            "rules: [{seriesQuery: up, metricsQuery: '<<if .Series>>', resources: {template: <<.Resource>>}}]",
            [],
            "'if' action is not supported",
        ),
        ("queues: [{name: q, rabbitmq: {url: 'ftp://x', queue: q}}]", [], "queues[0]"),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}}]",
            ["--prometheus-auth-config=/x"],
            "--prometheus-auth-config is not supported",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}}]",
            ["--prometheus-url=localhost:9090"],
            "must be an http:// or https:// URL",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}}]",
            ["--prometheus-url=http://p", "--refresh-interval=1m", "--max-staleness=10s"],
            "--max-staleness (10s) must be",
        ),
        (
            "rules: [{seriesQuery: up, metricsQuery: up, resources: {template: <<.Resource>>}}]",
            ["--prometheus-url=http://p", "--kubeconfig=/nonexistent"],
            "error: kubeconfig /nonexistent does not exist",
        ),
    ],
)
def test_bad_config_or_flags_stop_start_up_with_exit_2(
    tmp_path: Path, config: str, args: list[str], fragment: str
) -> None:
    """A bad config or flag stops start-up at once with one line naming the file/rule/field or flag (exit 2)."""
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text(config)
    out = run(f"--config={cfg}", "--secure-port=1", "--cert-dir", str(tmp_path / "certs"), *args)
    assert out.returncode == 2, out.stderr
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_override_resource_is_refused_after_discovery(stack_ipv4: Stack, tmp_path: Path) -> None:
    """An override naming a resource the cluster lacks stops start-up naming rule, label and resource."""
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text("rules: [{seriesQuery: up, metricsQuery: up, resources: {overrides: {svc: {resource: nothing}}}}]\n")
    out = run(
        f"--config={cfg}",
        f"--prometheus-url={stack_ipv4.prometheus.url}",
        "--secure-port=1",
        f"--cert-dir={tmp_path}",
        f"--kubeconfig={stack_ipv4.cluster.kubeconfig}",
    )
    assert out.returncode == 2, out.stderr
    assert "rules[0].resources.overrides.svc: no resource 'nothing'" in out.stderr


def test_unreachable_kubernetes_fails_start_up_with_one_line(tmp_path: Path) -> None:
    """Kubernetes unreachable for --kube-startup-timeout: exit 1 with the reason, no traceback."""
    kubeconfig = tmp_path / "kubeconfig"
    port = procs.free_port()
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""
    )
    cfg = tmp_path / "adapter.yaml"
    cfg.write_text("queues: [{name: q, redis: {url: 'redis://127.0.0.1:1/0', list: jobs}}]\n")
    out = run(
        f"--config={cfg}",
        f"--cert-dir={tmp_path}",
        "--secure-port=1",
        f"--kubeconfig={kubeconfig}",
        "--kube-startup-timeout=2s",
    )
    assert out.returncode == 1, out.stderr
    assert f"resource discovery from kubernetes https://127.0.0.1:{port} failed for 2s" in out.stderr
    assert "Traceback" not in out.stderr


def test_insecure_skip_auth_serves_everyone_and_says_so(stack_ipv4: Stack, tmp_path: Path) -> None:
    """--insecure-skip-auth answers unauthenticated requests and warns loudly in the log."""
    adapter = start_adapter(
        stack_ipv4.cluster,
        tmp_path,
        "queues: [{name: q, redis: {url: 'redis://127.0.0.1:1/0', list: jobs}}]\n",
        prometheus_url=None,
        extra_args=["--insecure-skip-auth"],
    )
    try:
        status, body = adapter.get("/apis/external.metrics.k8s.io/v1beta1", user=None, client_cert=None)
        assert status == 200 and body["resources"][0]["name"] == "q"
        assert "--insecure-skip-auth: every request is served WITHOUT authentication" in adapter.log_text()
        # The port in use: a second adapter on it fails start-up with exit 1 and the reason.
        out = run(
            "--config=" + str(tmp_path / "config.yaml"),
            f"--secure-port={adapter.port}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={tmp_path / 'c2'}",
            f"--kubeconfig={stack_ipv4.cluster.kubeconfig}",
            "--insecure-skip-auth",
        )
        assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{adapter.port}" in out.stderr
    finally:
        adapter.stop()
