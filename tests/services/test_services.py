"""The real Prometheus, RabbitMQ and Redis started by the harness take data and give it back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from e2e import procs, services


class _Exporter(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[tuple[str, type[_Exporter]]]:
    """A /metrics endpoint served by the test, whose body the test sets."""
    handler = type("Handler", (_Exporter,), {"body": b""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_scrapes_a_target_and_answers_queries(
    prometheus: services.Prometheus, exporter: tuple[str, type[_Exporter]]
) -> None:
    """A series exposed by the test is scraped, and an instant query returns its value and labels."""
    address, handler = exporter
    handler.body = b'http_requests_total{path="/api"} 1234\nqueue_depth 7\n'
    prometheus.add_target("svc-a", address, {"namespace": "shop"})

    result = procs.wait_until(
        "the series in Prometheus",
        lambda: prometheus.query('http_requests_total{job="svc-a"}'),
        timeout=60,
    )
    assert result[0]["metric"]["namespace"] == "shop"
    assert result[0]["metric"]["path"] == "/api"
    assert float(result[0]["value"][1]) == 1234

    handler.body = b"queue_depth 9\n"
    procs.wait_until(
        "the new value",
        lambda: [r for r in prometheus.query('queue_depth{job="svc-a"}') if r["value"][1] == "9"],
        timeout=60,
    )


def test_rabbitmq_queue_depth_is_read_back(rabbitmq: services.RabbitMQ) -> None:
    """Messages published to a queue show up in the management API's ready count."""
    queue = f"orders-{uuid.uuid4().hex[:8]}"  # the broker is shared with the adapter's tests
    rabbitmq.declare_queue(queue)
    rabbitmq.publish(queue, 7)
    info = procs.wait_until(
        "messages_ready=7", lambda: (i := rabbitmq.queue_info(queue)).get("messages_ready") == 7 and i, timeout=60
    )
    assert info["messages"] == 7
    assert info["messages_unacknowledged"] == 0


def test_redis_list_and_stream_backlog_are_read_back(redis_server: services.Redis) -> None:
    """A list's length and a consumer group's pending count are what the test wrote."""
    r = redis.Redis.from_url(redis_server.url)
    jobs, events = (f"{k}-{uuid.uuid4().hex[:8]}" for k in ("jobs", "events"))  # the server is shared
    r.rpush(jobs, *[f"job-{i}" for i in range(5)])
    assert r.llen(jobs) == 5

    for i in range(4):
        r.xadd(events, {"n": i})
    r.xgroup_create(events, "workers", id="0")
    r.xreadgroup("workers", "w1", {events: ">"}, count=3)
    groups = r.xinfo_groups(events)
    assert groups[0]["pending"] == 3
    assert groups[0]["lag"] == 1
