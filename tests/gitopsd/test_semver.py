"""Version ranges over tags: the grammar and the answers Masterminds/semver (so Flux) gives."""

from __future__ import annotations

import pytest

from gitopsd.semver import newest, newest_first, parse_constraint, parse_version

# (range, version, allowed): the cases follow Masterminds/semver v3's documented rules.
ALLOWS = [
    # plain comparisons, spaces or commas joining terms
    (">=1.0.0 <2.0.0", "1.0.0", True),
    (">=1.0.0 <2.0.0", "v1.9.9", True),
    (">=1.0.0 <2.0.0", "2.0.0", False),
    (">=1.0, <2.0", "1.5.0", True),
    (">=1.0, <2.0", "2.0.0", False),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "4.2.3", True),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "3.5.0", False),
    ("=>1.2 =<1.4", "1.4.0", True),
    (">1.2.3", "1.2.3", False),
    (">1.2.3", "1.2.4", True),
    ("<1.2.3", "1.2.2", True),
    ("<=1.2.3", "1.2.3", True),
    # exact and not-equal
    ("1.2.3", "1.2.3", True),
    ("=1.2.3", "v1.2.3", True),
    ("1.2.3", "1.2.4", False),
    ("!=1.2.3", "1.2.4", True),
    ("!=1.2.3", "1.2.3", False),
    ("!=1.x", "1.4.0", False),
    ("!=1.x", "2.0.0", True),
    ("!=1.2.x", "1.3.0", True),
    # build metadata is ignored
    ("1.2.3", "1.2.3+build.7", True),
    # tilde: patch level when the minor is given, major level when not
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1.2.3", "1.2.2", False),
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.3.0", False),
    ("~1", "1.9.0", True),
    ("~1", "2.0.0", False),
    ("~>1.2", "1.2.5", True),
    ("~1.x", "1.7.0", True),
    # caret: the leftmost non-zero part is fixed
    ("^1.2.3", "1.9.9", True),
    ("^1.2.3", "1.2.2", False),
    ("^1.2.3", "2.0.0", False),
    ("^1.2", "1.2.0", True),
    ("^1", "1.99.0", True),
    ("^1.x", "1.0.0", True),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.2", "0.2.0", True),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.9", True),
    ("^0.0", "0.1.0", False),
    ("^0", "0.9.0", True),
    ("^0", "1.0.0", False),
    # wildcards and missing parts
    ("1.x", "1.0.0", True),
    ("1.x", "1.99.3", True),
    ("1.x", "2.0.0", False),
    ("1.2.*", "1.2.7", True),
    ("1.2.*", "1.3.0", False),
    ("1.2.X", "1.2.0", True),
    ("1.2", "1.2.5", True),
    ("1.2", "1.3.0", False),
    ("1", "1.8.0", True),
    ("*", "0.0.1", True),
    ("*", "99.0.0", True),
    (">=1.2.x", "1.2.0", True),
    (">1.2", "1.2.9", False),
    (">1.2", "1.3.0", True),
    (">1", "1.9.0", False),
    (">1", "2.0.0", True),
    ("<=2.x", "2.9.9", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.2", "1.2.9", True),
    ("<=1.2", "1.3.0", False),
    ("<1.x", "0.9.0", True),
    ("<1.x", "1.0.0", False),
    # hyphen ranges
    ("1.2 - 1.4.5", "1.2.0", True),
    ("1.2 - 1.4.5", "1.4.5", True),
    ("1.2 - 1.4.5", "1.4.6", False),
    ("2.3.4 - 4.5", "4.5.9", True),
    ("2.3.4 - 4.5", "4.6.0", False),
    # prereleases only when the (alternative of the) range names one
    ("*", "1.0.0-rc.1", False),
    (">=1.0.0", "1.1.0-beta", False),
    ("^1.2", "1.3.0-rc.1", False),
    (">=1.3.0-0", "1.3.0-rc.1", True),
    (">=1.3.0-0", "1.3.0", True),
    (">=1.3.0-rc.2", "1.3.0-rc.10", True),
    (">=1.3.0-rc.2", "1.3.0-rc.1", False),
    (">=1.3.0-0 <1.4.0", "1.3.5-alpha", True),
    (">=2.0.0-0 || >=1.0.0", "1.5.0-rc.1", False),
    (">=2.0.0-0 || >=1.0.0", "2.0.0-rc.1", True),
    # tags that are not versions never match
    ("*", "latest", False),
    ("*", "release-1.0", False),
    ("*", "1.2.3.4", False),
    ("*", "V1.0.0", False),
    ("*", "1.0.0-rc.01", False),
]


@pytest.mark.parametrize(("text", "version", "allowed"), ALLOWS)
def test_allows(text: str, version: str, allowed: bool) -> None:
    """Each range admits exactly the versions Masterminds/semver admits."""
    assert parse_constraint(text).allows(version) is allowed


NEWEST = [
    (["v1.9.0", "v1.10.0", "v1.2.0"], "*", "v1.10.0"),
    (["v1.9.0", "v1.10.0", "v2.0.0"], "^1", "v1.10.0"),
    (["v1.0.0", "v1.1.0-rc.1"], "*", "v1.0.0"),
    (["v1.0.0", "v1.1.0-rc.1", "v1.1.0-rc.2"], ">=1.1.0-0", "v1.1.0-rc.2"),
    (["v1.1.0-rc.9", "v1.1.0-rc.10"], ">=1.1.0-0", "v1.1.0-rc.10"),
    (["v1.1.0-rc.1", "v1.1.0"], ">=1.1.0-0", "v1.1.0"),
    (["latest", "stable", "v0.1.0"], ">=0.0.0", "v0.1.0"),
    (["1.0.0", "v1.0.0"], "1.0.0", "v1.0.0"),  # one version, two names: the choice is by name, not order
    (["v1.0.0", "1.0.0"], "1.0.0", "v1.0.0"),
    (["v1.2", "v1.2.1"], "~1.2", "v1.2.1"),
    (["v1.0.0", "v2.0.0"], ">=3", None),
    ([], "*", None),
]


@pytest.mark.parametrize(("tags", "text", "expected"), NEWEST)
def test_newest(tags: list[str], text: str, expected: str | None) -> None:
    """The newest tag in range wins by version precedence, not by name or listing order."""
    assert newest(tags, parse_constraint(text)) == expected


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    (">=", "cannot read '>='"),
    ("1.0 ||", "alternative 2"),
    ("|| 1.0", "alternative 1"),
    ("abc", "cannot read 'abc'"),
    (">=1.0.0,", "ends with a separator"),
    ("1.2.3.4", "cannot read '.4'"),
    (">=1 <2 junk", "cannot read 'junk'"),
    (">>1.0", "cannot read '>>1.0'"),
]


@pytest.mark.parametrize(("text", "said"), BAD)
def test_bad_ranges_say_what_is_wrong(text: str, said: str) -> None:
    """A range that cannot be read raises ValueError quoting the part that failed."""
    with pytest.raises(ValueError) as info:
        parse_constraint(text)
    assert said in str(info.value)


def test_parse_version_coerces_like_flux() -> None:
    """Tags with a leading v or missing parts read as full versions; others read as None."""
    v = parse_version("v1.2")
    assert v is not None and (v.major, v.minor, v.patch) == (1, 2, 0)
    v = parse_version("2.0.0-rc.1+abc")
    assert v is not None and v.prerelease == "rc.1" and v.build == "abc"
    assert parse_version("v") is None
    assert parse_version("1.2.3-") is None


def test_newest_first_orders_versions_and_drops_other_tags() -> None:
    """Messages list version tags highest first and leave non-version tags out."""
    assert newest_first(["v1.9.0", "nightly", "v1.10.0", "v1.10.0-rc.1"]) == ["v1.10.0", "v1.10.0-rc.1", "v1.9.0"]


def test_spec_uses_this_grammar() -> None:
    """The Environment spec parser rejects a bad range with this module's reason."""
    from gitopsd.errors import SpecError
    from gitopsd.spec import parse_spec

    with pytest.raises(SpecError, match=r"spec\.source\.semver: '>=1 <' is not a valid version range"):
        parse_spec({"source": {"url": "https://example.com/x.git", "semver": ">=1 <"}})
    spec = parse_spec({"source": {"url": "https://example.com/x.git", "semver": "~1.2 || ^2"}})
    assert spec.source.ref == "~1.2 || ^2"
