"""Field readers: what a duration, a count, a switch, a name or a path is, said once.

Environment specs (:mod:`gitopsd.spec`, :mod:`gitopsd.freeze`, :mod:`gitopsd.gates.spec`), the
daemon's config file (:mod:`gitopsd.config`) and the CLI's flag converters
(:mod:`gitopsd.cli.common`) read the same kinds of value. Each used to have its own copy of the
rules and its own wording; here there is one of each, in two layers:

- checks (``duration_seconds``, ``check_limits``, ``check_dns_label``, ``normalise_path``, ...)
  take a plain value and raise :class:`Invalid` with the problem alone (``must be at least
  1s``), naming neither field nor value: the CLI puts ``--flag VALUE:`` in front;
- a :class:`Fields` reader, bound to its caller's error type (``SpecError`` for specs, the config
  file's ``ConfigError``), takes a raw decoded value and the field's path and returns a typed
  value, or raises that error as ``path: problem (got VALUE)``.

Durations are Go's (and so Kubernetes'): ``300ms``, ``30s``, ``5m``, ``1h30m``, ``1.5h``, or a bare
``0``, with the same grammar as the CRD's CEL rule (manifests/gitopsd/crd.yaml), so a value the
API server admits is one the daemon reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitopsd.errors import SpecError
from gitopsd.fieldcheck import unknown_field

#: Kubernetes name forms: a namespace (and most names) is a DNS label, an object name a subdomain.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RULES = "lowercase letters, digits and '-', starting and ending with a letter or digit"
SUBDOMAIN_RULES = "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
DURATION_FORM = "must be a duration such as 30s, 5m or 1h"

_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

#: Builds the caller's exception from a field's path and the problem (``SpecError`` has this shape).
Fail = Callable[[str, str], Exception]


class Invalid(ValueError):
    """A value a check refused; the message is the problem alone (``must be more than 0``)."""


# --- checks: plain values in, Invalid out ---------------------------------------------------------


def duration_seconds(text: str) -> float:
    """A Go duration (``90s``, ``1m30s``, ``1.5h``, ``500ms``, ``0``) in seconds."""
    if text == "0":
        return 0.0
    if not _DURATION.fullmatch(text):  # not match: "$" would let a trailing newline through
        raise Invalid(DURATION_FORM)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The short Go form of a duration, for messages: ``1h5m``, ``30s``, ``500ms``."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _bound_of_duration(seconds: float) -> str:
    return "0" if seconds == 0 else format_duration(seconds)


def check_limits(
    value: float,
    *,
    at_least: float | None = None,
    more_than: float | None = None,
    at_most: float | None = None,
    show: Callable[[float], str] = _bound_of_duration,
) -> None:
    """Refuse ``value`` outside the bounds, saying all of them (``must be more than 0 and at most 5m``)."""
    low_ok = (at_least is None or value >= at_least) and (more_than is None or value > more_than)
    if low_ok and (at_most is None or value <= at_most):
        return
    said = [f"at least {show(at_least)}"] if at_least is not None else []
    said += [f"more than {show(more_than)}"] if more_than is not None else []
    said += [f"at most {show(at_most)}"] if at_most is not None else []
    raise Invalid("must be " + " and ".join(said))


def check_dns_label(text: str, max_length: int = 63) -> None:
    """A DNS label (a namespace, most names) of at most ``max_length`` characters."""
    if len(text) > max_length or not DNS_LABEL.fullmatch(text):
        raise Invalid(f"{LABEL_RULES}, at most {max_length} characters")


def check_dns_subdomain(text: str, max_length: int = 253) -> None:
    """A DNS subdomain (an object's name) of at most ``max_length`` characters."""
    if len(text) > max_length or not DNS_SUBDOMAIN.fullmatch(text):
        raise Invalid(f"{SUBDOMAIN_RULES}, at most {max_length} characters")


def normalise_path(text: str, root: str = "the repository") -> str:
    """A directory relative to ``root``: no ``./`` or leading ``/`` (both mean the root), no way out through ``..``.

    ``"./deploy/base/../prod/"`` is ``"deploy/prod"``; the root itself is ``""``.
    """
    if "\0" in text:
        raise Invalid("must not contain a NUL character")
    parts: list[str] = []
    for part in text.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Invalid(f"{text!r} points outside {root}")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def one_of(choices: Sequence[str]) -> str:
    """``A, B or C``."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def shown(raw: Any) -> str:
    """A decoded value as a message shows it: its YAML shape for collections, else its repr (cut short)."""
    if isinstance(raw, Mapping):
        return "an object"
    if isinstance(raw, list | tuple):
        return "a list"
    text = repr(raw)
    return text if len(text) <= 80 else text[:79] + "…"


# --- readers: raw decoded values in, the caller's error out ---------------------------------------


@dataclass(frozen=True, slots=True)
class Fields:
    """The readers, raising ``fail(path, problem)``; the problem ends with ``(got VALUE)`` where it helps."""

    fail: Fail

    def _refuse(self, path: str, problem: str, raw: Any) -> Exception:
        return self.fail(path, f"{problem} (got {shown(raw)})")

    def mapping(
        self, raw: Any, path: str, *, required: bool = False, allowed: Iterable[str] | None = None
    ) -> Mapping[str, Any]:
        """An object (``{}`` when absent and not ``required``); with ``allowed``, no other keys."""
        if raw is None:
            if required:
                raise self.fail(path, "is required")
            return {}
        if not isinstance(raw, Mapping):
            raise self._refuse(path, "must be an object", raw)
        if allowed is not None:
            unknown = unknown_field(raw, dict.fromkeys(allowed), path)
            if unknown:
                raise self.fail(unknown[0].removeprefix("."), f"unknown field ({unknown[1]})")
        return raw

    def items(self, raw: Any, path: str, *, what: str = "a list") -> list[Any]:
        """A list (``[]`` when absent); ``what`` names it in the message (``a list of windows``)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self._refuse(path, f"must be {what}", raw)
        return raw

    def strings(self, raw: Any, path: str) -> tuple[str, ...]:
        """A list of non-empty strings (``()`` when absent)."""
        values = self.items(raw, path, what="a list of strings")
        for index, value in enumerate(values):
            self.string(value, f"{path}[{index}]")
        return tuple(values)

    def boolean(self, raw: Any, path: str) -> bool:
        """``true`` or ``false``, nothing that merely looks like one (``"yes"``, ``1``)."""
        if not isinstance(raw, bool):
            raise self._refuse(path, "must be true or false", raw)
        return raw

    def optional_string(self, raw: Any, path: str) -> str | None:
        """A string; absent or empty is None."""
        if raw is None or raw == "":
            return None
        if isinstance(raw, int | float):  # bool included: YAML reads true, 3 and 1.5 as such unless quoted
            raise self.fail(path, f"must be a string (got {raw!r}; quote it in YAML)")
        if not isinstance(raw, str):
            raise self._refuse(path, "must be a string", raw)
        return raw

    def string(self, raw: Any, path: str) -> str:
        """A string that must be given and not empty."""
        value = self.optional_string(raw, path)
        if value is None:
            raise self.fail(path, "is required")
        return value

    def text(self, raw: Any, path: str) -> str:
        """A string that must be given and not blank, with leading and trailing space removed."""
        value = self.string(raw, path).strip()
        if not value:
            raise self.fail(path, "must not be blank")
        return value

    def choice(self, raw: Any, path: str, choices: Sequence[str]) -> str:
        """One of ``choices``, exactly as written."""
        if not isinstance(raw, str) or raw not in choices:
            raise self._refuse(path, f"must be {one_of(choices)}", raw)
        return raw

    def whole_number(self, raw: Any, path: str, *, low: int, high: int | None = None) -> int:
        """An integer from ``low`` to ``high`` (inclusive); not a bool, not a float."""
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < low or (high is not None and raw > high):
            limits = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise self._refuse(path, f"must be a whole number {limits}", raw)
        return raw

    def number(self, raw: Any, path: str) -> float:
        """A finite number, written unquoted."""
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.fail(path, f"must be a number (got {shown(raw)}; leave it unquoted in YAML)")
        if not math.isfinite(raw):
            raise self._refuse(path, "must be a finite number", raw)
        return float(raw)

    def duration(
        self,
        raw: Any,
        path: str,
        *,
        at_least: float | None = None,
        more_than: float | None = None,
        at_most: float | None = None,
    ) -> float:
        """A Go duration string in seconds, within the bounds given (in seconds)."""
        try:
            if not isinstance(raw, str):
                raise Invalid(DURATION_FORM)
            seconds = duration_seconds(raw)
            check_limits(seconds, at_least=at_least, more_than=more_than, at_most=at_most)
        except Invalid as exc:
            raise self._refuse(path, str(exc), raw) from None
        return seconds

    def dns_label(self, raw: Any, path: str, *, what: str = "a name", max_length: int = 63) -> str:
        """A DNS label: ``what`` says what it names (``a namespace name``)."""
        value = self.string(raw, path)
        try:
            check_dns_label(value, max_length)
        except Invalid as exc:
            raise self.fail(path, f"{value!r} is not {what} ({exc})") from None
        return value

    def dns_subdomain(self, raw: Any, path: str, *, what: str = "an object name") -> str:
        """A DNS subdomain: ``what`` says what it names."""
        value = self.string(raw, path)
        try:
            check_dns_subdomain(value)
        except Invalid as exc:
            raise self.fail(path, f"{value!r} is not {what} ({exc})") from None
        return value

    def relative_path(self, raw: Any, path: str, *, root: str = "the repository") -> str:
        """A directory under ``root``, normalised (see :func:`normalise_path`); absent is the root, ``""``."""
        value = self.optional_string(raw, path)
        if value is None:
            return ""
        try:
            return normalise_path(value, root)
        except Invalid as exc:
            raise self.fail(path, str(exc)) from None


#: The readers of an Environment's spec: errors are ``SpecError`` (``spec.<path>: ...``).
SPEC = Fields(SpecError)
