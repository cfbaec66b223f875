"""Table tests of the field readers every spec, config and flag goes through (gitopsd/fields.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gitopsd.errors import GitopsdError, SpecError
from gitopsd.fields import (
    SPEC,
    Fields,
    Invalid,
    check_dns_label,
    check_dns_subdomain,
    check_limits,
    duration_seconds,
    format_duration,
    normalise_path,
    one_of,
    shown,
)


class FieldProblem(GitopsdError):
    """A caller's own error type, to show readers raise whatever they are bound to."""


OTHER = Fields(lambda path, problem: FieldProblem(f"{path} => {problem}"))


# --- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2h0m5s", 7205.0),
        ("500ms", 0.5),
        ("1500us", 0.0015),
        ("1500µs", 0.0015),
        ("10ns", 1e-8),
        ("1m1m", 120.0),  # Go adds repeated units up
    ],
)
def test_durations_in_go_form(text: str, seconds: float) -> None:
    """Go's duration forms (and so Kubernetes') are read as seconds."""
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "30", "5x", "1d", "1y", "-5s", "+5s", "5 m", " 5m", "5m ", ".5h", "5.h", "m", "0.0", "5m\n"]
)
def test_durations_outside_the_crd_grammar_are_refused(text: str) -> None:
    """Whatever the CRD's CEL rule refuses (days, signs, spaces, bare numbers) is refused here too."""
    with pytest.raises(Invalid, match=r"^must be a duration such as 30s, 5m or 1h$"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (3725, "1h2m5s"), (59.6, "1m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations print back in Go's short form; under a second in milliseconds."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "limits", "problem"),
    [
        (0.5, {"at_least": 1}, "must be at least 1s"),
        (0, {"more_than": 0}, "must be more than 0"),
        (301, {"more_than": 0, "at_most": 300}, "must be more than 0 and at most 5m"),
        (0, {"more_than": 0, "at_most": 300}, "must be more than 0 and at most 5m"),
        (61, {"at_most": 60}, "must be at most 1m"),
    ],
)
def test_limits_say_every_bound(value: float, limits: dict[str, float], problem: str) -> None:
    """A value out of bounds is refused with all the bounds said, as durations by default."""
    with pytest.raises(Invalid) as err:
        check_limits(value, **limits)
    assert str(err.value) == problem


@pytest.mark.parametrize(
    ("value", "limits"),
    [(1, {"at_least": 1}), (0.001, {"more_than": 0}), (300, {"more_than": 0, "at_most": 300}), (-5, {})],
)
def test_limits_accept_values_within(value: float, limits: dict[str, float]) -> None:
    """Bounds are inclusive for at_least and at_most, exclusive for more_than."""
    check_limits(value, **limits)


def test_limits_shown_another_way() -> None:
    """``show`` formats the bounds (the CLI's plain seconds)."""
    with pytest.raises(Invalid, match=r"^must be at least 0 and at most 600$"):
        check_limits(601, at_least=0, at_most=600, show="{:g}".format)


@pytest.mark.parametrize(
    ("check", "text", "ok"),
    [
        (check_dns_label, "shop-prod", True),
        (check_dns_label, "a" * 63, True),
        (check_dns_label, "a" * 64, False),
        (check_dns_label, "Shop", False),
        (check_dns_label, "-shop", False),
        (check_dns_label, "shop.prod", False),
        (check_dns_label, "", False),
        (check_dns_label, "shop\n", False),
        (check_dns_subdomain, "shop.prod-1", True),
        (check_dns_subdomain, "a" * 253, True),
        (check_dns_subdomain, "a" * 254, False),
        (check_dns_subdomain, "shop..prod", False),
        (check_dns_subdomain, "ops/shop", False),
        (check_dns_subdomain, "shop.prod\n", False),
    ],
)
def test_dns_names(check: Callable[[str], None], text: str, ok: bool) -> None:
    """Kubernetes' name forms: labels (namespaces) and subdomains (object names), with their lengths."""
    if ok:
        check(text)
    else:
        with pytest.raises(Invalid, match="lowercase letters, digits"):
            check(text)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("", ""),
        ("/", ""),
        (".", ""),
        ("./deploy/base/../overlays/prod/", "deploy/overlays/prod"),
        ("deploy\\prod", "deploy/prod"),
        ("a/b/../../c", "c"),
        ("/deploy", "deploy"),
    ],
)
def test_relative_paths_are_normalised(text: str, normal: str) -> None:
    """``./``, ``/`` and ``..`` inside the root are folded away; the root is the empty string."""
    assert normalise_path(text) == normal


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("..", "'..' points outside the repository"),
        ("a/../../etc", "'a/../../etc' points outside the repository"),
        ("deploy\0x", "must not contain a NUL character"),
    ],
)
def test_relative_paths_cannot_escape(text: str, problem: str) -> None:
    """A path that climbs out of the root, or holds a NUL, is refused."""
    with pytest.raises(Invalid) as err:
        normalise_path(text)
    assert str(err.value) == problem


def test_one_of_and_shown() -> None:
    """Choices read as a sentence; values show their YAML shape or their repr, cut short."""
    assert [one_of(("a",)), one_of(("a", "b")), one_of(("a", "b", "c"))] == ["a", "a or b", "a, b or c"]
    assert [shown({}), shown([1]), shown("x"), shown(3)] == ["an object", "a list", "'x'", "3"]
    assert len(shown("x" * 500)) == 80


# --- readers --------------------------------------------------------------------------------------

Read = Callable[[Fields, Any], Any]

GOOD: list[tuple[str, Read, Any, Any]] = [
    ("mapping", lambda f, v: f.mapping(v, "p"), {"a": 1}, {"a": 1}),
    ("mapping absent", lambda f, v: f.mapping(v, "p"), None, {}),
    ("mapping allowed", lambda f, v: f.mapping(v, "p", allowed=("a", "b")), {"b": 2}, {"b": 2}),
    ("items", lambda f, v: f.items(v, "p"), [1, "x"], [1, "x"]),
    ("items absent", lambda f, v: f.items(v, "p"), None, []),
    ("strings", lambda f, v: f.strings(v, "p"), ["a", "b"], ("a", "b")),
    ("boolean", lambda f, v: f.boolean(v, "p"), False, False),
    ("optional string", lambda f, v: f.optional_string(v, "p"), "x", "x"),
    ("optional string empty", lambda f, v: f.optional_string(v, "p"), "", None),
    ("optional string absent", lambda f, v: f.optional_string(v, "p"), None, None),
    ("string", lambda f, v: f.string(v, "p"), " x ", " x "),
    ("text", lambda f, v: f.text(v, "p"), " main ", "main"),
    ("choice", lambda f, v: f.choice(v, "p", ("Hold", "Rollback")), "Hold", "Hold"),
    ("whole number", lambda f, v: f.whole_number(v, "p", low=1, high=100), 100, 100),
    ("whole number open", lambda f, v: f.whole_number(v, "p", low=0), 10**9, 10**9),
    ("number int", lambda f, v: f.number(v, "p"), 2, 2.0),
    ("number float", lambda f, v: f.number(v, "p"), 0.01, 0.01),
    ("duration", lambda f, v: f.duration(v, "p", at_least=1), "1m30s", 90.0),
    ("duration zero", lambda f, v: f.duration(v, "p"), "0", 0.0),
    ("duration bounded", lambda f, v: f.duration(v, "p", more_than=0, at_most=300), "5m", 300.0),
    ("dns label", lambda f, v: f.dns_label(v, "p"), "shop", "shop"),
    ("dns subdomain", lambda f, v: f.dns_subdomain(v, "p"), "shop.v2", "shop.v2"),
    ("relative path", lambda f, v: f.relative_path(v, "p"), "./a/b/", "a/b"),
    ("relative path absent", lambda f, v: f.relative_path(v, "p"), None, ""),
]


@pytest.mark.parametrize(("name", "read", "raw", "value"), GOOD, ids=[g[0] for g in GOOD])
def test_readers_accept(name: str, read: Read, raw: Any, value: Any) -> None:
    """Each reader returns the typed value for good input."""
    assert read(SPEC, raw) == value


BAD: list[tuple[str, Read, Any, str]] = [
    ("mapping required", lambda f, v: f.mapping(v, "p", required=True), None, "p: is required"),
    ("mapping of a list", lambda f, v: f.mapping(v, "p"), [1], "p: must be an object (got a list)"),
    ("mapping of a string", lambda f, v: f.mapping(v, "p"), "x", "p: must be an object (got 'x')"),
    ("mapping unknown key", lambda f, v: f.mapping(v, "p", allowed=("timeout",)), {"timout": 1},
     "p.timout: unknown field (did you mean 'timeout'?)"),
    ("mapping unknown, top", lambda f, v: f.mapping(v, "", allowed=("a", "b")), {"zzz": 1},
     "zzz: unknown field (known: a, b)"),
    ("items of an object", lambda f, v: f.items(v, "p"), {"a": 1}, "p: must be a list (got an object)"),
    ("items named", lambda f, v: f.items(v, "p", what="a list of windows"), "x",
     "p: must be a list of windows (got 'x')"),
    ("strings of a string", lambda f, v: f.strings(v, "p"), "a", "p: must be a list of strings (got 'a')"),
    ("strings with a number", lambda f, v: f.strings(v, "p"), ["a", 3], "p[1]: must be a string (got 3; quote it"),
    ("strings with an empty", lambda f, v: f.strings(v, "p"), ["a", ""], "p[1]: is required"),
    ("boolean of a string", lambda f, v: f.boolean(v, "p"), "yes", "p: must be true or false (got 'yes')"),
    ("boolean of a number", lambda f, v: f.boolean(v, "p"), 1, "p: must be true or false (got 1)"),
    ("optional string number", lambda f, v: f.optional_string(v, "p"), 3,
     "p: must be a string (got 3; quote it in YAML)"),
    ("optional string bool", lambda f, v: f.optional_string(v, "p"), True, "p: must be a string (got True; quote"),
    ("optional string list", lambda f, v: f.optional_string(v, "p"), ["a"], "p: must be a string (got a list)"),
    ("string absent", lambda f, v: f.string(v, "p"), None, "p: is required"),
    ("string empty", lambda f, v: f.string(v, "p"), "", "p: is required"),
    ("text blank", lambda f, v: f.text(v, "p"), "  ", "p: must not be blank"),
    ("choice", lambda f, v: f.choice(v, "p", ("Skip", "Pass", "Fail")), "Maybe",
     "p: must be Skip, Pass or Fail (got 'Maybe')"),
    ("choice of a number", lambda f, v: f.choice(v, "p", ("a", "b")), 1, "p: must be a or b (got 1)"),
    ("whole number too big", lambda f, v: f.whole_number(v, "p", low=1, high=100), 101,
     "p: must be a whole number from 1 to 100 (got 101)"),
    ("whole number too small", lambda f, v: f.whole_number(v, "p", low=1), 0,
     "p: must be a whole number of at least 1 (got 0)"),
    ("whole number bool", lambda f, v: f.whole_number(v, "p", low=0), True, "p: must be a whole number of at least 0"),
    ("whole number float", lambda f, v: f.whole_number(v, "p", low=0), 1.0, "p: must be a whole number"),
    ("whole number string", lambda f, v: f.whole_number(v, "p", low=0), "5", "p: must be a whole number"),
    ("number string", lambda f, v: f.number(v, "p"), "0.01", "p: must be a number (got '0.01'; leave it unquoted"),
    ("number bool", lambda f, v: f.number(v, "p"), False, "p: must be a number (got False"),
    ("number nan", lambda f, v: f.number(v, "p"), float("nan"), "p: must be a finite number (got nan)"),
    ("number inf", lambda f, v: f.number(v, "p"), float("inf"), "p: must be a finite number (got inf)"),
    ("duration word", lambda f, v: f.duration(v, "p"), "soon",
     "p: must be a duration such as 30s, 5m or 1h (got 'soon')"),
    ("duration number", lambda f, v: f.duration(v, "p"), 5, "p: must be a duration such as 30s, 5m or 1h (got 5)"),
    ("duration absent", lambda f, v: f.duration(v, "p"), None,
     "p: must be a duration such as 30s, 5m or 1h (got None)"),
    ("duration days", lambda f, v: f.duration(v, "p"), "2d", "p: must be a duration such as 30s, 5m or 1h (got '2d')"),
    ("duration short", lambda f, v: f.duration(v, "p", at_least=1), "100ms", "p: must be at least 1s (got '100ms')"),
    ("duration zero", lambda f, v: f.duration(v, "p", more_than=0), "0s", "p: must be more than 0 (got '0s')"),
    ("duration long", lambda f, v: f.duration(v, "p", more_than=0, at_most=300), "6m",
     "p: must be more than 0 and at most 5m (got '6m')"),
    ("dns label", lambda f, v: f.dns_label(v, "p", what="a namespace name"), "Shop_Prod",
     "p: 'Shop_Prod' is not a namespace name (lowercase letters, digits and '-', starting and ending with a letter or"
     " digit, at most 63 characters)"),
    ("dns label short", lambda f, v: f.dns_label(v, "p", max_length=5), "abcdef", "p: 'abcdef' is not a name ("),
    ("dns label absent", lambda f, v: f.dns_label(v, "p"), None, "p: is required"),
    ("dns subdomain", lambda f, v: f.dns_subdomain(v, "p"), "ops/shop", "p: 'ops/shop' is not an object name ("),
    ("relative path out", lambda f, v: f.relative_path(v, "p"), "../x", "p: '../x' points outside the repository"),
    ("relative path root", lambda f, v: f.relative_path(v, "p", root="the cache"), "..",
     "p: '..' points outside the cache"),
    ("relative path NUL", lambda f, v: f.relative_path(v, "p"), "a\0", "p: must not contain a NUL character"),
    ("relative path number", lambda f, v: f.relative_path(v, "p"), 7, "p: must be a string (got 7"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "read", "raw", "message"), BAD, ids=[b[0] for b in BAD])
def test_readers_refuse_naming_field_and_value(name: str, read: Read, raw: Any, message: str) -> None:
    """Each reader refuses bad input with ``spec.<path>: <problem>`` as a SpecError."""
    with pytest.raises(SpecError) as err:
        read(SPEC, raw)
    assert str(err.value).startswith(f"spec.{message}"), str(err.value)
    assert err.value.field == message.split(":")[0]


@pytest.mark.parametrize(("name", "read", "raw", "message"), BAD[:6], ids=[b[0] for b in BAD[:6]])
def test_readers_raise_the_callers_error(name: str, read: Read, raw: Any, message: str) -> None:
    """A reader bound to another error type raises that type, built from the same path and problem."""
    path, problem = message.split(": ", 1)
    with pytest.raises(FieldProblem) as err:
        read(OTHER, raw)
    assert str(err.value).startswith(f"{path} => {problem}"), str(err.value)
