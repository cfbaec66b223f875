"""Usernames and passwords for brokers, from the URL, a mounted Secret file or an env var.

A reader loads its pair when it opens (so a missing file stops start-up, naming the field)
and again when the broker refuses it (so a rotated Secret is picked up without a restart).
File reads run in a thread: they are rare, but the event loop serves every HPA.
"""

from __future__ import annotations

import asyncio
import os

from metrics_adapter.queues.model import SecretRef


class SecretUnavailable(Exception):
    """A ``*File`` or ``*Env`` credential cannot be read; the message names the field."""


def _load(ref: SecretRef) -> str:
    if ref.value is not None:
        return ref.value
    if ref.file is not None:
        try:
            with open(ref.file, encoding="utf-8") as f:
                # Secret files written by `echo` end in a newline that is not part of the secret.
                return f.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SecretUnavailable(f"{ref.origin}: cannot read {ref.file}: {reason}") from exc
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretUnavailable(f"{ref.origin}: environment variable {ref.env} is not set")
        return value
    raise SecretUnavailable(f"{ref.origin}: no value")


class Credentials:
    """One reader's username and password, cached until :meth:`reload`."""

    def __init__(self, username: SecretRef | None, password: SecretRef | None) -> None:
        self._refs = (username, password)
        self.username: str | None = None
        self.password: str | None = None

    @property
    def configured(self) -> bool:
        return any(ref is not None for ref in self._refs)

    @property
    def reloadable(self) -> bool:
        """Whether a reload can give something new (a file or variable, not a literal)."""
        return any(ref is not None and ref.value is None for ref in self._refs)

    def secrets(self) -> list[str]:
        """The values to keep out of messages."""
        return [s for s in (self.password,) if s]

    async def reload(self) -> bool:
        """Read the sources again; whether anything changed. Raises :class:`SecretUnavailable`."""
        username, password = await asyncio.to_thread(
            lambda: tuple(_load(ref) if ref is not None else None for ref in self._refs)
        )
        changed = (username, password) != (self.username, self.password)
        self.username, self.password = username, password
        return changed
