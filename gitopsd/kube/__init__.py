"""The Kubernetes port: an asyncio client, discovery, and the errors they raise.

Nothing outside this package talks HTTP to a cluster; engine parts take a ``Kube``.
"""

from gitopsd.kube.client import Kube, ListResult, RequestStats, WatchEvent
from gitopsd.kube.discovery import Discovery, Resource
from gitopsd.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    UnknownKind,
    Unreachable,
)

__all__ = [
    "ApiError",
    "Conflict",
    "Discovery",
    "Forbidden",
    "Gone",
    "Invalid",
    "Kube",
    "KubeError",
    "ListResult",
    "NotFound",
    "RequestStats",
    "Resource",
    "UnknownKind",
    "Unreachable",
    "WatchEvent",
]
