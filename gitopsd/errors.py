"""The root of gitopsd's exceptions, and the reasons they carry into status.

Every failure a user can see ends up as one line: in an Environment's ``Stalled`` or ``Ready``
condition, in a Kubernetes Event, or on the CLI's stderr. So each error carries a ``reason``
(CamelCase, the condition reason) and a message that names what was wrong: the file, object,
field or remote. Ports keep their own subtrees next to them (``kube.errors``,
``sources.errors``, ...) and derive from ``GitopsdError``::

    GitopsdError
    ├── SpecError             an Environment spec that cannot be used (field named)
    ├── sources.SourceError   Git: unreachable, auth, ref not found, ...
    ├── render.RenderError    bad YAML, unknown variable, duplicate objects, kustomize failure
    ├── kube.KubeError        the API server said no, or could not be reached
    └── apply.ApplyError      a dry-run rejection, an ownership conflict, a failed prune

Each error class also says whether it may pass by itself (``transient``: Git or the API server
unreachable, a timeout, a write conflict): the Environment then keeps ``Reconciling`` and is
retried, where any other error makes it ``Stalled`` until a person changes something.
"""

from __future__ import annotations


class GitopsdError(Exception):
    """A failure with a condition ``reason`` and a message fit for a user."""

    reason: str = "Failed"
    #: May pass by itself (retry) rather than need a person (Stalled).
    transient: bool = False

    def __init__(self, message: str, *, reason: str | None = None, transient: bool | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if transient is not None:
            self.transient = transient

    @property
    def message(self) -> str:
        return str(self)


class SpecError(GitopsdError):
    """An Environment spec (or a CLI argument standing for one) names something invalid."""

    reason = "InvalidSpec"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"spec.{field}: {problem}" if field else problem)
        self.field = field


def truncate(text: str, limit: int = 300) -> str:
    """Shorten a remote's payload for a message: the start says what happened."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
