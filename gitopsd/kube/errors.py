"""What can go wrong talking to the Kubernetes API, as exceptions a caller can branch on.

::

    KubeError                   (GitopsdError)
    ├── Unreachable             no answer: connection refused, TLS failure, timeout
    ├── ConfigError             no usable kubeconfig / in-cluster config
    ├── UnknownKind             discovery knows no such apiVersion + kind
    └── ApiError                the server answered with a Status (code, reason, message)
        ├── BadRequest (400)  Unauthorized (401)  Forbidden (403)  NotFound (404)
        ├── Conflict (409)    Gone (410: a watch's resourceVersion is too old)
        ├── Invalid (422)     TooManyRequests (429)   ServerError (5xx)

``ApiError`` keeps the Status' ``causes`` (field paths of an Invalid object, the managers of an
apply Conflict) so callers can say precisely what was refused.
"""

from __future__ import annotations

from typing import Any

from gitopsd.errors import GitopsdError, truncate


class KubeError(GitopsdError):
    reason = "KubernetesError"
    transient = True  # the API server refused for a reason not recognised below: worth another try


class Unreachable(KubeError):
    reason = "KubernetesUnreachable"


class ConfigError(KubeError):
    reason = "KubeConfigInvalid"
    transient = False


class UnknownKind(KubeError):
    reason = "UnknownKind"
    transient = False

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"the server has no resource type {kind} in {api_version or 'v1'}")
        self.api_version, self.kind = api_version, kind


class ApiError(KubeError):
    """The API server refused a request with a Status."""

    code = 0

    def __init__(self, code: int, status_reason: str, message: str, causes: list[dict[str, Any]] | None = None) -> None:
        super().__init__(truncate(message or status_reason or f"HTTP {code}", 600))
        self.code = code
        self.status_reason = status_reason
        self.causes = causes or []


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    reason = "Unauthorized"
    transient = False


class Forbidden(ApiError):
    reason = "Forbidden"
    transient = False


class NotFound(ApiError):
    reason = "NotFound"
    transient = False


class Conflict(ApiError):
    reason = "Conflict"


class Gone(ApiError):
    pass


class Invalid(ApiError):
    reason = "Invalid"
    transient = False


class TooManyRequests(ApiError):
    pass


class ServerError(ApiError):
    pass


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def from_status(code: int, body: Any) -> ApiError:
    """The exception for an HTTP error ``code`` whose body is (usually) a metav1.Status."""
    status = body if isinstance(body, dict) else {}
    message = str(status.get("message") or (body if isinstance(body, str) else "") or "")
    reason = str(status.get("reason") or "")
    details = status.get("details") or {}
    causes = details.get("causes") if isinstance(details, dict) else None
    cls = _BY_CODE.get(code) or (ServerError if code >= 500 else ApiError)
    return cls(code, reason, message, causes if isinstance(causes, list) else None)
