"""Unit tests for freeze windows (gitopsd/freeze.py): window math against a fixed clock, and bad windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitopsd import freeze
from gitopsd.errors import SpecError
from gitopsd.spec import parse_spec


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _windows(*raw: dict[str, Any]) -> tuple[freeze.Window, ...]:
    return freeze.parse_windows(list(raw))


FRIDAY_TOKYO = {"cron": "0 18 * * FRI", "duration": "64h", "timezone": "Asia/Tokyo"}


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-11-27T08:59:59Z", None),  # Friday 17:59:59 in Tokyo: not yet
        ("2026-11-27T09:00:00Z", "2026-11-30T01:00:00Z"),  # Friday 18:00 JST opens it, Monday 10:00 JST closes it
        ("2026-11-28T12:00:00Z", "2026-11-30T01:00:00Z"),  # Saturday
        ("2026-11-30T00:59:59Z", "2026-11-30T01:00:00Z"),  # Monday 09:59:59 JST: still frozen
        ("2026-11-30T01:00:00Z", None),  # Monday 10:00 JST: open again (the end is exclusive)
        ("2026-11-25T12:00:00Z", None),  # a Wednesday
    ],
)
def test_recurring_window_in_a_non_utc_zone(now: str, until: str | None) -> None:
    """'0 18 * * FRI' for 64h in Asia/Tokyo is Friday 18:00 to Monday 10:00 Tokyo time, whatever UTC says."""
    found = freeze.active(_windows(FRIDAY_TOKYO), _at(now))
    assert (found.until if found else None) == (_at(until) if until else None)


def test_recurring_window_follows_daylight_saving_time() -> None:
    """09:00 Berlin time opens at 08:00 UTC in winter and 07:00 UTC in summer."""
    windows = _windows({"cron": "0 9 * * *", "duration": "1h", "timezone": "Europe/Berlin"})
    assert freeze.active(windows, _at("2026-01-15T08:30:00Z")) is not None
    assert freeze.active(windows, _at("2026-01-15T07:30:00Z")) is None
    summer = freeze.active(windows, _at("2026-07-15T07:30:00Z"))
    assert summer is not None and summer.until == _at("2026-07-15T08:00:00Z")
    assert freeze.active(windows, _at("2026-07-15T08:30:00Z")) is None


def test_absolute_window_is_start_inclusive_end_exclusive() -> None:
    """An absolute window covers [start, end)."""
    windows = _windows({"start": "2026-12-24T00:00:00+01:00", "end": "2026-12-27T00:00:00Z"})
    assert freeze.active(windows, _at("2026-12-23T22:59:59Z")) is None
    found = freeze.active(windows, _at("2026-12-23T23:00:00Z"))
    assert found is not None and found.until == _at("2026-12-27T00:00:00Z")
    assert freeze.active(windows, _at("2026-12-27T00:00:00Z")) is None


def test_overlapping_windows_chain_into_one_freeze() -> None:
    """A window that opens before another closes extends the freeze; the message names both."""
    windows = _windows(
        {"start": "2026-12-24T00:00:00Z", "end": "2026-12-26T00:00:00Z"},
        FRIDAY_TOKYO,  # Friday 2026-12-25 09:00Z to Monday 2026-12-28 01:00Z
    )
    found = freeze.active(windows, _at("2026-12-24T12:00:00Z"))
    assert found is not None and found.until == _at("2026-12-28T01:00:00Z")
    assert "spec.freeze[0]" in found.message and "spec.freeze[1]" in found.message
    assert "until 2026-12-28T01:00:00Z" in found.message and "Asia/Tokyo" in found.message


def test_back_to_back_occurrences_chain() -> None:
    """Every day at 00:00 for 25h never reopens: the freeze runs until the chain is cut (bounded)."""
    windows = _windows({"cron": "0 0 * * *", "duration": "23h"}, {"cron": "0 23 * * *", "duration": "1h"})
    found = freeze.active(windows, _at("2026-03-01T05:00:00Z"))
    assert found is not None and found.until > _at("2026-03-05T00:00:00Z")


def test_no_windows_no_freeze() -> None:
    """An Environment without freeze windows is never frozen."""
    assert freeze.active((), _at("2026-12-25T00:00:00Z")) is None
    assert parse_spec({"source": {"url": "https://x/y.git", "branch": "main"}}).freeze == ()


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"cron": "0 18 * * FRI", "duration": "1h", "timezone": "Mars/Olympus"}, "spec.freeze[0].timezone: 'Mars/"),
        ({"cron": "0 25 * * *", "duration": "1h"}, "spec.freeze[0].cron: '0 25 * * *' is not a valid cron"),
        ({"cron": "0 18 * * FRY", "duration": "1h"}, "spec.freeze[0].cron: '0 18 * * FRY' is not a valid cron"),
        ({"cron": "0 0 18 * * FRI", "duration": "1h"}, "spec.freeze[0].cron: '0 0 18 * * FRI' must have five fields"),
        ({"cron": "0 18 * * FRI"}, "spec.freeze[0].duration: is required with cron"),
        ({"cron": "0 18 * * FRI", "duration": "2d"}, "spec.freeze[0].duration: must be a duration"),
        ({"cron": "0 18 * * FRI", "duration": "0s"}, "spec.freeze[0].duration: must be more than 0"),
        ({"start": "2026-12-24T00:00:00Z", "end": "2026-12-24T00:00:00Z"}, "spec.freeze[0].end: '2026-12-24T00:00"),
        ({"start": "2026-12-24", "end": "2026-12-25T00:00:00Z"}, "spec.freeze[0].start: '2026-12-24' needs a date, a"),
        (
            {"start": "2026-12-24T00:00:00", "end": "2026-12-25T00:00:00Z"},
            "spec.freeze[0].start: '2026-12-24T00:00:00'",
        ),
        ({"start": "2026-12-24T00:00:00Z", "cron": "* * * * *"}, "spec.freeze[0]: give either start and end"),
        ({"end": "2026-12-24T00:00:00Z"}, "spec.freeze[0]: give either start and end"),
        ({"cron": "* * * * *", "duration": "1h", "tz": "UTC"}, "spec.freeze[0].tz: unknown field"),
    ],
)
def test_bad_windows_name_the_entry_and_field(window: dict[str, Any], message: str) -> None:
    """Invalid cron, unknown zone, end before start, bad duration: refused, naming spec.freeze[i].field."""
    with pytest.raises(SpecError) as err:
        parse_spec({"source": {"url": "https://x/y.git", "branch": "main"}, "freeze": [window]})
    assert str(err.value).startswith(message), str(err.value)


def test_spec_reads_history_limit_and_rollback() -> None:
    """historyLimit defaults to 10, rollback.auto to false; bad values name the field."""
    base: dict[str, Any] = {"source": {"url": "https://x/y.git", "branch": "main"}}
    spec = parse_spec(base)
    assert (spec.history_limit, spec.rollback_auto) == (10, False)
    spec = parse_spec({**base, "historyLimit": 3, "rollback": {"auto": True}})
    assert (spec.history_limit, spec.rollback_auto) == (3, True)
    for bad, field in (({"historyLimit": 0}, "historyLimit"), ({"historyLimit": True}, "historyLimit"),
                       ({"rollback": {"auto": 1}}, "rollback.auto"), ({"rollback": []}, "rollback")):  # fmt: skip
        with pytest.raises(SpecError) as err:
            parse_spec({**base, **bad})
        assert str(err.value).startswith(f"spec.{field}:")


def test_window_boundaries_are_exact_to_the_second() -> None:
    """One second before a recurring window opens it is not frozen; at the second it is."""
    windows = _windows({"cron": "30 12 * * *", "duration": "90s", "timezone": "America/New_York"})
    opens = _at("2026-06-01T12:30:00-04:00")
    assert freeze.active(windows, opens - timedelta(seconds=1)) is None
    found = freeze.active(windows, opens)
    assert found is not None and found.until == opens + timedelta(seconds=90)
