"""The archives load into containerd under their names, as `kind load image-archive` loads them.

kind imports an archive into each node with ``ctr --namespace=k8s.io images import
--all-platforms --digests``; a real node of the harness does the same. Here a private containerd
(its own root, state and socket, CRI off) imports the image's archive and a one-binary archive
of e2e.oci.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.oci import archive_from_binary
from tests.image.conftest import Image

IMPORT = ["images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs"]


class Containerd:
    """A containerd of this test module only, and its ctr."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "c.sock"
        (root / "config.toml").write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
        self.log = (root / "containerd.log").open("w")
        dirs = ["--root", str(root / "root"), "--state", str(root / "state"), "--address", str(self.socket)]
        self.proc = subprocess.Popen(
            ["containerd", "--config", str(root / "config.toml"), *dirs],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.socket.exists() and self.ctr("version", timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"containerd did not start:\n{(self.root / 'containerd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed (Debian package containerd)")
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


def test_image_archive_imports_as_localhost_gitopsd_dev(gitopsd_image: Image, containerd: Containerd) -> None:
    """containerd names the image from the archive localhost/gitopsd:dev (what the manifests' overlay sets)."""
    done = containerd.ctr(*IMPORT, str(gitopsd_image.archive))
    assert done.returncode == 0, done.stderr
    names = containerd.ctr("images", "ls", "-q").stdout.split()
    assert "localhost/gitopsd:dev" in names


def test_binary_archive_imports_under_its_name(containerd: Containerd, tmp_path: Path) -> None:
    """A one-binary archive of e2e.oci (the pause image's kind) imports under its full name."""
    program = tmp_path / "pause"
    program.write_bytes(b"#!/bin/sh\nexec sleep infinity\n")
    archive = archive_from_binary(program, "localhost/i-pause-test:3.10", tmp_path / "pause.tar")
    done = containerd.ctr(*IMPORT, str(archive))
    assert done.returncode == 0, done.stderr
    assert "localhost/i-pause-test:3.10" in containerd.ctr("images", "ls", "-q").stdout.split()
