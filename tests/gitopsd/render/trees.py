"""A ``model.Tree`` held in memory, for render tests: files keyed by repository path."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from gitopsd.model import Revision
from gitopsd.render import RenderOptions

REVISION = Revision("main", "3f2c9a1b7d0e4c5f6a7b8c9d0e1f2a3b4c5d6e7f")


class MemoryTree:
    """Files as a dict; ``directory()`` writes them to a temporary directory once."""

    def __init__(self, files: dict[str, str | bytes]) -> None:
        self._files = {
            path: data if isinstance(data, bytes) else textwrap.dedent(data).encode() for path, data in files.items()
        }
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.directory_calls = 0

    def files(self, path: str) -> dict[str, bytes]:
        prefix = f"{path}/" if path else ""
        found = {name: data for name, data in self._files.items() if name.startswith(prefix)}
        if path and not found:
            raise FileNotFoundError(path)
        return found

    def directory(self) -> Path:
        self.directory_calls += 1
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="render-tree-")
            for name, data in self._files.items():
                target = Path(self._dir.name, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        return Path(self._dir.name)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def options(path: str = "deploy", **overrides: object) -> RenderOptions:
    """Render options with test defaults: environment ``dev``, ``REVISION``, target namespace ``shop``."""
    values: dict[str, object] = {
        "path": path,
        "environment": "dev",
        "revision": REVISION,
        "substitute": {},
        "target_namespace": "shop",
    }
    values.update(overrides)
    return RenderOptions(**values)  # type: ignore[arg-type]
