"""``${NAME}`` substitution: values, built-ins, escapes, errors, opt-out (render/substitute.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.model import Revision
from gitopsd.render.errors import InvalidManifest, UnknownVariable
from gitopsd.render.substitute import MAX_VALUES, substitute, variables

SHA = "0123456789abcdef0123456789abcdef01234567"


def _sub(obj: dict[str, Any], values: dict[str, str] | None = None, revision: Revision | None = None) -> Any:
    return substitute(obj, variables(values or {}, "prod", revision or Revision("main", SHA)), "deploy/web.yaml#2")


def test_user_and_builtin_variables_fill_string_values() -> None:
    """spec.substitute values and the four built-ins replace their references, several per string."""
    obj = {
        "image": "${REGISTRY}/web:${GITOPSD_REVISION_SHORT}",
        "env": [{"value": "${GITOPSD_REVISION}"}, {"value": "${GITOPSD_REF}-${GITOPSD_ENVIRONMENT}"}],
    }
    assert _sub(obj, {"REGISTRY": "registry.example.com"}) == {
        "image": "registry.example.com/web:0123456",
        "env": [{"value": SHA}, {"value": "main-prod"}],
    }


def test_values_never_change_types_or_structure() -> None:
    """A numeric-looking value stays a string; a value with YAML syntax stays one string."""
    out = _sub(
        {"replicas": "${N}", "labels": {"v": "${GITOPSD_REVISION_SHORT}"}, "note": "${TRICKY}"},
        {"N": "3", "TRICKY": "a: b\nc: [d]  # e"},
        Revision("v1.0.0", "1234567" + "0" * 33),
    )
    assert out == {"replicas": "3", "labels": {"v": "1234567"}, "note": "a: b\nc: [d]  # e"}


def test_non_string_scalars_are_kept_as_they_are() -> None:
    """Numbers, booleans and nulls pass through untouched."""
    assert _sub({"a": 1, "b": True, "c": None, "d": 1.5, "e": [2]}) == {
        "a": 1,
        "b": True,
        "c": None,
        "d": 1.5,
        "e": [2],
    }


def test_escaped_references_become_literals_and_are_not_resolved() -> None:
    """``$${X}`` is a literal ``${X}``, even for unknown names or shell forms inside."""
    out = _sub({"script": "echo $${HOME} $${PORT:-8080} ${A}", "cost": "$5 and $$ and ${ unclosed"}, {"A": "x"})
    assert out == {"script": "echo ${HOME} ${PORT:-8080} x", "cost": "$5 and $$ and ${ unclosed"}


def test_unknown_variable_names_file_variable_and_field() -> None:
    """An undefined ${NAME} is an error with the file, the name and the field path, never ""."""
    obj = {"spec": {"containers": [{"name": "a"}, {"image": "${REGISTRY}/web"}]}}
    with pytest.raises(UnknownVariable) as err:
        _sub(obj)
    assert err.value.variable == "REGISTRY"
    assert err.value.reason == "SubstitutionFailed"
    assert str(err.value) == (
        "deploy/web.yaml#2: unknown variable ${REGISTRY} in spec.containers[1].image;"
        " define it in spec.substitute or spec.substituteFrom, or write $${REGISTRY} for a literal ${REGISTRY}"
    )


def test_field_paths_quote_keys_with_dots_or_slashes() -> None:
    """Annotation keys show up quoted in the field path."""
    with pytest.raises(UnknownVariable, match=r"in metadata\.annotations\['example\.com/owner'\]"):
        _sub({"metadata": {"annotations": {"example.com/owner": "${OWNER}"}}})


@pytest.mark.parametrize("text", ["${PORT:-8080}", "${a.b}", "${}", "${ X }", "${1ST}", "${X:=y}"])
def test_anything_but_a_plain_name_is_refused(text: str) -> None:
    """Defaults, dots, spaces and empty names are not our syntax: an error says how to escape them."""
    with pytest.raises(UnknownVariable, match=r"is not a variable reference: only \$\{NAME\} is substituted"):
        _sub({"v": f"x {text} y"}, {"PORT": "1", "X": "1"})


def test_built_ins_without_a_value_say_why() -> None:
    """No revision (a local directory) or a pinned commit: the revision/ref built-ins are errors with a reason."""
    with pytest.raises(UnknownVariable, match=r"\$\{GITOPSD_REVISION\} in tag \(there is no revision"):
        substitute({"tag": "${GITOPSD_REVISION}"}, variables({}, "local", None), "x.yaml")
    with pytest.raises(UnknownVariable, match=r"\$\{GITOPSD_REF\} in ref \(the source is pinned to a commit"):
        substitute({"ref": "${GITOPSD_REF}"}, variables({}, "dev", Revision("", SHA)), "x.yaml")
    pinned = substitute({"sha": "${GITOPSD_REVISION}"}, variables({}, "dev", Revision("", SHA)), "x.yaml")
    assert pinned == {"sha": SHA}


def test_a_user_value_fills_a_built_in_that_has_none() -> None:
    """Offline, ``--substitute GITOPSD_REVISION=...`` supplies the missing revision; a real one wins."""
    assert substitute({"t": "${GITOPSD_REVISION}"}, variables({"GITOPSD_REVISION": "x"}, "l", None), "f") == {"t": "x"}
    real = variables({"GITOPSD_REVISION": "x"}, "l", Revision("main", SHA))
    assert substitute({"t": "${GITOPSD_REVISION}"}, real, "f") == {"t": SHA}


def test_keys_are_substituted_and_a_resulting_clash_is_refused() -> None:
    """Mapping keys take values too; two keys becoming one is an error, not a silent overwrite."""
    assert _sub({"data": {"${NAME}.conf": "x"}}, {"NAME": "web"}) == {"data": {"web.conf": "x"}}
    with pytest.raises(InvalidManifest, match=r"key '\$\{NAME\}' in data becomes 'web', which is already a key"):
        _sub({"data": {"web": 1, "${NAME}": 2}}, {"NAME": "web"})


def test_opted_out_objects_are_copied_verbatim() -> None:
    """``gitopsd.dev/substitute: disabled`` leaves every ${...} (even unknown or invalid) alone."""
    obj = {
        "metadata": {"annotations": {"gitopsd.dev/substitute": "disabled"}},
        "data": {"run.sh": "echo ${HOME:-/root} ${UNKNOWN} $${X}"},
    }
    assert _sub(obj) == obj


def test_result_is_a_copy_with_aliases_unshared() -> None:
    """Shared (aliased) blocks are substituted once each and the input is not modified."""
    shared = {"v": "$${LITERAL} ${A}"}
    obj = {"one": shared, "two": shared}
    out = _sub(obj, {"A": "a"})
    assert out == {"one": {"v": "${LITERAL} a"}, "two": {"v": "${LITERAL} a"}}
    assert out["one"] is not out["two"]
    assert shared == {"v": "$${LITERAL} ${A}"}


def test_alias_bombs_and_deep_nesting_are_refused() -> None:
    """A document whose aliases expand past the limit, or nests absurdly deep, is refused by name."""
    layer: Any = ["x"] * 10
    for _ in range(6):  # 10**6 leaves plus the lists: just past MAX_VALUES
        layer = [layer] * 10
    with pytest.raises(InvalidManifest, match=f"expands to more than {MAX_VALUES} values"):
        _sub({"bomb": layer})
    deep: Any = "leaf"
    for _ in range(300):
        deep = {"a": deep}
    with pytest.raises(InvalidManifest, match="nested more than 200 levels deep"):
        _sub(deep)
