"""Field access for config entries that fails with the entry and the field named.

Shared by every broker's schema in :mod:`metrics_adapter.queues.config`: type checks, unknown
keys (with a did-you-mean), URLs, durations, all raising ``QueueConfigError`` as
``<entry>: <field>: <problem>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, cast
from urllib.parse import SplitResult, urlsplit

from metrics_adapter.queues.errors import QueueConfigError

_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_TIMEOUT = 60.0


class Entry:
    """Field access for one entry that fails with the entry and field named."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, problem: str) -> NoReturn:
        prefix = f"{self.where}: {field}: " if field else f"{self.where}: "
        raise QueueConfigError(prefix + problem)

    def mapping(self, raw: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.fail(field, f"must be a mapping, got {kind_of(raw)}")
        for key in raw:
            if not isinstance(key, str):
                self.fail(field, f"keys must be strings, got {key!r}")
        return cast(Mapping[str, Any], raw)

    def known_fields(self, raw: Mapping[str, Any], allowed: Sequence[str], prefix: str = "") -> None:
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(allowed)})"
                self.fail(prefix + key, f"unknown field{hint}")

    def string(self, raw: Mapping[str, Any], key: str, prefix: str = "", *, required: bool = False) -> str | None:
        if key not in raw or raw[key] is None:
            if required:
                self.fail(prefix + key, "is required")
            return None
        value = raw[key]
        if not isinstance(value, str):
            self.fail(prefix + key, f"must be a string, got {kind_of(value)}")
        if not value:
            self.fail(prefix + key, "must not be empty")
        return value

    def required(self, raw: Mapping[str, Any], key: str, prefix: str = "") -> str:
        value = self.string(raw, key, prefix, required=True)
        assert value is not None
        return value

    def choice(self, raw: Mapping[str, Any], key: str, choices: Sequence[str], default: str, prefix: str) -> str:
        value = self.string(raw, key, prefix) or default
        if value not in choices:
            self.fail(prefix + key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def boolean(self, raw: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(prefix + key, f"must be true or false, got {value!r}")
        return value

    def url(self, value: str, field: str, schemes: Sequence[str]) -> SplitResult:
        try:
            parts = urlsplit(value)
            port = parts.port  # raises ValueError on a non-numeric or out-of-range port
        except ValueError as exc:
            self.fail(field, f"is not a valid URL: {exc}")
        if parts.scheme not in schemes:
            wanted = " or ".join(s + "://" for s in schemes)
            self.fail(field, f"scheme must be {wanted}; got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            self.fail(field, "has no host")
        if port == 0:
            self.fail(field, "port 0 is not a port")
        if parts.fragment:
            self.fail(field, "must not have a #fragment")
        return parts


_KIND_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def kind_of(value: Any) -> str:
    return _KIND_NAMES.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def origin(parts: SplitResult, path: str = "") -> str:
    """``scheme://host[:port]`` + path, without userinfo: safe for messages."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{path}"


def parse_duration(entry: Entry, raw: Any, field: str) -> float:
    """Seconds from a number or a Go-style duration string ("500ms", "2s", "1m30s")."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        entry.fail(field, f"must be a duration like 5s or 500ms, got {kind_of(raw)}")
    if isinstance(raw, str):
        if not _DURATION.fullmatch(raw):
            entry.fail(field, f"must be a duration like 5s or 500ms, got {raw!r}")
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(raw))
    else:
        seconds = float(raw)
    if not 0.001 <= seconds <= MAX_TIMEOUT:
        entry.fail(field, f"must be between 1ms and {MAX_TIMEOUT:.0f}s, got {raw!r}")
    return seconds
