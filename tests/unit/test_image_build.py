"""e2e.image's faults and inputs: missing tools, a failed step, versions kept in step with the harness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2e import binaries, image

ROOT = Path(__file__).resolve().parents[2]


def test_missing_tools_name_their_debian_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With none of the tools on PATH, the error names each with its Debian package."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(image.ImageBuildError) as err:
        image.check_tools()
    message = str(err.value)
    for tool in ("podman", "mmdebstrap", "runc"):
        assert f"{tool} (Debian package {tool})" in message
    assert "apt-get install podman mmdebstrap runc" in message


def test_a_failed_step_is_named_with_its_log_tail(tmp_path: Path) -> None:
    """A failing build step names the step, the Dockerfile STEP it stopped at, and its output's tail."""
    log = tmp_path / "build.log"
    script = "echo '[1/7] STEP 7/7: RUN pip install .'; echo 'No matching distribution for setuptools'; exit 3"
    with pytest.raises(image.ImageBuildError) as err:
        image.run_step("podman build (Dockerfile)", ["sh", "-c", script], log)
    message = str(err.value)
    assert message.startswith("image build step 'podman build (Dockerfile)' failed at [1/7] STEP 7/7: RUN pip")
    assert "(exit 3)" in message and str(log) in message
    assert message.endswith("No matching distribution for setuptools")
    assert "No matching distribution" in log.read_text()


def test_dockerfile_downloads_the_versions_the_harness_builds() -> None:
    """The Dockerfile's default kubectl and helm versions are the ones e2e.image puts in (e2e.binaries)."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert args["KUBECTL_VERSION"] == binaries.KUBERNETES_VERSION
    assert args["HELM_VERSION"] == binaries.HELM_VERSION
