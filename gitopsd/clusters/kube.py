"""``TargetKube``: the Kubernetes client of one target cluster, behind its circuit breaker.

A ``kube.Kube`` (its own connection pool, short connect and request timeouts) whose every
request is admitted by the cluster's ``Breaker`` and whose failures to reach the cluster
become ``ClusterUnreachable`` naming the cluster. A certificate the kubeconfig's CA does not
accept (wrong or expired CA, wrong server name) is ``ClusterUnreachable`` too, with reason
``ClusterCertificateInvalid`` and Stalled (a person must fix the Secret; rotating it rebuilds
the target). While the breaker is suspect, a request waits aside (``clusters.aside``).
Impersonating views share the breaker and the pool.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from gitopsd.clusters.aside import CURRENT
from gitopsd.clusters.breaker import Breaker
from gitopsd.clusters.errors import ClusterUnreachable
from gitopsd.kube.client import Kube
from gitopsd.kube.config import Connection
from gitopsd.kube.errors import ApiError, Unreachable

#: (seconds, reached) of each request: per-cluster latency and error metrics.
Observer = Callable[[float, bool], None]

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 20.0
MAX_CONNECTIONS = 16


def _quiet(_seconds: float, _reached: bool) -> None:
    return None


class TargetKube(Kube):
    def __init__(
        self,
        connection: Connection,
        *,
        cluster: str,
        breaker: Breaker | None = None,
        observe: Observer = _quiet,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        super().__init__(connection, max_connections=max_connections, timeout=timeout, connect_timeout=connect_timeout)
        self.cluster = cluster
        self.breaker = breaker or Breaker()
        self.observe = observe

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        breaker = self.breaker
        if not breaker.admit():
            raise refused(self.cluster, breaker)
        started = time.monotonic()
        call = super().request(
            method, path, params=params, body=body, content_type=content_type, accept=accept, timeout=timeout
        )
        try:
            if breaker.suspect:
                async with CURRENT.get()():
                    result = await call
            else:
                result = await call
        except ApiError:
            breaker.success()  # the server answered
            self.observe(time.monotonic() - started, True)
            raise
        except Unreachable as exc:
            breaker.failure(_cause(exc))
            self.observe(time.monotonic() - started, False)
            if _certificate(exc):
                cause = _cause(exc)
                fix = (
                    "renew the expired certificate (the server's or its CA's), then update certificate-authority-data"
                    if "expired" in cause
                    else "fix certificate-authority-data (or tls-server-name)"
                )
                raise ClusterUnreachable(
                    self.cluster,
                    f"TLS: the server's certificate is not accepted ({cause}); {fix} in the kubeconfig Secret",
                    reason="ClusterCertificateInvalid",
                    transient=False,
                ) from exc
            raise ClusterUnreachable(self.cluster, f"unreachable: {_cause(exc)}") from exc
        except BaseException:
            breaker.abandon()
            raise
        breaker.success()
        self.observe(time.monotonic() - started, True)
        return result


def refused(cluster: str, breaker: Breaker) -> ClusterUnreachable:
    """The error of a call the open circuit of ``cluster`` refused (no request made)."""
    # No counts or seconds in it: the condition (and its Warning Event) stays the same while the outage lasts.
    return ClusterUnreachable(
        cluster, f"unreachable: {breaker.last_error or 'no answer'} (circuit open: tried again with backoff)"
    )


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__
    if isinstance(inner, aiohttp.ClientConnectorCertificateError):
        return str(inner.certificate_error)
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)


def _certificate(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


__all__ = ["CONNECT_TIMEOUT", "REQUEST_TIMEOUT", "Observer", "TargetKube", "refused"]
