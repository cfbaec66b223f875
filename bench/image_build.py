"""How long the image takes to build here, cold and warm, and how big it is.

Cold: a new Debian base (mmdebstrap + podman import) and every Dockerfile step run afresh
(``podman build --no-cache``), then the OCI archive saved. Warm: the same inputs again, which
the input-hash cache answers without podman. Then two forced rebuilds, each with how many
Dockerfile steps came from podman's layer cache: the first depends on the layers earlier builds
left (on a shared machine, others' builds of the same sources count), the second takes every
step from the cache (podman build + save only).
kubectl and helm come from e2e/binaries.py's cache (their Go builds are not timed here).
The sources are copied first, so edits to the work tree meanwhile change nothing. Prints JSON.

    .venv/bin/python -m bench.image_build
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from e2e import image


def _steps_cached(repo: Path) -> str:
    """'cached/all' RUN and COPY steps of the last build of ``repo``'s sources, from its log."""
    log = (image.images_dir() / f"build-{image.input_key(repo)}.log").read_text().splitlines()
    steps = cached = 0
    current = False
    for line in log:
        if re.match(r"(\[\d+/\d+\] )?STEP \d+/\d+: ", line):
            current = bool(re.search(r"STEP \d+/\d+: (RUN|COPY) ", line))
            steps += current
        elif line.startswith("--> Using cache") and current:
            cached += 1
            current = False
    return f"{cached}/{steps}"


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    image.check_tools()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-image-") as snapshot:
        repo = Path(snapshot)
        image.copy_context(repo)
        started = time.monotonic()
        base = image.ensure_base(fresh=True)
        base_seconds = time.monotonic() - started
        cold = image.build(no_cache=True, repo=repo)
        warm = image.build(repo=repo)
        layered = image.build(force=True, repo=repo)
        layered_steps = _steps_cached(repo)
        again = image.build(force=True, repo=repo)
        again_steps = _steps_cached(repo)
    base_tar = image.images_dir() / f"base-{image.SUITE}-{image.base_key()}.tar"
    report = {
        "benchmark": "image_build",
        "image": image.IMAGE_REF,
        "base": base,
        "cold_seconds": round(base_seconds + cold.seconds, 1),
        "cold_base_seconds": round(base_seconds, 1),
        "cold_dockerfile_and_save_seconds": round(cold.seconds, 1),
        "warm_seconds": round(warm.seconds, 3),
        "warm_cached": warm.cached,
        "forced_rebuild_1_seconds": round(layered.seconds, 1),
        "forced_rebuild_1_steps_cached": layered_steps,
        "forced_rebuild_2_seconds": round(again.seconds, 1),
        "forced_rebuild_2_steps_cached": again_steps,
        "image_bytes": image.image_size(),
        "archive_bytes": layered.archive.stat().st_size,
        "base_rootfs_tar_bytes": base_tar.stat().st_size,
        "archive": str(layered.archive),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
