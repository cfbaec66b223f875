"""A record of the changes a real API server made, in its own order (resourceVersions), so a test
can say "this happened before that" without reading clocks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from e2e.cluster import ClusterInfo


@dataclass
class Watch:
    """``kubectl get KIND -w --output-watch-events -o json`` in a namespace, from before a test acts."""

    cluster: ClusterInfo
    kind: str
    namespace: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Watch:
        binary = os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
        args = [binary, f"--kubeconfig={self.cluster.kubeconfig}", "get", self.kind, "-n", self.namespace]
        self.proc = subprocess.Popen(
            [*args, "--watch", "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[tuple[str, dict[str, Any]]]:
        """End the watch and read what it saw: (ADDED|MODIFIED|DELETED, object), in the server's order."""
        if self.proc is None:
            return self.events
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.proc = None
        decoder, text, at = json.JSONDecoder(), out, 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                break
            doc, at = decoder.raw_decode(text, at)
            self.events.append((str(doc.get("type")), dict(doc.get("object") or {})))
        return self.events

    def first(self, what: str, predicate: Any) -> int:
        """The resourceVersion of the first event whose object satisfies ``predicate``."""
        for _, obj in self.events:
            if predicate(obj):
                return int(obj["metadata"]["resourceVersion"])
        seen = [o["metadata"]["name"] for _, o in self.events]
        raise AssertionError(f"the {self.kind} watch never saw {what}: {seen}")


def named(prefix: str) -> Any:
    return lambda obj: str(obj["metadata"].get("name", "")).startswith(prefix)


def is_true(obj: dict[str, Any], type_: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)
