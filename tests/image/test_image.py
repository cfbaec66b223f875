"""The container image as the manifests run it: user, read-only root, tini as PID 1, contents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from e2e.binaries import HELM_VERSION, KUBERNETES_VERSION
from e2e.oci import read_archive
from tests.image.conftest import Image

# What the manifests mount writable (manifests/*/deployment.yaml emptyDirs); podman's own
# tmpfs mounts for --read-only are switched off so that nothing else is writable.
READ_ONLY = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp", "--tmpfs", "/var/cache/gitopsd"]

KUSTOMIZATION = "namePrefix: ro-\\nresources: [cm.yaml]\\n"
CONFIGMAP = "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: settings}\\ndata: {a: b}\\n"

# git runs a shell alias that leaves a child behind (as a killed fetch leaves ssh or
# git-remote-https): the orphan is re-parented to PID 1, which must reap it when it exits.
ORPHAN = r"""
import subprocess, time
alias = "alias.orphan=!f() { sleep 1 >/dev/null 2>&1 & echo $!; }; f"
pid = int(subprocess.run(["git", "-c", alias, "orphan"], capture_output=True, text=True, check=True).stdout)
print("pid1", open("/proc/1/comm").read().strip())
state = "?"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "reaped"
        break
    time.sleep(0.05)
print("orphan", state)
"""


def test_archive_names_the_image_and_its_runtime_config(gitopsd_image: Image) -> None:
    """The OCI archive names localhost/gitopsd:dev (podman and containerd) with tini and uid 65532."""
    (img,) = read_archive(gitopsd_image.archive)
    assert img.name == "localhost/gitopsd:dev"
    config = img.config["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["Cmd"] == ["gitopsd", "run"]


def test_runs_as_uid_65532(gitopsd_image: Image) -> None:
    """Processes run as uid and gid 65532, the manifests' runAsUser, not as root."""
    proc = gitopsd_image.run("sh", "-c", "id -u; id -g")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["65532", "65532"]


def test_both_programs_answer_help(gitopsd_image: Image) -> None:
    """gitopsd --help and metrics-adapter --help exit 0 with their usage."""
    for program in ("gitopsd", "metrics-adapter"):
        proc = gitopsd_image.run(program, "--help")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: {program}")


def test_read_only_root_filesystem_with_the_manifests_tmpfs(gitopsd_image: Image) -> None:
    """With only /tmp and the cache writable, gitopsd renders a kustomization and git commits."""
    script = (
        "set -e; mkdir /tmp/k; "
        f"printf '{KUSTOMIZATION}' > /tmp/k/kustomization.yaml; printf '{CONFIGMAP}' > /tmp/k/cm.yaml; "
        "gitopsd render --path /tmp/k --target-namespace demo; "
        "git init -q /tmp/repo; git -C /tmp/repo -c user.name=t -c user.email=t@e commit -q --allow-empty -m x; "
        "git -C /tmp/repo rev-list --count HEAD; "
        "touch /opt/gitopsd/probe 2>&1 || true"
    )
    proc = gitopsd_image.run("sh", "-c", script, options=READ_ONLY)
    assert proc.returncode == 0, proc.stderr
    assert "name: ro-settings" in proc.stdout
    assert re.search(r"^1$", proc.stdout, re.MULTILINE)
    assert "Read-only file system" in proc.stdout


def test_tini_is_pid_1_and_reaps_gits_orphans(gitopsd_image: Image) -> None:
    """tini is PID 1 and reaps a child git's shell left behind (no zombie remains)."""
    proc = gitopsd_image.run("python", "-c", ORPHAN)
    assert proc.returncode == 0, proc.stderr
    assert "pid1 tini" in proc.stdout
    assert "orphan reaped" in proc.stdout, proc.stdout


def test_git_kubectl_kustomize_and_helm_inside(gitopsd_image: Image) -> None:
    """git, kubectl (with kustomize) and helm run, at the versions the harness builds."""
    proc = gitopsd_image.run("sh", "-c", "git --version; kubectl version --client; helm version --short")
    assert proc.returncode == 0, proc.stderr
    assert "git version 2." in proc.stdout
    assert f"Client Version: {KUBERNETES_VERSION}" in proc.stdout
    assert "Kustomize Version: v5." in proc.stdout
    assert HELM_VERSION in proc.stdout


def test_no_compilers(gitopsd_image: Image) -> None:
    """No compiler or build tool reached the image (wheels only)."""
    script = "for c in gcc cc c++ g++ clang make ld as; do command -v $c; done; true"
    proc = gitopsd_image.run("sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_cli_prints_the_archive_path_last(gitopsd_image: Image) -> None:
    """`python -m e2e.image build` ends its stdout with the archive's path; `inspect` names the image in it."""
    build = subprocess.run(
        [sys.executable, "-m", "e2e.image", "build"], capture_output=True, text=True, timeout=1200, check=False
    )
    assert build.returncode == 0, build.stderr
    # The same path as the fixture's unless the sources changed in between (a shared work tree).
    printed = Path(build.stdout.splitlines()[-1])
    assert printed.parent == gitopsd_image.archive.parent
    assert re.fullmatch(r"gitopsd-dev-[0-9a-f]{16}\.oci\.tar", printed.name)
    inspect = subprocess.run(
        [sys.executable, "-m", "e2e.image", "inspect", str(printed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout.startswith("localhost/gitopsd:dev\tsha256:")
