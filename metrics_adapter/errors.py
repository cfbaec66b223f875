"""The adapter's exceptions, each carrying the HTTP status and the words a user sees.

    AdapterError                 any failure turned into a Status object
    ├── BadRequest (400)         malformed selector, path or parameter
    ├── Unauthorized (401)       no or unverifiable credentials
    ├── Forbidden (403)          SubjectAccessReview said no
    ├── NotFound (404)           unknown metric, resource or object
    └── Unavailable (503)        an upstream (Prometheus, a broker, Kubernetes) failed or
                                 its value is too old; ``source`` names it
    ConfigError                  a bad config file or flag, reported at start-up (exit 2)
    UpstreamError                a source failed one call; the cache turns it into Unavailable

Messages name what was wrong (the parameter, the metric, the rule and field) and never carry
credentials: upstream URLs are shown without user info.
"""

from __future__ import annotations

import urllib.parse


class AdapterError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AdapterError):
    status = 400


class Unauthorized(AdapterError):
    status = 401


class Forbidden(AdapterError):
    status = 403


class NotFound(AdapterError):
    status = 404


class Unavailable(AdapterError):
    status = 503

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class ConfigError(ValueError):
    """Invalid configuration; the message names the file, rule and field."""


class UpstreamError(Exception):
    """One call to an upstream failed. ``source`` names it without credentials.

    ``outage`` is False when the upstream answered but refused this one call (a query
    Prometheus rejects): that says nothing about the upstream's health, so it does not count
    towards its circuit breaker.
    """

    def __init__(self, source: str, message: str, *, outage: bool = True) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
        self.outage = outage


def redact_url(url: str) -> str:
    """``url`` without user info or query string, fit for logs and error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def truncate(text: str, limit: int = 300) -> str:
    """Keep upstream payloads in messages short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
