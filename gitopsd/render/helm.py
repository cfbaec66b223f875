"""Render a chart with ``helm template``, offline, in the sandbox kustomize gets.

Why a subprocess: Helm exists only in Go, and rendering a chart the way ``helm install`` would
(templates, subcharts, ``.Capabilities``, ``crds/``) is what users expect of it. One process per
render; renders are cached by revision upstream (``desired``).

What a render may reach is what a kustomize build may reach (``kustomize.offline_environment``:
every proxy variable points at a closed port, no Git transport), plus: Helm's home directories
(cache, config, data, plugins, registry login) are a fresh empty directory per render, so no
user repositories, plugins or stored credentials take part, and ``KUBECONFIG`` names nothing.
Dependencies come from the chart's ``charts/`` directory: ``helm template`` never downloads
them. A chart from a repository carries them in its archive; a chart from Git may instead
commit a ``Chart.lock``, whose entries missing from ``charts/`` are fetched before helm starts
(``fetch_dependency``: the daemon's shared chart cache, ``sources.charts``) into a copy of the
chart, so helm itself still reads only local files. The same deadline and output limit as
kustomize apply (``bounded``: the process group is killed at either).

The cluster's version and API versions are passed (``--kube-version``, ``--api-versions``), so
``.Capabilities`` checks render as a real install on that cluster would. Test hooks are never
rendered (``--skip-tests``); CRDs from ``crds/`` are included unless ``skipCRDs``.

Each object's origin is the template that printed it (helm's ``# Source:`` comment), as a path
in the repository. A template error keeps helm's ``file:line`` and drops its hints and the
temporary directory's path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitopsd.errors import truncate
from gitopsd.render import bounded
from gitopsd.render.errors import HelmError, HelmTimeout, HelmUnavailable, RenderTooLarge, ValuesFileNotFound
from gitopsd.render.kustomize import offline_environment
from gitopsd.render.limits import MAX_RENDERED_BYTES, size_text
from gitopsd.semver import parse_version

CHART_FILE = "Chart.yaml"
#: Where ``helm`` is looked up first (the image and the test harness set it), then ``PATH``.
HELM_VARIABLE = "GITOPSD_HELM"
_SOURCE = re.compile(r"^# Source: (\S.*?)\s*$", re.MULTILINE)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_LOCKED_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$")
_LOCKED_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$")
#: Entries a ``Chart.lock`` may hold (Helm charts have a handful of dependencies).
MAX_LOCKED = 1000


@dataclass(frozen=True, slots=True)
class HelmOptions:
    """Everything ``helm template`` is told besides the chart: resolved by the caller (``helmoptions``)."""

    release_name: str
    namespace: str | None = None
    kube_version: str | None = None  # "v1.33.13"; None: Helm's default
    api_versions: tuple[str, ...] = ()  # "apps/v1" and "apps/v1/Deployment"
    include_crds: bool = True
    values_files: tuple[str, ...] = ()  # relative to the chart's directory
    #: Values documents after the files, later winning: (where from, YAML text).
    values: tuple[tuple[str, str], ...] = ()
    #: Fetches one ``Chart.lock`` entry (repository, name, version) as a packaged chart; None: offline only.
    fetch_dependency: Callable[[str, str, str], Path] | None = None


@dataclass(frozen=True, slots=True)
class Dependency:
    """A ``Chart.lock`` entry not present in ``charts/``."""

    repository: str
    name: str
    version: str


def chart_file(files: Mapping[str, bytes], path: str) -> str | None:
    """The repository path of ``Chart.yaml`` directly in ``path``, if there is one."""
    name = f"{path}/{CHART_FILE}" if path else CHART_FILE
    return name if name in files else None


def helm_command() -> str:
    """The helm executable: ``$GITOPSD_HELM``, else ``helm`` on ``PATH``."""
    helm = os.environ.get(HELM_VARIABLE) or shutil.which("helm")
    if not helm:
        raise HelmUnavailable(
            f"the source path holds a {CHART_FILE}, but helm is not installed (put it on PATH or set {HELM_VARIABLE})"
        )
    return helm


def template(
    root: Path, path: str, options: HelmOptions, timeout: float, limit: int = MAX_RENDERED_BYTES
) -> list[tuple[str, str]]:
    """The documents ``helm template`` prints for the chart at ``root/path``, each with the
    repository path of the template it came from; raises a ``HelmError``."""
    chart = root / path if path else root
    where = f"{path}/{CHART_FILE}" if path else CHART_FILE
    files = [_values_file(root, chart, path, index, name) for index, name in enumerate(options.values_files)]
    helm = helm_command()
    missing = missing_dependencies(chart, where)
    with tempfile.TemporaryDirectory(prefix="gitopsd-helm-") as scratch:
        home = Path(scratch)
        if missing:
            chart = _with_dependencies(chart, home / "chart", missing, options, where)
        for number, (_origin, text) in enumerate(options.values):
            extra = home / f"values-{number}.yaml"
            extra.write_text(text)
            files.append(extra)
        argv = [helm, "template", options.release_name, str(chart), "--skip-tests"]
        if options.namespace:
            argv += ["--namespace", options.namespace]
        if options.kube_version:
            argv += ["--kube-version", options.kube_version]
        if options.api_versions:
            argv += ["--api-versions", ",".join(options.api_versions)]
        if options.include_crds:
            argv.append("--include-crds")
        for file in files:
            argv += ["--values", str(file)]
        output = _run(argv, root, _environment(home), where, timeout, limit)
    return list(_documents(output, path))


def missing_dependencies(chart: Path, where: str) -> list[Dependency]:
    """The ``Chart.lock`` entries from a repository that ``charts/`` does not hold (archive or directory)."""
    lock = chart / "Chart.lock"
    if not lock.is_file():
        return []
    try:
        entries = (yaml.safe_load(lock.read_text()) or {}).get("dependencies") or []
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError) as exc:
        raise HelmError(f"{where}: Chart.lock cannot be read: {str(exc)[:200]}") from None
    if not isinstance(entries, list) or len(entries) > MAX_LOCKED:
        raise HelmError(f"{where}: Chart.lock dependencies must be a list of at most {MAX_LOCKED} entries")
    missing = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        # scalars only: str() of an aliased structure (a YAML bomb) would not end
        name, version, repository = (_scalar(entry.get(k)) for k in ("name", "version", "repository"))
        if not re.match(r"^(https?|oci)://", repository):
            continue  # file:// and the like: helm reads them from charts/ (or says they are missing)
        # Both become a file name under charts/ (and a repository path): a '/' or '..' would write elsewhere.
        if not _LOCKED_NAME.match(name) or not _LOCKED_VERSION.match(version) or parse_version(version) is None:
            raise HelmError(
                f"{where}: Chart.lock entry {truncate(name, 80)!r} {truncate(version, 80)!r}: not a chart name"
                " and an exact version (letters, digits, '.', '_', '-'; a semantic version)"
            )
        charts = chart / "charts"
        if (charts / f"{name}-{version}.tgz").is_file() or (charts / name / CHART_FILE).is_file():
            continue
        missing.append(Dependency(repository.rstrip("/"), name, version))
    return missing


def _scalar(value: object) -> str:
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""


def _with_dependencies(chart: Path, copy: Path, missing: list[Dependency], options: HelmOptions, where: str) -> Path:
    if options.fetch_dependency is None:
        names = ", ".join(f"{d.name} {d.version}" for d in missing)
        raise HelmError(f"{where}: Chart.lock dependencies are not in charts/ ({names}) and cannot be fetched here")
    shutil.copytree(chart, copy, symlinks=True)
    (copy / "charts").mkdir(exist_ok=True)
    for dep in missing:
        archive = options.fetch_dependency(dep.repository, dep.name, dep.version)
        shutil.copyfile(archive, copy / "charts" / f"{dep.name}-{dep.version}.tgz")
    return copy


def _values_file(root: Path, chart: Path, path: str, index: int, name: str) -> Path:
    file = chart / name
    shown = f"{path}/{name}" if path else name
    real, top = file.resolve(), root.resolve()
    if top not in real.parents or not real.is_file():
        raise ValuesFileNotFound(f"spec.helm.valuesFiles[{index}]: {shown} is not a file in the chart")
    return real


def _environment(home: Path) -> dict[str, str]:
    env = offline_environment()
    for name, sub in (
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
        ("HELM_PLUGINS", "plugins"),
    ):
        env[name] = str(home / sub)
    env["HELM_REGISTRY_CONFIG"] = str(home / "registry.json")
    env["HELM_REPOSITORY_CONFIG"] = str(home / "repositories.yaml")
    env["KUBECONFIG"] = str(home / "no-kubeconfig")
    return env


def _run(argv: list[str], root: Path, env: dict[str, str], where: str, timeout: float, limit: int) -> str:
    try:
        returncode, out, err = bounded.run(argv, root, env, timeout, limit)
    except OSError as exc:
        raise HelmUnavailable(f"{where}: cannot run {argv[0]}: {exc.strerror}") from None
    except bounded.OutputTooLarge:
        raise RenderTooLarge(
            f"{where} (helm output)",
            f"helm template printed more than {size_text(limit)} and was stopped",
            f"rendered size limit: {size_text(limit)}",
        ) from None
    except subprocess.TimeoutExpired:
        raise HelmTimeout(f"{where}: helm template did not finish within {timeout:g}s and was stopped") from None
    if returncode != 0:
        raise HelmError(f"{where}: helm template failed: {clean_error(err.decode('utf-8', 'replace'), root)}")
    return out.decode("utf-8", "replace")


def clean_error(stderr: str, root: Path) -> str:
    """helm's error (from its ``Error:`` line on, continuation lines joined) without its hints,
    log noise before it, or the checkout's absolute path."""
    lines = stderr.splitlines()
    start = next((n for n, line in enumerate(lines) if line.startswith("Error: ")), None)
    kept = lines[start:] if start is not None else lines[-3:]
    kept = [line.strip() for line in kept if line.strip() and not line.startswith("Use --debug")]
    text = " ".join(kept).removeprefix("Error: ")
    for prefix in {str(root.resolve()), str(root)}:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    if "missing in charts/ directory" in text:
        text += " (gitopsd renders charts offline: vendor dependencies into charts/, or commit Chart.lock)"
    return truncate(text, 800)


def _documents(output: str, path: str) -> Iterator[tuple[str, str]]:
    """Split helm's output into documents, each named by its ``# Source:`` template."""
    prefix = f"{path}/" if path else ""
    for chunk in _SEPARATOR.split(output):
        if not chunk.strip():
            continue
        source = _SOURCE.search(chunk)
        if source:
            # "<chart name>/templates/x.yaml": the chart's own directory stands for its name.
            inside = source.group(1).split("/", 1)[-1]
            yield prefix + inside, chunk
        else:
            yield f"{prefix}{CHART_FILE} (helm output)", chunk
