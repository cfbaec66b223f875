"""Freeze windows: periods in which an Environment takes no new deploy (rollbacks stay allowed).

Two forms, as ``spec.freeze`` lists them::

    - {start: "2026-12-24T00:00:00Z", end: "2026-12-27T00:00:00Z"}        # absolute, RFC 3339
    - {cron: "0 18 * * FRI", duration: 64h, timezone: Asia/Tokyo}        # recurring

A recurring window opens at each time the five-field cron expression names, read as wall-clock
time in ``timezone`` (an IANA name, default UTC; daylight-saving gaps and repeats are handled
the way Debian cron does), and stays open for ``duration`` of real time. Windows that overlap or
touch are one freeze: "until when" is the end of the whole run.

Cron expressions are parsed and walked by ``cronsim`` (small, typed, no dependencies, kept by
the healthchecks.io author, DST-aware with ``zoneinfo``) rather than a parser of our own.
Everything here is a pure function of the windows and a clock, so the window math is tested
with fixed times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from gitopsd.errors import SpecError
from gitopsd.fields import SPEC as FIELDS
from gitopsd.fields import format_duration

#: How many overlapping occurrences are chained when computing "until when" (a window that
#: reopens before it closes, e.g. every minute for an hour, never ends: say "at least").
_MAX_CHAIN = 5000
#: The same across windows of different entries (each link asks every window once).
_MAX_LINKS = 200


@dataclass(frozen=True, slots=True)
class Window:
    """One freeze window: absolute (``start``/``end``) or recurring (``cron``/``duration``/``timezone``)."""

    index: int  # position in spec.freeze, for messages
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: timedelta | None = None
    timezone: str = "UTC"

    def describe(self) -> str:
        if self.cron is not None:
            assert self.duration is not None
            return f"spec.freeze[{self.index}] ({self.cron!r} for {_short(self.duration)}, {self.timezone})"
        assert self.start is not None and self.end is not None
        return f"spec.freeze[{self.index}] ({_rfc3339(self.start)} to {_rfc3339(self.end)})"

    def open_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """``(opened, closes)`` of the occurrence covering ``now`` (aware), else None."""
        if self.cron is None:
            assert self.start is not None and self.end is not None
            return (self.start, self.end) if self.start <= now < self.end else None
        assert self.duration is not None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        # cronsim walks strictly before its start: one second later so a fire at `now` counts.
        fired = next(CronSim(self.cron, local + timedelta(seconds=1), reverse=True)).astimezone(UTC)
        if now >= fired + self.duration:
            return None
        closes = fired + self.duration
        following = CronSim(self.cron, fired.astimezone(zone))
        for _ in range(_MAX_CHAIN):
            nxt = next(following).astimezone(UTC)
            if nxt > closes:
                break
            closes = max(closes, nxt + self.duration)
        return fired, closes


@dataclass(frozen=True, slots=True)
class Freeze:
    """The freeze in force at some instant: which windows, and until when deploys wait."""

    until: datetime
    windows: tuple[Window, ...]

    @property
    def message(self) -> str:
        names = ", ".join(w.describe() for w in self.windows)
        return f"deploys are frozen until {_rfc3339(self.until)} by {names}"


def active(windows: Sequence[Window], now: datetime | None = None) -> Freeze | None:
    """The freeze in force at ``now`` (default: the current time), or None.

    Overlapping windows of different entries chain too: the freeze lasts until no window covers
    its end (a chain that never ends is cut after ``_MAX_LINKS`` links: "until at least").
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    hits: list[Window] = []
    until: datetime | None = None
    probe = now
    for _ in range(_MAX_LINKS):
        extended = False
        for window in windows:
            span = window.open_at(probe)
            if span is None:
                continue
            if window not in hits:
                hits.append(window)
            if until is None or span[1] > until:
                until, extended = span[1], True
        if not extended or until is None or until == probe:
            break
        probe = until
    return Freeze(until, tuple(hits)) if until is not None and hits else None


def parse_windows(raw: Any) -> tuple[Window, ...]:
    """Read ``spec.freeze``; raise ``SpecError`` naming the entry and field at fault."""
    return tuple(parse_window(item, i) for i, item in enumerate(FIELDS.items(raw, "freeze", what="a list of windows")))


def parse_window(raw: Any, index: int) -> Window:
    where = f"freeze[{index}]"
    raw = FIELDS.mapping(raw, where, required=True, allowed=("start", "end", "cron", "duration", "timezone"))
    absolute = "start" in raw or "end" in raw
    recurring = "cron" in raw or "duration" in raw or "timezone" in raw
    if absolute == recurring or (absolute and not ("start" in raw and "end" in raw)):
        raise SpecError(where, "give either start and end, or cron and duration (with an optional timezone)")
    if absolute:
        start = _timestamp(raw.get("start"), f"{where}.start")
        end = _timestamp(raw.get("end"), f"{where}.end")
        if end <= start:
            raise SpecError(f"{where}.end", f"{raw['end']!r} is not after start {raw['start']!r}")
        return Window(index, start=start, end=end)
    cron = raw.get("cron")
    if not isinstance(cron, str) or not cron.strip():
        raise SpecError(f"{where}.cron", "is required with duration: five fields, e.g. '0 18 * * FRI'")
    cron = " ".join(cron.split())
    if len(cron.split()) != 5:
        raise SpecError(f"{where}.cron", f"{cron!r} must have five fields: minute hour day-of-month month day-of-week")
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise SpecError(f"{where}.cron", f"{cron!r} is not a valid cron expression: {exc}") from None
    if "duration" not in raw:
        raise SpecError(f"{where}.duration", "is required with cron (how long each window stays open, e.g. 64h)")
    seconds = FIELDS.duration(raw.get("duration"), f"{where}.duration", more_than=0)
    zone = raw.get("timezone", "UTC")
    if not isinstance(zone, str) or not zone:
        raise SpecError(f"{where}.timezone", f"must be an IANA time zone name such as Asia/Tokyo (got {zone!r})")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(f"{where}.timezone", f"{zone!r} is not a known IANA time zone (e.g. Europe/Berlin)") from None
    return Window(index, cron=cron, duration=timedelta(seconds=seconds), timezone=zone)


def _timestamp(text: Any, field: str) -> datetime:
    if not isinstance(text, str) or not text:
        raise SpecError(field, f"must be an RFC 3339 time such as 2026-12-24T00:00:00Z (got {text!r})")
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise SpecError(field, f"{text!r} is not an RFC 3339 time such as 2026-12-24T00:00:00Z") from None
    if value.tzinfo is None or "T" not in text.upper():
        raise SpecError(field, f"{text!r} needs a date, a time and an offset (Z or +hh:mm)")
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(value: timedelta) -> str:
    return format_duration(value.total_seconds())
