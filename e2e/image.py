"""Build the project's container image on this machine, from the Dockerfile, with Debian's tools.

No image registry is reachable here, so the public bases the Dockerfile pins cannot be pulled and
kubectl cannot be fetched from dl.k8s.io. ``python -m e2e.image build`` stands in for both:

1. ``mmdebstrap --variant=minbase`` makes a Debian bookworm root filesystem with Python 3.11
   (what python:3.11-slim-bookworm carries) and ``podman import`` turns it into a local base;
2. kubectl and helm, built from their Go modules by e2e/binaries.py, become one-file images
   (``localhost/gitopsd-kubectl:<version>``, ``-helm:``) the Dockerfile takes through
   ``KUBECTL_IMAGE`` and ``HELM_IMAGE`` instead of downloading them;
3. ``podman build`` (runc, lowered rlimits, host network for apt and pip) builds the Dockerfile
   with those as build arguments, and as ``BUILD_IMAGE`` the base plus the host's TLS roots for
   pip (only the virtualenv leaves that stage), and tags ``localhost/gitopsd:dev``;
4. ``podman save --format oci-archive`` writes ``~/.cache/gitopsd/images/gitopsd-dev-<hash>.oci.tar``,
   named for podman and containerd alike (e2e/oci.py). Its path is the last line of stdout.

The hash covers every input (Dockerfile, .dockerignore, pyproject.toml, README.md, the package
sources, the base recipe, kubectl's and helm's versions), so a second build with nothing
changed returns the archive at once; podman's layer cache makes a rebuild after an edit quicker.

For other images of the harness (the real node's pause image, say) this module re-exports
e2e/oci.py, which needs no container engine:

    archive_from_binary(binary: Path, ref: str, dest: Path, *, path: str | None = None,
                        config: ImageConfig | None = None) -> Path
        an OCI archive of an image holding one static executable at ``path`` (default
        ``/<name>``, its entrypoint), e.g. archive_from_binary(pause, "localhost/pause:3.10", out)
    archive_from_rootfs(rootfs: Path, ref: str, dest: Path, config: ImageConfig = ImageConfig()) -> Path
        an OCI archive of a root filesystem directory as one layer
    read_archive(archive: Path) -> list[ArchiveImage]     (name, manifest digest, config)
        raises OCIArchiveError with the reason when the file is not an OCI archive

``ref`` must be a full reference (``localhost/NAME:TAG``); both podman load and containerd's
``ctr images import`` (so ``kind load image-archive``) name the image after it.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e import binaries
from e2e.oci import (
    ArchiveImage,
    ImageConfig,
    OCIArchiveError,
    archive_from_binary,
    archive_from_rootfs,
    name_images,
    read_archive,
)

__all__ = [
    "ArchiveImage",
    "BuiltImage",
    "ImageBuildError",
    "ImageConfig",
    "OCIArchiveError",
    "archive_from_binary",
    "archive_from_rootfs",
    "build",
    "read_archive",
]

REPO = Path(__file__).resolve().parent.parent
IMAGE_REF = "localhost/gitopsd:dev"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the Dockerfile's Python stages expect of python:3.11-slim-bookworm: `python` on PATH,
# `python -m venv` with pip, TLS roots. Debian bookworm's python3 is 3.11.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# Slim like the official bases: no manuals, docs (but copyrights) or translations, and apt
# drops the packages it downloaded (these settings stay in the base, for the Dockerfile's apt too).
BASE_OPTIONS = (
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--customize-hook=echo \'APT::Keep-Downloaded-Packages "false";\' > "$1/etc/apt/apt.conf.d/90gitopsd-clean"',
)
# Changing how the image is made (not what goes in) invalidates the cache too.
RECIPE_VERSION = "1"
# Lowered, not raised: the sandbox has no CAP_SYS_RESOURCE, and podman's defaults exceed it.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("gitopsd", "metrics_adapter")
# Archives kept (each ~200 MB): the sources change under running test sessions on a shared tree.
KEEP_ARCHIVES = 3
# tool -> the Debian package that provides it
TOOLS = {"podman": "podman", "mmdebstrap": "mmdebstrap", "runc": "runc"}
_STEP = re.compile(r"^(\[\d+/\d+\] )?STEP \d+/\d+: ")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Where the build stage's pip finds the host's TLS roots (that stage only).
BUILD_CA = "/etc/pip-build-ca.pem"


class ImageBuildError(RuntimeError):
    """A step of the image build failed; the message names the step and ends with its log tail."""


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """A built image: its OCI archive and how it was obtained."""

    ref: str
    archive: Path
    cached: bool
    seconds: float


def images_dir() -> Path:
    return binaries.cache_root() / "images"


def _log(msg: str) -> None:
    print(f"[e2e.image] {msg}", file=sys.stderr, flush=True)


def check_tools() -> None:
    """ImageBuildError naming the Debian package of each missing tool."""
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        pkgs = " ".join(TOOLS[m.split()[0]] for m in missing)
        raise ImageBuildError(
            f"the image build needs {', '.join(missing)}: apt-get install {pkgs} (scripts/setup.sh installs them)"
        )


def run_step(step: str, cmd: Sequence[str], log: Path | None = None, cwd: Path | None = None) -> str:
    """Run one step; on failure raise ImageBuildError naming it, with the output's tail."""
    _log(f"{step}: {' '.join(cmd)}")
    proc = subprocess.run(list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log is not None:
        log.write_text(proc.stdout)
    if proc.returncode != 0:
        lines = proc.stdout.splitlines()
        where = next((ln for ln in reversed(lines) if _STEP.match(ln)), "")
        detail = f" at {where}" if where else ""
        tail = "\n".join(lines[-30:])
        saved = f" (full log: {log})" if log is not None else ""
        raise ImageBuildError(f"image build step '{step}' failed{detail} (exit {proc.returncode}){saved}:\n{tail}")
    return proc.stdout


def _source_files(repo: Path) -> list[Path]:
    files = [repo / f for f in CONTEXT_FILES]
    for d in CONTEXT_DIRS:
        files += sorted(
            p for p in (repo / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    return files


def base_key() -> str:
    text = f"{RECIPE_VERSION}|{SUITE}|{MIRROR}|{','.join(BASE_PACKAGES)}|{' '.join(BASE_OPTIONS)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def input_key(repo: Path = REPO) -> str:
    """Hash of everything that goes into the image: a changed input means a new archive."""
    versions = f"kubectl={binaries.KUBERNETES_VERSION}|helm={binaries.HELM_VERSION}"
    h = hashlib.sha256(f"{RECIPE_VERSION}|base={base_key()}|{versions}\n".encode())
    for path in _source_files(repo):
        h.update(path.relative_to(repo).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _image_exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0


def ensure_base(*, fresh: bool = False) -> str:
    """The local Python base image (made with mmdebstrap once, then kept in podman's store)."""
    key = base_key()
    ref = f"localhost/gitopsd-base:python3-{SUITE}-{key}"
    if not fresh and _image_exists(ref):
        return ref
    out = images_dir() / f"base-{SUITE}-{key}.tar"
    if fresh or not out.is_file():
        tmp = out.with_name(out.name + ".tmp")
        tmp.unlink(missing_ok=True)
        include = f"--include={','.join(BASE_PACKAGES)}"
        cmd = ["mmdebstrap", "--variant=minbase", "--format=tar", include, *BASE_OPTIONS, SUITE, str(tmp), MIRROR]
        run_step("mmdebstrap (Debian base root filesystem)", cmd, images_dir() / f"base-{key}.log")
        tmp.replace(out)
    changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8"]
    cmd = ["podman", "import", *[a for c in changes for a in ("--change", c)], str(out), ref]
    run_step("podman import (base image)", cmd)
    return ref


def ensure_binary_image(name: str, version: str, ensure: Callable[[], Path]) -> str:
    """A one-file image holding /<name>, built from its Go module (no dl.k8s.io or get.helm.sh here)."""
    ref = f"localhost/gitopsd-{name}:{version}"
    if _image_exists(ref):
        return ref
    try:
        binary = ensure()
    except binaries.BinariesUnavailable as exc:
        raise ImageBuildError(f"image build step '{name} (Go build)' failed: {exc}") from exc
    archive = archive_from_binary(binary, ref, images_dir() / f"{name}-{version}.oci.tar", path=f"/{name}")
    run_step(f"podman load ({name} stage image)", ["podman", "load", "--input", str(archive)])
    return ref


def ensure_build_base(base: str) -> str:
    """The base of the Dockerfile's build stage: ``base`` plus the host's pip settings, if any.

    Networks that inspect TLS (this sandbox's does) sign with a CA only the host trusts, so pip
    in the build stage needs it. Only the virtualenv leaves that stage, so neither the CA nor
    pip.conf reaches the image (a build ``--volume`` would leave empty mount points in it).
    """
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or HOST_CA)
    conf = ["[global]"]
    if ca.is_file():
        conf.append(f"cert = {BUILD_CA}")
    if index := os.environ.get("PIP_INDEX_URL"):
        conf.append(f"index-url = {index}")
    if len(conf) == 1:
        return base
    conf_text = "\n".join(conf) + "\n"
    ca_bytes = ca.read_bytes() if ca.is_file() else b""
    key = hashlib.sha256(base.encode() + conf_text.encode() + ca_bytes).hexdigest()[:12]
    ref = f"{base}-pip-{key}"
    if _image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="gitopsd-buildbase-") as scratch:
        ctx = Path(scratch)
        (ctx / "pip.conf").write_text(conf_text)
        (ctx / "ca.pem").write_bytes(ca_bytes)
        (ctx / "Containerfile").write_text(
            f"FROM {base}\nCOPY pip.conf /etc/pip.conf\n" + (f"COPY ca.pem {BUILD_CA}\n" if ca_bytes else "")
        )
        cmd = ["podman", "build", "--runtime", "runc", *ULIMITS, "--pull=never", "--tag", ref, str(ctx)]
        run_step("podman build (build-stage base with pip settings)", cmd)
    return ref


def copy_context(into: Path, repo: Path = REPO) -> None:
    """Copy what the Dockerfile's build context holds (and nothing else) from ``repo`` into ``into``."""
    for f in CONTEXT_FILES:
        shutil.copy2(repo / f, into / f)
    for d in CONTEXT_DIRS:
        shutil.copytree(repo / d, into / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _prune(keep: Path) -> None:
    """Drop all but the newest archives (others' test sessions may still read those) and old bases."""
    keep_base = images_dir() / f"base-{SUITE}-{base_key()}.tar"
    archives = sorted(images_dir().glob("gitopsd-dev-*.oci.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [*archives[KEEP_ARCHIVES:], *images_dir().glob(f"base-{SUITE}-*.tar")]:
        if old not in (keep, keep_base):
            old.unlink(missing_ok=True)


def image_size(ref: str = IMAGE_REF) -> int:
    """Uncompressed size in bytes of an image in podman's store."""
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def build(*, force: bool = False, no_cache: bool = False, fresh_base: bool = False, repo: Path = REPO) -> BuiltImage:
    """Build (or find in the cache) the OCI archive of ``localhost/gitopsd:dev`` from ``repo``'s sources.

    One build at a time per machine: a second caller waits, then finds the archive.
    """
    started = time.monotonic()
    check_tools()
    images_dir().mkdir(parents=True, exist_ok=True)
    key = input_key(repo)
    archive = images_dir() / f"gitopsd-dev-{key}.oci.tar"
    cached = not (force or no_cache or fresh_base)
    if cached and archive.is_file():  # never wait for someone else's build to find this one
        return BuiltImage(IMAGE_REF, archive, cached=True, seconds=time.monotonic() - started)
    with open(images_dir() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached and archive.is_file():
            return BuiltImage(IMAGE_REF, archive, cached=True, seconds=time.monotonic() - started)
        _build(archive, key, repo, no_cache=no_cache, fresh_base=fresh_base)
    return BuiltImage(IMAGE_REF, archive, cached=False, seconds=time.monotonic() - started)


def _build(archive: Path, key: str, repo: Path, *, no_cache: bool, fresh_base: bool) -> None:
    base = ensure_base(fresh=fresh_base)
    build_base = ensure_build_base(base)
    kubectl = ensure_binary_image("kubectl", binaries.KUBERNETES_VERSION, binaries.ensure_kubectl)
    helm = ensure_binary_image("helm", binaries.HELM_VERSION, binaries.ensure_helm)
    with tempfile.TemporaryDirectory(prefix="gitopsd-image-") as scratch:
        ctx = Path(scratch) / "context"
        ctx.mkdir()
        copy_context(ctx, repo)
        args = {
            "PYTHON_IMAGE": base,
            "BUILD_IMAGE": build_base,
            "DEBIAN_IMAGE": base,
            "KUBECTL_IMAGE": kubectl,
            "HELM_IMAGE": helm,
        }
        cmd = ["podman", "build", "--runtime", "runc", "--network", "host", *ULIMITS, "--pull=never"]
        cmd += [a for name, value in args.items() for a in ("--build-arg", f"{name}={value}")]
        cmd += [*(["--no-cache"] if no_cache else []), "--tag", IMAGE_REF, str(ctx)]
        run_step("podman build (Dockerfile)", cmd, images_dir() / f"build-{key}.log")
        tmp = Path(scratch) / "image.oci.tar"
        save = ["podman", "save", "--format", "oci-archive", "--output", str(tmp), IMAGE_REF]
        run_step("podman save (OCI archive)", save)
        name_images(tmp, IMAGE_REF)
        shutil.move(tmp, archive.with_name(archive.name + ".tmp"))
        archive.with_name(archive.name + ".tmp").replace(archive)
    _prune(archive)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build localhost/gitopsd:dev and print its OCI archive's path (last line)")
    b.add_argument("--force", action="store_true", help="rebuild even when the archive for these inputs exists")
    b.add_argument("--no-cache", action="store_true", help="rebuild every Dockerfile step (podman build --no-cache)")
    insp = sub.add_parser("inspect", help="list the images an OCI archive holds")
    insp.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            for img in read_archive(args.archive):
                print(f"{img.name}\t{img.manifest_digest}")
            return 0
        built = build(force=args.force, no_cache=args.no_cache)
    except (ImageBuildError, OCIArchiveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _log(f"{'cached' if built.cached else 'built'} {built.ref} in {built.seconds:.1f}s")
    print(built.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
