"""Unit tests for template variables in verification queries (gitopsd/gates/templates.py)."""

from __future__ import annotations

import pytest

from gitopsd.gates.templates import TemplateError, check, resolve, variables


def test_builtins_and_substitute_keys_are_filled_in() -> None:
    """{{.namespace}}, {{ .window }} (spaces allowed) and a substitute key, each replaced, repeats too."""
    query = 'sum(rate(x{ns="{{.namespace}}",app="{{ .APP }}"}[{{.window}}])) / sum(rate(y{ns="{{.namespace}}"}[1m]))'
    out = resolve(query, {"namespace": "shop", "APP": "web", "window": "2m"})
    assert out == 'sum(rate(x{ns="shop",app="web"}[2m])) / sum(rate(y{ns="shop"}[1m]))'
    assert variables(query) == ["namespace", "APP", "window", "namespace"]


def test_an_unknown_variable_is_an_error_naming_it() -> None:
    """Never a silent empty string: the unknown name and the known ones are in the message."""
    with pytest.raises(TemplateError, match=r"unknown template variable \.app \(known: \.namespace"):
        check('x{a="{{.app}}"}', ["namespace", "environment", "revision", "window"])


@pytest.mark.parametrize("query", ['x{a="{{ .a | upper }}"}', "{{range .x}}", 'x{a="{{"}', "x}}", "{{ namespace }}"])
def test_anything_but_a_plain_variable_reference_is_refused(query: str) -> None:
    """Pipelines, actions, unbalanced braces and a name without its dot are errors."""
    with pytest.raises(TemplateError):
        check(query, ["a", "namespace", "x"])


def test_a_query_without_variables_is_unchanged() -> None:
    """PromQL's own braces are left alone."""
    assert resolve('sum(up{job="api"})', {}) == 'sum(up{job="api"})'
