"""One image per session: built by ``e2e.image`` (its input-hash cache makes this quick when
nothing changed) and loaded into podman from the OCI archive, so the tests run what the archive
holds. Skipped, with the reason, only where podman is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e import image

# runc (crun fails on this machine's cgroups v1 hybrid) and rlimits lowered, never raised.
RUN = ["podman", "run", "--rm", "--runtime", "runc", "--network", "none", *image.ULIMITS]


@dataclass(frozen=True, slots=True)
class Image:
    """The image under test: its name and the OCI archive it was loaded from."""

    ref: str
    archive: Path

    def run(self, *args: str, options: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``podman run`` the image with ``args`` after its entrypoint (tini), output captured."""
        return subprocess.run(
            [*RUN, *options, self.ref, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="session")
def gitopsd_image() -> Image:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian package podman; scripts/setup.sh installs it)")
    built = image.build()
    subprocess.run(["podman", "load", "--input", str(built.archive)], check=True, capture_output=True)
    return Image(built.ref, built.archive)
