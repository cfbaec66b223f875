"""Build a kustomization with the kustomize that is installed, offline and under a deadline.

Why a subprocess and not a library: kustomize exists only in Go. ``kustomize build`` is used
when installed, else ``kubectl kustomize`` (kubectl embeds kustomize; v5.5 in kubectl 1.32):
one process start (~50 ms) per build, and builds are cached by revision upstream.

What a build may reach, enforced on every run:

- No network. The child gets a minimal environment in which every HTTP(S) proxy variable
  points at a closed loopback port, so remote resources (``https://.../x.yaml``) fail, and
  ``GIT_ALLOW_PROTOCOL`` allows no transport, so remote bases (``github.com/org/repo//dir``,
  ``git@...``) fail before git connects. Both failures get a message saying remote bases must
  be vendored into the repository. (Go never proxies loopback addresses, so a loopback URL is
  the one thing this does not stop.)
- No files outside the kustomization's root except other kustomizations
  (``--load-restrictor=LoadRestrictionsRootOnly``, kustomize's default, passed explicitly).
- No plugins and no Helm: ``--enable-exec``, ``--enable-alpha-plugins`` and ``--enable-helm``
  are never passed, so exec/container functions and ``helmCharts`` are refused by kustomize.
- A deadline: at the timeout the whole process group (git children included) is killed.
- A size: reading stops once the output passes the render's size limit (``limits``), and the
  build is killed, so a build printing gigabytes costs the daemon no more than the limit.

Each build runs in a checkout of its own (``sources.tree.Exports``: a private directory whose
parent holds nothing else), since a kustomization may name a base outside its root
(``../../x``) and kustomize follows it: no other render's files are reachable by a path.

kustomize's stderr comes back trimmed to its error text, with the temporary checkout's absolute
path removed so paths read as repository paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gitopsd.errors import truncate
from gitopsd.render import bounded
from gitopsd.render.errors import KustomizeError, KustomizeTimeout, KustomizeUnavailable, RenderTooLarge
from gitopsd.render.limits import MAX_RENDERED_BYTES, size_text

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: Nothing listens on port 1 (tcpmux): connecting through this "proxy" fails at once.
_CLOSED_PROXY = "http://127.0.0.1:1"
_OFFLINE_HINT = (
    " (gitopsd builds kustomizations offline: remote bases and URLs are not fetched; vendor them into the repository)"
)
_ERROR_QUOTED = re.compile(r'err="((?:[^"\\]|\\.)*)"')
_ERROR_BLOCK = re.compile(r"err=<\n(.*?)\n\s*>", re.DOTALL)


def kustomization_file(files: Mapping[str, bytes], path: str) -> str | None:
    """The repository path of the kustomization file directly in ``path``, if there is one."""
    prefix = f"{path}/" if path else ""
    return next((prefix + name for name in KUSTOMIZATION_FILES if prefix + name in files), None)


def command(directory: Path) -> list[str]:
    """``kustomize build DIR`` if kustomize is installed, else ``kubectl kustomize DIR``."""
    restrict = "--load-restrictor=LoadRestrictionsRootOnly"
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build", restrict, str(directory)]
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize", restrict, str(directory)]
    raise KustomizeUnavailable("the source path holds a kustomization, but neither kustomize nor kubectl is installed")


def offline_environment() -> dict[str, str]:
    """The child's whole environment: enough to run, nothing that reaches the network."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = _CLOSED_PROXY
    env["NO_PROXY"] = env["no_proxy"] = ""
    env["GIT_ALLOW_PROTOCOL"] = "none"  # a list of allowed transports with no real one in it
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    return env


def build(root: Path, path: str, kustomization: str, timeout: float, limit: int = MAX_RENDERED_BYTES) -> str:
    """The YAML stream ``kustomize build`` prints for ``root/path`` (at most ``limit`` bytes);
    raises ``KustomizeError``, or ``RenderTooLarge`` for more output than ``limit``."""
    directory = root / path if path else root
    argv = command(directory)
    try:
        returncode, out, err = bounded.run(argv, root, offline_environment(), timeout, limit)
    except OSError as exc:
        raise KustomizeUnavailable(f"{kustomization}: cannot run {argv[0]}: {exc.strerror}") from None
    except bounded.OutputTooLarge:
        raise RenderTooLarge(
            f"{kustomization} (kustomize output)",
            f"kustomize build printed more than {size_text(limit)} and was stopped",
            f"rendered size limit: {size_text(limit)}",
        ) from None
    except subprocess.TimeoutExpired:
        raise KustomizeTimeout(
            f"{kustomization}: kustomize build did not finish within {timeout:g}s and was stopped"
        ) from None
    if returncode != 0:
        message = clean_error(err.decode("utf-8", "replace"), root)
        raise KustomizeError(f"{kustomization}: kustomize build failed: {message}")
    return out.decode("utf-8", "replace")


def clean_error(stderr: str, root: Path) -> str:
    """kustomize's error text without kubectl's log prefix or the checkout's absolute path."""
    text = stderr.strip()
    quoted = _ERROR_QUOTED.search(text)
    block = _ERROR_BLOCK.search(text)
    if quoted:
        try:
            text = json.loads(f'"{quoted.group(1)}"')
        except ValueError:
            text = quoted.group(1)
    elif block:
        text = block.group(1)
    text = text.removeprefix("Error: ")
    for prefix in {str(root.resolve()), str(root)}:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    # A path that climbed out of the checkout reads relative to it, without the private directory's name.
    for up, ancestor in (("..", root.parent), ("../..", root.parent.parent)):
        if ancestor == ancestor.parent:  # the filesystem's root
            break
        for prefix in {str(ancestor.resolve()), str(ancestor)}:
            text = text.replace(prefix + "/", up + "/").replace(prefix, up)
    hint = _OFFLINE_HINT if ("proxyconnect" in text or "transport '" in text) else ""
    return truncate(text, 800) + hint
