"""The wire side of chart repositories: an HTTP Helm repository (``index.yaml``) or an OCI registry.

Both speak plain HTTP through one aiohttp session: redirects bounded (``MAX_REDIRECTS``), every
body read against a size limit, credentials sent as HTTP basic authentication and never put in a
message or a log line (URLs are shown without userinfo).

OCI goes through the registry's v2 HTTP API directly (tags list, manifest, blob) rather than
``helm pull``: the same client, limits and errors as an HTTP repository, the layer's digest
checked by us, and no registry login written to disk for a helm subprocess. A registry that
answers 401 with a ``Bearer`` challenge gets a token from its realm (with the credentials, if
any) and the request is repeated once. Loopback registries are spoken to over plain http (as
``helm --plain-http``), every other over https.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from gitopsd.sources.errors import SourceError
from gitopsd.sources.urls import redact_url

MAX_REDIRECTS = 5
MAX_INDEX_BYTES = 32 * 1024 * 1024  # artifacthub's biggest repositories' indexes are a few MiB
MAX_CHART_BYTES = 16 * 1024 * 1024  # a packaged chart; the largest common ones are ~1 MiB
#: Chart versions one listing may hold (index.yaml entries, OCI tags): the largest public indexes hold ~20,000.
MAX_LISTED_VERSIONS = 100_000
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


class ChartError(SourceError):
    """A chart could not be fetched (something not listed below: worth another try)."""

    reason = "ChartFetchFailed"


class ChartRepositoryUnreachable(ChartError):
    reason = "ChartRepositoryUnreachable"


class ChartNotFound(ChartError):
    reason = "ChartNotFound"
    transient = False


class ChartVersionNotFound(ChartError):
    reason = "ChartVersionNotFound"
    transient = False


class ChartAuthenticationFailed(ChartError):
    reason = "ChartAuthenticationFailed"
    transient = False


class ChartTooLarge(ChartError):
    reason = "ChartTooLarge"
    transient = False


class ChartDigestMismatch(ChartError):
    reason = "ChartDigestMismatch"
    transient = False


class ChartInvalid(ChartError):
    """What the repository sent is not what it should be: an index, a registry answer or an archive."""

    reason = "ChartInvalid"
    transient = False


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


class Http:
    """Chart requests of the daemon; counts them (for the bench).

    A session per request: a repository is asked about once per interval, so a kept connection
    saves little, and nothing is left open for the daemon to close at shutdown."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.requests = 0

    async def close(self) -> None:
        return None

    async def get(
        self, url: str, limit: int, *, login: Login | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, Any]:
        """(status, body, response headers) of a GET; raises ``ChartRepositoryUnreachable`` or ``ChartTooLarge``."""
        headers = dict(headers or {})
        if login:  # aiohttp drops it on a redirect to another origin
            headers["Authorization"] = aiohttp.encode_basic_auth(login.username, login.password)
        self.requests += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.get(url, headers=headers, max_redirects=MAX_REDIRECTS) as response,
            ):
                if response.content_length is not None and response.content_length > limit:
                    raise ChartTooLarge(f"{redact_url(url)} is {response.content_length} bytes (limit {limit})")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise ChartTooLarge(f"{redact_url(url)} is larger than the limit of {limit} bytes")
                return response.status, bytes(body), response.headers
        except aiohttp.TooManyRedirects:
            raise ChartError(f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects", transient=False) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChartRepositoryUnreachable(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from None


def check_status(url: str, status: int, what: str) -> None:
    if status in (401, 403):
        raise ChartAuthenticationFailed(
            f"{redact_url(url)}: the repository refused the credentials ({status}); "
            "check the Secret named by spec.chart.secretRef (username, password)"
        )
    if status == 404:
        raise ChartNotFound(f"{redact_url(url)}: {what} not found (404)")
    if status >= 400:
        raise ChartError(f"{redact_url(url)}: {what}: HTTP {status}", transient=status >= 500 or status == 429)


def same_origin(url: str, repository: str) -> bool:
    """Whether ``url`` is on the repository's scheme, host and port: only there are its credentials sent
    (an index may name archives anywhere; Helm, too, keeps credentials to the repository's host)."""
    a, b = urlsplit(url), urlsplit(repository)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def json_object(url: str, body: bytes, what: str) -> dict[str, Any]:
    """``body`` as a JSON object; ``ChartInvalid`` naming ``url`` when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ChartInvalid(f"{redact_url(url)}: {what} is not a JSON object")
    return value


def check_digest(url: str, body: bytes, digest: str) -> None:
    """``digest`` is ``sha256:HEX`` or ``HEX`` (the index's form); empty: nothing to check."""
    want = digest.removeprefix("sha256:")
    if want and hashlib.sha256(body).hexdigest() != want:
        raise ChartDigestMismatch(f"{redact_url(url)}: the download's sha256 is not the digest {digest} announced")


class Registry:
    """The v2 API of one OCI registry host, as a chart repository."""

    def __init__(self, http: Http, repository: str) -> None:
        parts = urlsplit(repository)
        host = parts.hostname or ""
        scheme = "http" if host in _LOOPBACK else "https"
        self.base = f"{scheme}://{parts.netloc}"
        self.prefix = parts.path.strip("/")
        self.http = http

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    async def tags(self, name: str, login: Login | None) -> list[str]:
        url = f"{self.base}/v2/{self.path(name)}/tags/list"
        status, body, _ = await self._get(url, name, MAX_INDEX_BYTES, login)
        check_status(url, status, f"chart {name}")
        tags = json_object(url, body, "the tag list").get("tags") or []
        if not isinstance(tags, list) or len(tags) > MAX_LISTED_VERSIONS:
            raise ChartInvalid(f"{redact_url(url)}: tags is not a list of at most {MAX_LISTED_VERSIONS} tags")
        return [tag.replace("_", "+") for tag in tags if isinstance(tag, str)]

    async def chart(self, name: str, version: str, login: Login | None) -> tuple[bytes, str]:
        """The packaged chart of ``name`` at ``version`` and its layer digest."""
        tag = version.replace("+", "_")  # OCI tags cannot hold '+'; helm push writes '_'
        url = f"{self.base}/v2/{self.path(name)}/manifests/{tag}"
        status, body, _ = await self._get(url, name, MAX_INDEX_BYTES, login, accept=_MANIFEST_TYPES)
        check_status(url, status, f"chart {name} version {version}")
        listed = json_object(url, body, "the manifest").get("layers") or []
        layers = (
            [x for x in listed if isinstance(x, dict) and x.get("mediaType") == HELM_LAYER]
            if isinstance(listed, list)
            else []
        )
        if not layers:
            raise ChartNotFound(f"{redact_url(url)}: not a Helm chart (no layer of type {HELM_LAYER})")
        digest, size = layers[0].get("digest"), layers[0].get("size") or 0
        if not isinstance(digest, str) or not _SHA256.match(digest) or not isinstance(size, int):
            raise ChartInvalid(f"{redact_url(url)}: the chart layer has no sha256 digest and size")
        if size > MAX_CHART_BYTES:
            raise ChartTooLarge(f"{redact_url(url)}: the chart is {layers[0]['size']} bytes (limit {MAX_CHART_BYTES})")
        blob_url = f"{self.base}/v2/{self.path(name)}/blobs/{digest}"
        status, blob, _ = await self._get(blob_url, name, MAX_CHART_BYTES, login)
        check_status(blob_url, status, f"chart {name} version {version}")
        check_digest(blob_url, blob, digest)
        return blob, digest

    async def _get(
        self, url: str, name: str, limit: int, login: Login | None, accept: str | None = None
    ) -> tuple[int, bytes, Any]:
        headers = {"Accept": accept} if accept else {}
        status, body, response_headers = await self.http.get(url, limit, login=login, headers=headers)
        challenge = str(response_headers.get("WWW-Authenticate") or "")
        if status == 401 and challenge.lower().startswith("bearer "):
            token = await self._token(challenge, name, login)
            headers["Authorization"] = f"Bearer {token}"
            status, body, response_headers = await self.http.get(url, limit, headers=headers)
        return status, body, response_headers

    async def _token(self, challenge: str, name: str, login: Login | None) -> str:
        fields = dict(
            part.split("=", 1) for part in challenge[len("bearer ") :].replace('"', "").split(",") if "=" in part
        )
        realm = fields.pop("realm", "")
        query = {"service": fields.get("service", ""), "scope": f"repository:{self.path(name)}:pull"}
        url = f"{realm}?{urlencode(query)}"
        status, body, _ = await self.http.get(url, MAX_INDEX_BYTES, login=login)
        check_status(url, status, "a registry token")
        answer = json_object(url, body, "the token answer")
        token = answer.get("token") or answer.get("access_token") or ""
        return token if isinstance(token, str) else ""
