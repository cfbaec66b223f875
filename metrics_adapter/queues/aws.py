"""AWS credentials the way the AWS SDKs find them, and SigV4 signing, both from botocore.

botocore's credential chain covers what a pod can be given: environment variables, the
shared credentials/config files and profiles, a web identity token file exchanged through
STS AssumeRoleWithWebIdentity (EKS IRSA), container and instance metadata. Resolving and
refreshing can block (file reads, an STS call), so it runs in a worker thread, and only when
there is nothing cached or botocore says the cached credentials are about to expire; every
other read signs with the cached frozen credentials on the event loop (~0.1 ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import botocore.exceptions
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from metrics_adapter.queues.errors import QueueAuthError, QueueError, QueueUnreachable, scrub


class CredentialSource:
    """One reader's AWS credentials: resolved once, refreshed when botocore says so."""

    def __init__(self, upstream: str, profile: str | None = None) -> None:
        self._upstream = upstream
        self._profile = profile
        self._credentials: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        # A resolution in flight, shared by the reads that wait for it: a read that times out
        # stops waiting, but the thread carries on and the next read picks up its result.
        self._pending: asyncio.Task[ReadOnlyCredentials] | None = None

    async def get(self) -> ReadOnlyCredentials:
        """Credentials to sign with now; raises ``QueueAuthError`` / ``QueueUnreachable``."""
        if self._frozen is not None and not self._needs_refresh():
            return self._frozen
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._resolve_in_thread())
            # Mark the outcome retrieved even when every waiter timed out before it came.
            self._pending.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._frozen = await asyncio.shield(self._pending)
        return self._frozen

    def forget(self) -> None:
        """Drop everything cached, after AWS refused the credentials: the next read resolves afresh."""
        self._credentials = None
        self._frozen = None

    def _needs_refresh(self) -> bool:
        creds = self._credentials
        return isinstance(creds, RefreshableCredentials) and creds.refresh_needed()

    async def _resolve_in_thread(self) -> ReadOnlyCredentials:
        try:
            return await asyncio.to_thread(self._resolve)
        except QueueError:
            raise
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as exc:
            raise QueueUnreachable(self._upstream, f"cannot reach the AWS credentials endpoint: {exc}") from exc
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise QueueAuthError(self._upstream, f"cannot get AWS credentials: {scrub(str(exc), [])}") from exc

    def _resolve(self) -> ReadOnlyCredentials:
        """Blocking: walk botocore's chain (or refresh what it found) and freeze the result."""
        if self._credentials is None:
            session = botocore.session.Session(profile=self._profile)
            credentials = session.get_credentials()
            if credentials is None:
                raise QueueAuthError(
                    self._upstream,
                    "no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, the shared credentials and config "
                    "files, container and instance metadata)",
                )
            self._credentials = credentials
        frozen = self._credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise QueueAuthError(self._upstream, "the AWS credentials found have an empty key")
        return frozen


def sign(
    credentials: ReadOnlyCredentials,
    *,
    service: str,
    region: str,
    url: str,
    host: str,
    body: bytes,
    headers: Mapping[str, str],
) -> dict[str, str]:
    """The headers for a SigV4-signed POST of ``body`` to ``url`` (``host`` as sent on the wire)."""
    request = AWSRequest(method="POST", url=url, data=body, headers={**headers, "Host": host})
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())
