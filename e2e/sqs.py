"""A real SQS-compatible server for tests: moto's server mode, on a free loopback port.

moto rather than ElasticMQ: it installs from PyPI with the dev dependencies (no JVM start or
jar resolution), is up in under a second, checks SigV4 signatures against the access keys it
issued when asked to, and serves STS AssumeRoleWithWebIdentity, so the IRSA credential path
runs end to end. It speaks SQS's JSON protocol, like current AWS SDKs.

The server starts with an IAM user allowed everything (``access_key_id`` /
``secret_access_key``) and a role for web identity (``role_arn``), then requires valid
signatures on every request, as AWS does. moto cannot serve AssumeRoleWithWebIdentity (an
unsigned call) while it does, so :meth:`SQSServer.signatures_not_checked` lifts the check
for the duration of a block.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import procs

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


@dataclass(slots=True)
class SQSServer:
    """moto in server mode with signature checks on; helpers to create queues and move messages."""

    directory: Path
    host: str
    port: int
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    role_arn: str = ""
    region: str = REGION
    _procs: procs.ProcessSet = field(default_factory=procs.ProcessSet)

    @property
    def url(self) -> str:
        return f"http://{procs.url_host(self.host)}:{self.port}"

    def client(self, service: str = "sqs", **credentials: str) -> Any:
        """A botocore client for ``service`` on this server, as the admin user unless told otherwise."""
        import botocore.config
        import botocore.session

        session = botocore.session.Session()
        return session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id=credentials.get("access_key_id", self.access_key_id),
            aws_secret_access_key=credentials.get("secret_access_key", self.secret_access_key),
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
        )

    def create_queue(self, name: str) -> str:
        """Create (or find) queue ``name``; its URL."""
        url: str = self.client().create_queue(QueueName=name)["QueueUrl"]
        return url

    def send(self, queue_url: str, count: int) -> None:
        sqs = self.client()
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(start + 10, count))]
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    def receive(self, queue_url: str, count: int, visibility_timeout: int = 600) -> int:
        """Take up to ``count`` messages in flight (not deleted); how many were taken."""
        sqs, taken = self.client(), 0
        while taken < count:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=min(10, count - taken), VisibilityTimeout=visibility_timeout
            ).get("Messages", [])
            if not got:
                break
            taken += len(got)
        return taken

    @contextmanager
    def signatures_not_checked(self) -> Iterator[None]:
        """Accept unsigned and wrongly signed requests inside the block (restored after)."""
        self._set_auth("inf")
        try:
            yield
        finally:
            self._set_auth("0")

    def _set_auth(self, initial_unchecked: str) -> None:
        # moto's own switch: the number of requests served before signatures are checked.
        req = urllib.request.Request(  # noqa: S310 - loopback URL
            f"{self.url}/moto-api/reset-auth",
            data=initial_unchecked.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
            resp.read()

    def stop(self) -> None:
        self._procs.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _setup_identities(server: SQSServer) -> None:
    """An admin IAM user and a web-identity role, created while signatures are not yet checked."""
    allow_all = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sqs:*", "sts:*"], "Resource": "*"}]}
    )
    iam = server.client("iam", access_key_id="setup", secret_access_key="setup")  # noqa: S106 - unchecked yet
    policy_arn = iam.create_policy(PolicyName="allow-all", PolicyDocument=allow_all)["Policy"]["Arn"]
    iam.create_user(UserName="e2e-admin")
    iam.attach_user_policy(UserName="e2e-admin", PolicyArn=policy_arn)
    key = iam.create_access_key(UserName="e2e-admin")["AccessKey"]
    server.access_key_id, server.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/e2e"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                }
            ],
        }
    )
    role = iam.create_role(RoleName="e2e-irsa", AssumeRolePolicyDocument=trust)["Role"]
    iam.attach_role_policy(RoleName="e2e-irsa", PolicyArn=policy_arn)
    server.role_arn = role["Arn"]


def start_sqs(ip_family: str = "ipv4") -> SQSServer:
    """Start moto's server on a free port, set up identities, turn signature checks on."""
    host = "::1" if ip_family == "ipv6" else "127.0.0.1"
    directory = procs.private_dir("sqs")
    server = SQSServer(directory=directory, host=host, port=procs.free_port(host))
    # Only what moto needs: no AWS_* variables of the caller's leak into the server.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LANG": "C.UTF-8"}
    try:
        proc = server._procs.add(
            procs.start(
                "moto",
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(server.port)],
                directory / "logs",
                env=env,
                cwd=directory,
            )
        )
        procs.wait_until(
            "moto server", lambda: procs.http_ok(f"{server.url}/moto-api/"), timeout=30, interval=0.1, watch=[proc]
        )
        _setup_identities(server)
        server._set_auth("0")
    except BaseException:
        server.stop()
        raise
    return server
