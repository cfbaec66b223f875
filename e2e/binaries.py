"""Find or build the control-plane binaries the local harness runs.

No release binaries can be downloaded on our machines, so every component is compiled from
its Go module and cached outside the work tree, keyed by version, so only the first run on a
machine pays for the build. ``KUBEBUILDER_ASSETS`` (the envtest convention) wins when set.

Kubernetes cannot be ``go install``-ed directly: its go.mod points the staging modules
(k8s.io/api, k8s.io/client-go, ...) at ``./staging`` directories that are not part of the
published module. We generate a wrapper module that requires k8s.io/kubernetes and replaces
each staging module, read from the real go.mod, with its published ``v0.x`` twin.

actionlint (the linter of ``.github/workflows``, run by the unit tests) is built the same way,
with ``go install`` of its command at an exact version, like kwok.

Run ``python -m e2e.binaries`` to build everything ahead of time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.33.13"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.7.0"
# v1.7.12 asks for Go 1.25; this one builds with the Go >= 1.24 the harness already needs.
ACTIONLINT_VERSION = "v1.7.11"
# Helm renders charts (gitopsd/render/helm.py); go-containerregistry's registry is the tests' OCI registry.
HELM_VERSION = "v4.3.2"
REGISTRY_VERSION = "v0.22.1"

K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# A real node (e2e/realnode/): built apart, so a control-plane start never waits for them.
NODE_COMMANDS = ("kubelet", "kube-proxy")
# kubectl goes into the container image (e2e/image.py): dl.k8s.io is not reachable here.
KUBECTL_COMMANDS = ("kubectl",)
ALL_BINARIES = ("etcd", *K8S_COMMANDS, "kwok")

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)


class BinariesUnavailable(RuntimeError):
    """Neither prebuilt binaries nor a Go toolchain to build them were found."""


@dataclass(frozen=True, slots=True)
class Binaries:
    """Absolute paths of every executable the local cluster needs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path


def cache_root() -> Path:
    """Where built binaries and build scratch live (outside any clone)."""
    base = os.environ.get("GITOPSD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gitopsd"
    )
    return Path(base)


def _log(msg: str) -> None:
    print(f"[e2e.binaries] {msg}", file=sys.stderr, flush=True)


# Where Go's official tarball installs itself, in case it is not on PATH.
GO_CANDIDATES = ("/usr/local/go/bin/go",)


def find_go(missing: tuple[str, ...] = ALL_BINARIES) -> str:
    """The go command, or an error that says what is missing and both ways to get it."""
    go = shutil.which("go") or next((c for c in GO_CANDIDATES if os.access(c, os.X_OK)), None)
    if not go:
        raise BinariesUnavailable(
            f"the local cluster needs {', '.join(missing)}, which are neither in $KUBEBUILDER_ASSETS nor in "
            f"{cache_root() / 'bin'}: set KUBEBUILDER_ASSETS to a directory holding them, or install Go >= 1.24 "
            "(https://go.dev/doc/install) so they can be built from their Go modules"
        )
    return go


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    _log(f"$ {' '.join(cmd)}  (in {cwd})")
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise BinariesUnavailable(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false -mod=mod").strip()
    # A newer Go than the modules ask for is fine; never try to download a toolchain.
    env["GOTOOLCHAIN"] = "local"
    return env


def _module_gomod(go: str, module: str, version: str, cwd: Path, env: dict[str, str]) -> str:
    """The go.mod of a published module version, fetched by the go command (honours GOPROXY)."""
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BinariesUnavailable(
            f"go mod download {module}@{version} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    info = json.loads(proc.stdout)
    return Path(info["GoMod"]).read_text()


def staging_modules(kubernetes_gomod: str) -> list[str]:
    """Names of the staging modules that k8s.io/kubernetes' go.mod replaces with local dirs."""
    return sorted(set(_STAGING_REPLACE.findall(kubernetes_gomod)))


def wrapper_gomod(kubernetes_version: str, staging: list[str]) -> str:
    """go.mod text of a module that can build k8s.io/kubernetes commands from the proxy."""
    minor = kubernetes_version.lstrip("v").split(".", 1)[1]  # "33.13"
    staging_version = f"v0.{minor}"
    lines = [
        "module gitopsd.dev/k8sbuild",
        "",
        "go 1.24.0",
        "",
        f"require k8s.io/kubernetes {kubernetes_version}",
        "",
        "replace (",
    ]
    lines += [f"\t{mod} => {mod} {staging_version}" for mod in staging]
    lines += [")", ""]
    return "\n".join(lines)


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pairs = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": date,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in pairs.items()]
    return " ".join(flags)


def _build_kubernetes(dest: Path, commands: tuple[str, ...] = K8S_COMMANDS, scratch: str = "kubernetes") -> None:
    go = find_go()
    work = cache_root() / "build" / f"{scratch}-{KUBERNETES_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    env = _go_env()
    staging = staging_modules(_module_gomod(go, "k8s.io/kubernetes", KUBERNETES_VERSION, work, env))
    if not staging:
        raise BinariesUnavailable(
            f"no staging replace directives found in k8s.io/kubernetes {KUBERNETES_VERSION} go.mod"
        )
    (work / "go.mod").write_text(wrapper_gomod(KUBERNETES_VERSION, staging))
    pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in commands]
    _run([go, "get", *[f"{p}@{KUBERNETES_VERSION}" for p in pkgs]], work, env)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, pkg in zip(commands, pkgs, strict=True):
        _run(
            [go, "build", "-trimpath", "-ldflags", _version_ldflags(KUBERNETES_VERSION), "-o", str(tmp / name), pkg],
            work,
            env,
        )
    _publish(tmp, dest)


def _build_etcd(dest: Path) -> None:
    go = find_go()
    work = cache_root() / "build" / f"etcd-{ETCD_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(
        f"module gitopsd.dev/etcdbuild\n\ngo 1.23.0\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    env = _go_env()
    _run([go, "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, env)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    _run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp / "etcd"), "go.etcd.io/etcd/server/v3"], work, env
    )
    _publish(tmp, dest)


def _build_kwok(dest: Path) -> None:
    go = find_go()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    env = _go_env()
    env["GOBIN"] = str(tmp)
    env["GOFLAGS"] = "-buildvcs=false"
    _run([go, "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], tmp, env)
    _publish(tmp, dest)


def _build_actionlint(dest: Path) -> None:
    go = find_go(("actionlint",))
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    env = _go_env()
    env["GOBIN"] = str(tmp)
    env["GOFLAGS"] = "-buildvcs=false"
    module = f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}"
    _run([go, "install", "-trimpath", "-ldflags", "-s -w", module], tmp, env)
    _publish(tmp, dest)


def _build_in_wrapper(dest: Path, name: str, module: str, version: str, pkg: str, ldflags: str = "-s -w") -> None:
    """Build one command of a published module through a wrapper module (``go get`` at an exact version)."""
    go = find_go((name,))
    work = cache_root() / "build" / f"{name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(f"module gitopsd.dev/{name}build\n\ngo 1.24.0\n\nrequire {module} {version}\n")
    env = _go_env()
    _run([go, "get", f"{pkg}@{version}"], work, env)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp / name), pkg], work, env)
    _publish(tmp, dest)


def _build_helm(dest: Path) -> None:
    # helm prints this version (and reports it as .Capabilities.HelmVersion) instead of "v4.0+unreleased".
    flags = f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    _build_in_wrapper(dest, "helm", "helm.sh/helm/v4", HELM_VERSION, "helm.sh/helm/v4/cmd/helm", flags)


def _build_registry(dest: Path) -> None:
    module = "github.com/google/go-containerregistry"
    _build_in_wrapper(dest, "registry", module, REGISTRY_VERSION, f"{module}/cmd/registry")


def _publish(tmp: Path, dest: Path) -> None:
    """Swap a finished build into place, so an interrupted build never looks complete."""
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def _build_all(bin_root: Path, todo: Sequence[tuple[Path, tuple[str, ...], Callable[[Path], None]]]) -> None:
    bin_root.mkdir(parents=True, exist_ok=True)
    # One build at a time per machine: a second caller waits, then finds the result.
    with open(bin_root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for dest, names, build in todo:
            if all((dest / n).is_file() for n in names):
                continue
            started = time.monotonic()
            _log(f"building {', '.join(names)} into {dest} (first run on this machine; cached afterwards)")
            build(dest)
            _log(f"built {dest.name} in {time.monotonic() - started:.0f}s")


def _assets_dir() -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    return Path(assets) if assets else None


def ensure_binaries() -> Binaries:
    """Return every binary, building (once per machine and version) whatever is missing."""
    found: dict[str, Path] = {}
    assets = _assets_dir()
    if assets is not None:
        for name in ALL_BINARIES:
            if (assets / name).is_file():
                found[name] = assets / name
    bin_root = cache_root() / "bin"
    plan = (
        (f"etcd-{ETCD_VERSION}", ("etcd",), _build_etcd),
        (f"kubernetes-{KUBERNETES_VERSION}", K8S_COMMANDS, _build_kubernetes),
        (f"kwok-{KWOK_VERSION}", ("kwok",), _build_kwok),
    )
    todo = [
        (bin_root / dirname, names, build)
        for dirname, names, build in plan
        if not all(n in found or (bin_root / dirname / n).is_file() for n in names)
    ]
    if todo:
        find_go(tuple(n for _, names, _ in todo for n in names if n not in found))
        _build_all(bin_root, todo)
    for dirname, names, _ in plan:
        for n in names:
            found.setdefault(n, bin_root / dirname / n)
    return Binaries(
        etcd=found["etcd"],
        kube_apiserver=found["kube-apiserver"],
        kube_controller_manager=found["kube-controller-manager"],
        kube_scheduler=found["kube-scheduler"],
        kwok=found["kwok"],
    )


def ensure_actionlint() -> Path:
    """The actionlint executable, built (once per machine and version) when missing."""
    bin_root = cache_root() / "bin"
    dest = bin_root / f"actionlint-{ACTIONLINT_VERSION}"
    if not (dest / "actionlint").is_file():
        find_go(("actionlint",))
        _build_all(bin_root, [(dest, ("actionlint",), _build_actionlint)])
    return dest / "actionlint"


def _ensure_one(name: str, version: str, build: Callable[[Path], None]) -> Path:
    bin_root = cache_root() / "bin"
    dest = bin_root / f"{name}-{version}"
    if not (dest / name).is_file():
        find_go((name,))
        _build_all(bin_root, [(dest, (name,), build)])
    return dest / name


def ensure_helm() -> Path:
    """The helm executable (chart rendering), built once per machine and version when missing."""
    return _ensure_one("helm", HELM_VERSION, _build_helm)


def ensure_registry() -> Path:
    """go-containerregistry's registry (an OCI registry for the chart tests), built when missing."""
    return _ensure_one("registry", REGISTRY_VERSION, _build_registry)


@dataclass(frozen=True, slots=True)
class NodeBinaries:
    """The executables of a real node, besides containerd and runc (Debian packages)."""

    kubelet: Path
    kube_proxy: Path


def _build_node(dest: Path) -> None:
    _build_kubernetes(dest, NODE_COMMANDS, "kubernetes-node")


def ensure_node_binaries() -> NodeBinaries:
    """kubelet and kube-proxy, built (once per machine and version) when missing."""
    assets = _assets_dir()
    dest = cache_root() / "bin" / f"kubernetes-node-{KUBERNETES_VERSION}"
    found = {n: assets / n for n in NODE_COMMANDS if assets is not None and (assets / n).is_file()}
    if not all(n in found or (dest / n).is_file() for n in NODE_COMMANDS):
        find_go(NODE_COMMANDS)
        _build_all(cache_root() / "bin", [(dest, NODE_COMMANDS, _build_node)])
    return NodeBinaries(
        kubelet=found.get("kubelet", dest / "kubelet"), kube_proxy=found.get("kube-proxy", dest / "kube-proxy")
    )


def _build_kubectl(dest: Path) -> None:
    _build_kubernetes(dest, KUBECTL_COMMANDS, "kubernetes-kubectl")


def ensure_kubectl() -> Path:
    """kubectl (with kustomize inside) for the container image, built once per machine and version."""
    return _ensure_one("kubectl", KUBERNETES_VERSION, _build_kubectl)


def main() -> int:
    try:
        bins = ensure_binaries()
        actionlint = ensure_actionlint()
        helm = ensure_helm()
        registry = ensure_registry()
        kubectl = ensure_kubectl()
        node = ensure_node_binaries()
    except BinariesUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in zip(
        ALL_BINARIES,
        (bins.etcd, bins.kube_apiserver, bins.kube_controller_manager, bins.kube_scheduler, bins.kwok),
        strict=True,
    ):
        print(f"{name}\t{path}")
    print(f"actionlint\t{actionlint}")
    print(f"helm\t{helm}")
    print(f"registry\t{registry}")
    print(f"kubectl\t{kubectl}")
    print(f"kubelet\t{node.kubelet}")
    print(f"kube-proxy\t{node.kube_proxy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
