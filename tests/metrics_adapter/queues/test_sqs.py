"""SQS backlogs from a real SQS-compatible server (moto) that checks SigV4 signatures, with the
credentials found the way AWS SDKs find them: env, shared files and profiles, a credential
process, IRSA web identity through STS."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from e2e import sqs
from metrics_adapter.queues import QueueAuthError, QueueNotFound, QueueReader, open_reader
from tests.metrics_adapter.queues.conftest import entry

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def orders(sqs_server: sqs.SQSServer) -> str:
    """A queue with 5 messages, 2 of them received and in flight (invisible) for the module's duration."""
    url = sqs_server.create_queue(f"e2e-orders-{uuid.uuid4().hex[:6]}")
    sqs_server.send(url, 5)
    assert sqs_server.receive(url, 2) == 2
    return url


@pytest.fixture
def env_keys(aws_env: pytest.MonkeyPatch, sqs_server: sqs.SQSServer) -> pytest.MonkeyPatch:
    """The admin user's keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, nothing else."""
    aws_env.setenv("AWS_ACCESS_KEY_ID", sqs_server.access_key_id)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", sqs_server.secret_access_key)
    return aws_env


async def _reader(session: aiohttp.ClientSession, queue_url: str, **spec: Any) -> QueueReader:
    return await open_reader(entry("sqs", {"queueUrl": queue_url, "region": sqs.REGION, **spec}), session)


@pytest.mark.usefixtures("env_keys")
@pytest.mark.parametrize(("in_flight", "expected"), [(False, 3), (True, 5)])
async def test_visible_and_in_flight_counts(
    orders: str, http_session: aiohttp.ClientSession, in_flight: bool, expected: int
) -> None:
    """Visible messages alone, or visible plus in flight with ``includeInFlight``, in signed requests."""
    reader = await _reader(http_session, orders, includeInFlight=in_flight)
    before = time.time()
    sample = await reader.read()
    assert sample.value == expected
    assert before <= sample.timestamp <= time.time()


@pytest.mark.usefixtures("env_keys")
async def test_missing_queue_is_not_found(
    orders: str, sqs_server: sqs.SQSServer, http_session: aiohttp.ClientSession
) -> None:
    """A queue URL naming no queue gives QueueNotFound naming that URL."""
    missing = orders.rsplit("/", 1)[0] + "/no-such-queue"
    reader = await _reader(http_session, missing)
    with pytest.raises(QueueNotFound, match="the queue does not exist") as info:
        await reader.read()
    assert info.value.upstream == f"sqs {missing}"


async def test_wrong_secret_and_unknown_key_are_auth_errors_then_recover(
    orders: str, sqs_server: sqs.SQSServer, env_keys: pytest.MonkeyPatch, http_session: aiohttp.ClientSession
) -> None:
    """A wrong secret or an unknown key id is QueueAuthError without the secret; fixed credentials work next read."""
    env_keys.setenv("AWS_SECRET_ACCESS_KEY", "Wr0ng-secret-key")
    reader = await _reader(http_session, orders)
    with pytest.raises(QueueAuthError, match="SignatureDoesNotMatch") as info:
        await reader.read()
    assert "Wr0ng-secret-key" not in str(info.value)

    env_keys.setenv("AWS_SECRET_ACCESS_KEY", sqs_server.secret_access_key)
    assert (await reader.read()).value == 3  # refused credentials are forgotten, the chain is walked again

    env_keys.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
    unknown = await _reader(http_session, orders)
    with pytest.raises(QueueAuthError, match="InvalidClientTokenId"):
        await unknown.read()


@pytest.mark.usefixtures("aws_env")
async def test_no_credentials_anywhere_is_an_auth_error(orders: str, http_session: aiohttp.ClientSession) -> None:
    """With no credentials in env, files or metadata, the read fails saying where it looked."""
    reader = await _reader(http_session, orders)
    with pytest.raises(QueueAuthError, match=r"no AWS credentials found .*AWS_WEB_IDENTITY_TOKEN_FILE"):
        await reader.read()


async def test_profile_from_shared_credentials_file(
    orders: str,
    sqs_server: sqs.SQSServer,
    aws_env: pytest.MonkeyPatch,
    tmp_path: Path,
    http_session: aiohttp.ClientSession,
) -> None:
    """``profile`` selects a profile of the shared credentials file; an unknown profile is an auth error."""
    keys = f"aws_access_key_id = {sqs_server.access_key_id}\naws_secret_access_key = {sqs_server.secret_access_key}"
    (tmp_path / "aws-credentials").write_text(f"[team]\n{keys}\n")
    assert (await (await _reader(http_session, orders, profile="team")).read()).value == 3
    absent = await _reader(http_session, orders, profile="absent")
    with pytest.raises(QueueAuthError, match="absent"):
        await absent.read()


async def test_irsa_web_identity_goes_through_sts(
    orders: str,
    sqs_server: sqs.SQSServer,
    aws_env: pytest.MonkeyPatch,
    tmp_path: Path,
    http_session: aiohttp.ClientSession,
) -> None:
    """With EKS's IRSA variables only, credentials come from STS AssumeRoleWithWebIdentity and sign reads."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2hvcDphZGFwdGVyIn0.c2ln")
    aws_env.setenv("AWS_ROLE_ARN", sqs_server.role_arn)
    aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    aws_env.setenv("AWS_REGION", sqs.REGION)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", sqs_server.url)  # STS is the same local server
    reader = await _reader(http_session, orders)
    # moto answers the (unsigned) AssumeRoleWithWebIdentity only while it checks no signatures.
    with sqs_server.signatures_not_checked():
        assert (await reader.read()).value == 3
    # Signatures checked again: the temporary credentials (key, secret, session token) are cached and valid.
    assert (await reader.read()).value == 3


_CREDENTIAL_PROCESS = """\
import json, sys, datetime, pathlib
calls = pathlib.Path(sys.argv[1])
calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
lifetime = float(pathlib.Path(sys.argv[2]).read_text())
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
print(json.dumps({"Version": 1, "AccessKeyId": sys.argv[3], "SecretAccessKey": sys.argv[4],
                  "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


@pytest.fixture
def credential_process(
    aws_env: pytest.MonkeyPatch, sqs_server: sqs.SQSServer, tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    """A ``credential_process`` profile whose credentials live as long as ``lifetime`` says; it counts its calls."""
    script, calls, lifetime = tmp_path / "creds.py", tmp_path / "calls", tmp_path / "lifetime"
    script.write_text(_CREDENTIAL_PROCESS)
    command = [sys.executable, script, calls, lifetime, sqs_server.access_key_id, sqs_server.secret_access_key]
    (tmp_path / "aws-config").write_text(f"[profile proc]\ncredential_process = {' '.join(map(str, command))}\n")
    yield calls, lifetime


async def test_expiring_credentials_are_cached_until_they_near_expiry(
    orders: str, credential_process: tuple[Path, Path], http_session: aiohttp.ClientSession
) -> None:
    """Credentials valid for an hour are fetched once for many reads; ones about to expire are fetched every read."""
    calls, lifetime = credential_process
    lifetime.write_text("3600")
    reader = await _reader(http_session, orders, profile="proc")
    for _ in range(4):
        assert (await reader.read()).value == 3
    assert calls.read_text() == "x"

    # botocore refreshes within 15 minutes of expiry: 10-minute credentials are renewed on every read.
    lifetime.write_text("600")
    fresh = await _reader(http_session, orders, profile="proc")
    for _ in range(3):
        assert (await fresh.read()).value == 3
    assert len(calls.read_text()) - 1 >= 3  # at least once per read (botocore may also call once on load)


@pytest.fixture(scope="module")
def sqs_ipv6() -> Iterator[sqs.SQSServer]:
    """A second SQS server, on ::1."""
    server = sqs.start_sqs("ipv6")
    yield server
    server.stop()


async def test_ipv6_server_with_signature_checks(
    sqs_ipv6: sqs.SQSServer, aws_env: pytest.MonkeyPatch, http_session: aiohttp.ClientSession
) -> None:
    """A queue on [::1] is read with requests signed for the bracketed host."""
    url = sqs_ipv6.create_queue("v6-orders")
    assert url.startswith("http://[::1]:")
    sqs_ipv6.send(url, 4)
    aws_env.setenv("AWS_ACCESS_KEY_ID", sqs_ipv6.access_key_id)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", sqs_ipv6.secret_access_key)
    reader = await _reader(http_session, url)
    assert (await reader.read()).value == 4


def test_error_bodies_in_json_and_xml_give_the_aws_code() -> None:
    """The AWS error code is read from a JSON body, an XML body, or the query-error header."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from metrics_adapter.queues.http import Response
    from metrics_adapter.queues.sqs import _error

    def resp(status: int, body: bytes, **headers: str) -> Response:
        return Response(status, CIMultiDictProxy(CIMultiDict(headers)), body)

    json_body = json.dumps({"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone"}).encode()
    assert _error(resp(400, json_body)) == ("QueueDoesNotExist", "gone")
    xml_body = b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>bad</Message></Error></ErrorResponse>"
    assert _error(resp(403, xml_body)) == ("InvalidClientTokenId", "bad")
    header = {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}
    assert _error(resp(400, b"", **header)) == ("AWS.SimpleQueueService.NonExistentQueue", "")
    assert _error(resp(503, b"<html>busy</html>")) == ("HTTP503", "")
