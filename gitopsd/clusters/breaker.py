"""A circuit breaker per target cluster: a dead cluster is asked once in a while, not at every call.

Closed: calls go through. ``threshold`` consecutive failures to reach the cluster (refused,
reset, TLS failure, no answer within the timeout) open it: calls then fail at once with
``ClusterUnreachable`` for a backoff (``base`` seconds, doubled after every failed probe, at
most ``cap``). When the backoff is over it is half-open: one call (the probe) goes through and
the others still fail fast; the probe's success closes it, its failure opens it again.

An answer from the API server, even an error status, is a success here: the cluster is up.
No I/O here; ``clusters.kube.TargetKube`` calls ``admit``/``success``/``failure`` around each request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class Breaker:
    threshold: int = 3
    base: float = 2.0
    cap: float = 60.0
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    failures: int = 0  # consecutive
    opened: int = 0  # consecutive openings (the backoff doubles with each)
    retry_at: float = 0.0
    last_error: str = ""
    probing: bool = False
    #: When the cluster last answered (``clock`` time): the liveness check (``liveness``) reads it.
    answered: float = -math.inf
    on_change: Callable[[State], None] = field(default=lambda _state: None)

    @property
    def suspect(self) -> bool:
        """The last call failed (or the circuit is not closed): a call may wait long."""
        return self.state != "closed" or self.failures > 0

    def admit(self) -> bool:
        """May a call go now? In half-open state, only the one probe may."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() < self.retry_at:
                return False
            self._set("half-open")
        if self.probing:
            return False
        self.probing = True
        return True

    def retry_in(self) -> float:
        return max(0.0, self.retry_at - self.clock())

    def success(self) -> None:
        self.answered = self.clock()
        self.failures = 0
        self.opened = 0
        self.probing = False
        if self.state != "closed":
            self._set("closed")

    def failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        was_probe, self.probing = self.probing, False
        if self.state == "half-open" or was_probe or self.failures >= self.threshold:
            self.opened += 1
            self.retry_at = self.clock() + min(self.base * 2 ** (self.opened - 1), self.cap)
            if self.state != "open":
                self._set("open")

    def abandon(self) -> None:
        """A call ended without a verdict (cancelled): let the next call probe."""
        if self.probing:
            self.probing = False

    def _set(self, state: State) -> None:
        self.state = state
        self.on_change(state)


__all__ = ["Breaker", "State"]
