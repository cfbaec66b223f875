"""Unit tests for reading Environment specs (gitopsd/spec.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import SpecError
from gitopsd.fields import duration_seconds, format_duration, normalise_path
from gitopsd.spec import parse_environment, parse_spec


def _spec(**source: Any) -> dict[str, Any]:
    return {"source": {"url": "https://git.example.com/shop.git", **source}}


def test_minimal_branch_spec_gets_defaults() -> None:
    """A spec with only url + branch gets interval 1m, prune on, a 5m health gate."""
    spec = parse_spec(_spec(branch="main"))
    assert (spec.source.ref_kind, spec.source.ref, spec.source.path) == ("branch", "main", "")
    assert (spec.interval, spec.prune, spec.wait_timeout, spec.suspend) == (60.0, True, 300.0, False)


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ({"branch": "main", "tag": "v1"}, "spec.source", "semver, commit (got branch, tag)"),
        ({}, "spec.source", "exactly one of"),
        ({"commit": "xyz"}, "spec.source.commit", "not a commit id"),
        ({"branch": "a..b"}, "spec.source.branch", "not a valid Git ref name"),
        ({"semver": ">=1.0 <<2"}, "spec.source.semver", "not a valid version range"),
        ({"branch": "main", "path": "../../etc"}, "spec.source.path", "outside the repository"),
        ({"branch": "main", "secretRef": {}}, "spec.source.secretRef.name", "is required"),
        ({"branch": "  "}, "spec.source.branch", "must not be blank"),
    ],
)
def test_bad_source_names_the_field(source: dict[str, Any], field: str, words: str) -> None:
    """Each bad source is refused with a message naming the field."""
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(**source))
    assert str(err.value).startswith(field)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"interval": "soon"}, "spec.interval: must be a duration"),
        ({"interval": "100ms"}, "spec.interval: must be at least 1s"),
        ({"wait": {"timeout": 5}}, "spec.wait.timeout: must be a duration"),
        ({"prune": "yes"}, "spec.prune: must be true or false"),
        ({"targetNamespace": "Shop_Prod"}, "spec.targetNamespace: 'Shop_Prod' is not a valid namespace name"),
        ({"targetNamespace": "a" * 64}, "spec.targetNamespace: 'a"),
        ({"substitute": {"GITOPSD_REVISION": "x"}}, "spec.substitute.GITOPSD_REVISION: names starting with GITOPSD_"),
        ({"substitute": {"REPLICAS": 3}}, "spec.substitute.REPLICAS: must be a string"),
        ({"substitute": {"1X": "a"}}, "spec.substitute.1X: names are letters"),
    ],
)
def test_bad_settings_name_the_field(patch: dict[str, Any], message: str) -> None:
    """Bad intervals, booleans, namespaces and variables are refused with the field named."""
    with pytest.raises(SpecError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_spec({**_spec(branch="main"), **patch})


def test_bad_url_is_refused_without_its_credentials() -> None:
    """A URL that is not Git's is refused, and its userinfo is not echoed."""
    with pytest.raises(SpecError) as err:
        parse_spec({"source": {"url": "ftp://bob:hunter2@example.com/x", "branch": "main"}})
    assert "hunter2" not in str(err.value)
    assert "spec.source.url" in str(err.value)


@pytest.mark.parametrize("url", ["https://h/x.git", "ssh://git@h:22/x.git", "git@github.com:org/x.git", "file:///r"])
def test_git_url_forms_accepted(url: str) -> None:
    """https, ssh, scp-like and file URLs are all accepted."""
    assert parse_spec({"source": {"url": url, "tag": "v1.0.0"}}).source.url == url


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("500ms", 0.5), ("2h0m5s", 7205), ("0", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    """Go-style durations are read as seconds."""
    assert duration_seconds(text) == pytest.approx(seconds)


def test_format_duration_round_trips_common_values() -> None:
    """Durations print back in Go's short form."""
    assert [format_duration(s) for s in (0, 30, 90, 3600, 3725)] == ["0s", "30s", "1m30s", "1h", "1h2m5s"]


def test_paths_are_normalised() -> None:
    """./a/b/../c/ becomes a/c; the root is the empty string."""
    assert normalise_path("./deploy/base/../overlays/prod/") == "deploy/overlays/prod"
    assert normalise_path("/") == ""


def test_environment_key_must_fit_a_label_value() -> None:
    """namespace.name longer than 63 characters is refused (it is a label value)."""
    obj = {"metadata": {"namespace": "n" * 40, "name": "e" * 30}, "spec": _spec(branch="main")}
    with pytest.raises(SpecError, match="63"):
        parse_environment(obj)


def test_environment_reads_identity_and_status() -> None:
    """Identity, generation and the last applied revision come from the object."""
    obj = {
        "metadata": {"namespace": "ops", "name": "prod", "uid": "u1", "generation": 3, "resourceVersion": "9"},
        "spec": _spec(semver=">=1.0.0 <2.0.0"),
        "status": {"lastAppliedRevision": "v1.2.0@sha1:" + "a" * 40},
    }
    env = parse_environment(obj)
    assert (env.key, env.generation, env.uid) == ("ops.prod", 3, "u1")
    assert env.last_applied is not None and env.last_applied.ref == "v1.2.0"
