"""The circuit breaker's states: closed, open after consecutive failures, half-open probe, backoff."""

from __future__ import annotations

from gitopsd.clusters.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_failures_open_it_and_calls_fail_fast() -> None:
    """Below the threshold calls go through; at it the circuit opens and admits nothing until the backoff ends."""
    clock = Clock()
    b = Breaker(threshold=3, base=2.0, clock=clock)
    for _ in range(2):
        assert b.admit()
        b.failure("connection refused")
    assert b.state == "closed" and b.suspect
    assert b.admit()
    b.failure("connection refused")
    assert b.state == "open"
    assert not b.admit()
    clock.now += 1.9
    assert not b.admit()


def test_half_open_lets_one_probe_through_and_its_success_closes_it() -> None:
    """After the backoff one call probes; others still fail fast; a success closes the circuit."""
    clock = Clock()
    states: list[str] = []
    b = Breaker(threshold=1, base=2.0, clock=clock, on_change=states.append)
    b.admit()
    b.failure("timed out")
    clock.now += 2.0
    assert b.admit()  # the probe
    assert b.state == "half-open"
    assert not b.admit()  # a second caller while the probe runs
    b.success()
    assert b.state == "closed" and not b.suspect and b.admit()
    assert states == ["open", "half-open", "closed"]


def test_a_failed_probe_opens_it_again_for_twice_as_long() -> None:
    """Each failed probe doubles the backoff, up to the cap."""
    clock = Clock()
    b = Breaker(threshold=1, base=2.0, cap=5.0, clock=clock)
    b.admit()
    b.failure("refused")
    waits = []
    for _ in range(3):
        waits.append(b.retry_in())
        clock.now += b.retry_in()
        assert b.admit()
        b.failure("refused")
        assert b.state == "open"
    assert waits == [2.0, 4.0, 5.0]


def test_an_answer_even_an_error_status_resets_the_count() -> None:
    """A success between failures starts the count again: only consecutive failures open it."""
    b = Breaker(threshold=2)
    b.failure("refused")
    b.success()
    b.failure("refused")
    assert b.state == "closed"


def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    """A probe abandoned without a verdict does not leave the circuit stuck half-open."""
    clock = Clock()
    b = Breaker(threshold=1, base=1.0, clock=clock)
    b.failure("refused")
    clock.now += 1.0
    assert b.admit()
    b.abandon()
    assert b.admit()
