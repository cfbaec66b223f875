"""Build prometheus-adapter (the program we replace) for side-by-side benches, cached by version.

The Go module proxy does not list versions, so, as ``e2e.binaries`` does for Kubernetes, a
throw-away wrapper module requires ``sigs.k8s.io/prometheus-adapter`` at a fixed version and
builds its ``cmd/adapter``. The binary lands in ``~/.cache/gitopsd/bin/prometheus-adapter-<v>/``
(about 3 minutes the first time on this machine, then instant).

    .venv/bin/python -m bench.adapter_promadapter        # prints the binary's path
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from e2e.binaries import cache_root, find_go

VERSION = "v0.12.0"
MODULE = "sigs.k8s.io/prometheus-adapter"


def argv(
    binary: Path | str, config: Path, prometheus_url: str, port: int, cert: Path, key: Path, kubeconfig: Path
) -> list[str]:
    """prometheus-adapter's command line as the benches run it: on ``port`` of 127.0.0.1 with the
    given serving certificate, reading the cluster through ``kubeconfig``, quiet."""
    return [
        str(binary),
        f"--config={config}",
        f"--prometheus-url={prometheus_url}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        f"--lister-kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--v=0",
    ]


def ensure_prometheus_adapter(version: str = VERSION) -> Path:
    dest = cache_root() / "bin" / f"prometheus-adapter-{version}" / "prometheus-adapter"
    if dest.exists():
        return dest
    go = find_go(("prometheus-adapter",))
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    with tempfile.TemporaryDirectory(prefix="promadapter-") as tmp:
        (Path(tmp) / "go.mod").write_text("module promadapterwrapper\n\ngo 1.22\n")
        print(f"[bench.adapter_promadapter] building {MODULE}@{version} (a few minutes)", file=sys.stderr, flush=True)
        subprocess.run([go, "get", f"{MODULE}@{version}"], cwd=tmp, env=env, check=True, capture_output=True)
        out = Path(tmp) / "prometheus-adapter"
        subprocess.run(
            [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), f"{MODULE}/cmd/adapter"],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_suffix(".tmp")
        shutil.copy2(out, partial)
        partial.rename(dest)  # atomic: a half-copied binary is never taken for a cached one
    return dest


if __name__ == "__main__":
    print(ensure_prometheus_adapter())
