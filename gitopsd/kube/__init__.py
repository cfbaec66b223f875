"""The Kubernetes port: an asyncio client, discovery, and the errors they raise.

Nothing outside this package talks HTTP to a cluster; engine parts take a ``KubeAPI`` (the
protocol ``Kube`` satisfies, and the in-memory fake of the unit tests too).
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
from gitopsd.kube.port import KubeAPI

__all__ = [
    "ApiError",
    "Conflict",
    "Discovery",
    "Forbidden",
    "Gone",
    "Invalid",
    "Kube",
    "KubeAPI",
    "KubeError",
    "ListResult",
    "NotFound",
    "RequestStats",
    "Resource",
    "UnknownKind",
    "Unreachable",
    "WatchEvent",
]
