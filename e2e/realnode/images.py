"""The real node's own images: the pause image and the tests' HTTP server, built here.

Each is a static Go program from ``programs/`` (no cgo, no libc, nothing else in the image),
compiled once per source hash and cached with the other harness binaries, then written as an
OCI archive by :mod:`e2e.oci`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from e2e import oci
from e2e.binaries import BinariesUnavailable, cache_root, find_go

PROGRAMS = Path(__file__).with_name("programs")
PAUSE_IMAGE = "localhost/pause:3.10"
HTTPD_IMAGE = "localhost/e2e-httpd:1"


def _source_hash(name: str) -> str:
    return hashlib.sha256((PROGRAMS / name / "main.go").read_bytes()).hexdigest()[:12]


def go_program(name: str) -> Path:
    """The static binary of ``programs/<name>``, built when its source changed."""
    key = _source_hash(name)
    out_dir = cache_root() / "realnode" / f"{name}-{key}"
    binary = out_dir / name
    if binary.is_file():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        go = find_go((name,))
        (out_dir / "go.mod").write_text(f"module gitopsd.dev/e2e/{name}\n\ngo 1.24\n")
        (out_dir / "main.go").write_bytes((PROGRAMS / name / "main.go").read_bytes())
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"}
        tmp = out_dir / f"{name}.tmp"
        proc = subprocess.run(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), "."],
            cwd=out_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BinariesUnavailable(f"go build of {name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        tmp.replace(binary)
    return binary


def _archive(program: str, image: str, entrypoint: str, user: str) -> Path:
    binary = go_program(program)
    dest = binary.parent / f"{program}.oci.tar"
    if not dest.is_file():
        config = oci.ImageConfig(entrypoint=(entrypoint,), user=user)
        oci.archive_from_binary(binary, image, dest, path=entrypoint, config=config)
    return dest


def pause_archive() -> Path:
    """OCI archive of ``localhost/pause:3.10``, the sandbox image of the real node."""
    return _archive("pause", PAUSE_IMAGE, "/pause", "65535:65535")


def httpd_archive() -> Path:
    """OCI archive of ``localhost/e2e-httpd:1`` (see programs/httpd/main.go), uid 65532."""
    return _archive("httpd", HTTPD_IMAGE, "/httpd", "65532:65532")
