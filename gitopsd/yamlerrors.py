"""A YAML parse error as one line, ``FILE:LINE:COLUMN: problem``, the form editors and compilers use.

PyYAML's own text for an error is several lines quoting the source with a caret under it and
names the stream ``<unicode string>``; on a CLI's stderr, in a condition message or in an Event
that is noise around the one thing a user needs: where, and what. Used for manifests, the
daemon's config file, kubeconfigs and metrics-adapter's config.
"""

from __future__ import annotations

import yaml


def position(exc: yaml.YAMLError) -> tuple[int, int] | None:
    """The 1-based ``(line, column)`` the parser stopped at, when it says."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return mark.line + 1, mark.column + 1
    return None


def problem(exc: yaml.YAMLError) -> str:
    """What is wrong, without the quoted source: ``expected ',' or ']' (while parsing a flow sequence)``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        text = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            text = f"{text} ({exc.context})"
        return " ".join(text.split())
    return " ".join(str(exc).split()) or "invalid YAML"


def describe(exc: yaml.YAMLError, origin: str) -> str:
    """``origin:LINE:COLUMN: invalid YAML: problem`` (``origin: invalid YAML: problem`` without a position)."""
    where = position(exc)
    at = f"{origin}:{where[0]}:{where[1]}" if where else origin
    return f"{at}: invalid YAML: {problem(exc)}"
