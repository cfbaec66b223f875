"""How long one queue backlog read takes, per broker, against the real local brokers.

Starts RabbitMQ, Redis and the SQS-compatible server (moto) like the tests do, then times
sequential ``read()`` calls of our readers and, in the same run, a baseline for each:

- RabbitMQ: a bare aiohttp GET of the same management URL (our parsing and error mapping
  on top of the HTTP call is the difference).
- Redis: redis-py's ``llen`` with no layer of ours, and a hand-written RESP exchange on a raw
  asyncio stream (what replacing redis-py would buy).
- SQS: botocore's own client (``get_queue_attributes`` in a worker thread), the obvious
  alternative to our aiohttp + SigV4 path; and SigV4 signing alone.

Prints JSON: p50 / p99 / mean in milliseconds and ratios ours / baseline.

    .venv/bin/python -m bench.queue_reads [--reads N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from e2e import procs, services, sqs
from metrics_adapter.queues import open_reader, parse_queues


async def _timed(call: Callable[[], Awaitable[Any]], reads: int) -> dict[str, float]:
    for _ in range(min(20, reads)):  # warm-up: connections, credential resolution
        await call()
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def _ratio(ours: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    return {k.replace("_ms", ""): round(ours[k] / base[k], 2) for k in ("p50_ms", "p99_ms")}


async def _rabbitmq(rabbit: services.RabbitMQ, session: aiohttp.ClientSession, reads: int) -> dict[str, Any]:
    rabbit.declare_queue("bench")
    rabbit.publish("bench", 3)
    procs.wait_until("bench queue stats", lambda: rabbit.queue_info("bench").get("messages") == 3, timeout=60)
    url = rabbit.management_url.replace("http://", "http://guest:guest@")
    (config,) = parse_queues([{"name": "b", "rabbitmq": {"url": url, "queue": "bench", "count": "total"}}])
    reader = await open_reader(config, session)
    ours = await _timed(reader.read, reads)

    raw_url = f"{rabbit.management_url}/api/queues/%2F/bench?columns=messages,messages_ready,messages_unacknowledged"

    basic = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}

    async def bare() -> None:
        async with session.get(raw_url, headers=basic) as resp:
            await resp.read()

    base = await _timed(bare, reads)
    return {"ours": ours, "bare_aiohttp_get": base, "ratio_ours_to_bare": _ratio(ours, base)}


async def _redis(server: services.Redis, session: aiohttp.ClientSession, reads: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=server.host, port=server.port)
    await client.rpush("bench", *range(5))
    (config,) = parse_queues([{"name": "b", "redis": {"url": server.url, "list": "bench"}}])
    reader = await open_reader(config, session)
    ours = await _timed(reader.read, reads)

    async def redis_py() -> None:
        await client.llen("bench")

    library = await _timed(redis_py, reads)
    stream_reader, writer = await asyncio.open_connection(server.host, server.port)

    async def raw_resp() -> None:
        writer.write(b"*2\r\n$4\r\nLLEN\r\n$5\r\nbench\r\n")
        line = await stream_reader.readline()
        assert line.startswith(b":")

    raw = await _timed(raw_resp, reads)
    writer.close()
    await reader.close()
    await client.aclose()
    return {
        "ours": ours,
        "redis_py_llen": library,
        "raw_resp_llen": raw,
        "ratio_ours_to_redis_py": _ratio(ours, library),
        "ratio_ours_to_raw_resp": _ratio(ours, raw),
    }


async def _sqs(server: sqs.SQSServer, session: aiohttp.ClientSession, reads: int) -> dict[str, Any]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    queue = server.create_queue("bench")
    server.send(queue, 3)
    os.environ.update(AWS_ACCESS_KEY_ID=server.access_key_id, AWS_SECRET_ACCESS_KEY=server.secret_access_key)
    (config,) = parse_queues([{"name": "b", "sqs": {"queueUrl": queue, "region": sqs.REGION}}])
    reader = await open_reader(config, session)
    ours = await _timed(reader.read, reads)

    client = server.client()

    async def botocore_client() -> None:
        await asyncio.to_thread(client.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"])

    boto = await _timed(botocore_client, reads)
    creds = ReadOnlyCredentials(server.access_key_id, server.secret_access_key, None)
    started = time.perf_counter()
    for _ in range(1000):
        request = AWSRequest(method="POST", url=server.url + "/", data=b"{}", headers={"X-Amz-Target": "x"})
        SigV4Auth(creds, "sqs", sqs.REGION).add_auth(request)
    sign_us = (time.perf_counter() - started) / 1000 * 1e6
    return {
        "ours": ours,
        "botocore_client_in_thread": boto,
        "ratio_ours_to_botocore_client": _ratio(ours, boto),
        "sigv4_sign_us": round(sign_us, 1),
    }


def _import_ms(module: str) -> float:
    """Wall time of importing ``module`` in a fresh interpreter, minus the interpreter's own start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = min(run("pass") for _ in range(3))
    return round((min(run(f"import {module}") for _ in range(3)) - bare) * 1000, 1)


async def _main(reads: int) -> dict[str, Any]:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never reach for instance metadata
    rabbit, redis_server, sqs_server = services.start_rabbitmq(), services.start_redis(), sqs.start_sqs()
    try:
        async with aiohttp.ClientSession() as session:
            return {
                "benchmark": "queue_reads",
                "reads": reads,
                "rabbitmq": await _rabbitmq(rabbit, session, reads),
                "redis": await _redis(redis_server, session, reads),
                "sqs_moto": await _sqs(sqs_server, session, reads),
                "import_ms": {
                    m: _import_ms(m)
                    for m in ("metrics_adapter.queues", "metrics_adapter.queues.redis", "metrics_adapter.queues.sqs")
                },
            }
    finally:
        for server in (sqs_server, redis_server, rabbit):
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=500)
    args = parser.parse_args()
    json.dump(asyncio.run(_main(args.reads)), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
