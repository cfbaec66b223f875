"""An SQS backlog (moto, with SigV4 signatures checked) served as an external metric by the real adapter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e import procs, sqs
from e2e.adapter import start_adapter
from tests.metrics_adapter.conftest import Stack

pytestmark = [pytest.mark.cluster, pytest.mark.services]


def test_sqs_visible_and_in_flight_messages(stack_ipv4: Stack, sqs_server: sqs.SQSServer, tmp_path: Path) -> None:
    """ApproximateNumberOfMessages (+ NotVisible with includeInFlight), credentials from the environment."""
    url = sqs_server.create_queue("ma-orders")
    config = f"""
queues:
- name: sqs_backlog
  sqs: {{queueUrl: "{url}", region: {sqs.REGION}}}
- name: sqs_backlog_all
  sqs: {{queueUrl: "{url}", region: {sqs.REGION}, includeInFlight: true}}
"""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": sqs_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": sqs_server.secret_access_key,
    }
    adapter = start_adapter(stack_ipv4.cluster, tmp_path, config, prometheus_url=None, env=env)
    try:
        sqs_server.send(url, 5)
        assert sqs_server.receive(url, 2) == 2  # two in flight, three visible

        def values() -> tuple[str, str] | None:
            out = []
            for metric in ("sqs_backlog", "sqs_backlog_all"):
                status, body = adapter.get(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/any/{metric}")
                if status != 200:
                    return None
                out.append(body["items"][0]["value"])
            return (out[0], out[1]) if out == ["3", "5"] else None

        assert procs.wait_until("SQS backlog served", values, timeout=30) == ("3", "5")
        assert sqs_server.secret_access_key not in adapter.log_text()
    finally:
        adapter.stop()
