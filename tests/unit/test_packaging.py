"""What the distribution promises: its runtime dependencies, its wheel, its image's bases."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("gitopsd", "metrics_adapter")
# Distributions whose import name is not their normalised name with "-" → "_".
IMPORT_NAMES = {"pyyaml": "yaml", "prometheus-client": "prometheus_client"}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _distribution_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def declared_imports() -> set[str]:
    """Top-level module names of the declared runtime dependencies."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    names = {_distribution_name(r) for r in project["dependencies"]}
    return {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names}


def third_party_imports(roots: list[Path]) -> dict[str, set[str]]:
    """Each third-party top-level module imported under ``roots``, with the files importing it."""
    first_party = {r.name for r in roots}
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".", 1)[0]
                    if top not in sys.stdlib_module_names and top not in first_party and top != "__future__":
                        found.setdefault(top, set()).add(str(path.relative_to(root.parent)))
    return found


def test_runtime_dependencies_are_exactly_what_the_programs_import() -> None:
    """A new third-party import without a declaration, or a declaration nothing imports, fails."""
    imported = third_party_imports([ROOT / p for p in RUNTIME_PACKAGES])
    declared = declared_imports()
    undeclared = {m: sorted(files)[:3] for m, files in imported.items() if m not in declared}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    assert not declared - set(imported), f"declared but imported by neither program: {sorted(declared - set(imported))}"


def test_import_scan_sees_every_import_form(tmp_path: Path) -> None:
    """Plain, dotted, from- and function-local imports count; stdlib, relative and own modules do not."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import os\nimport yaml.constructor\nfrom . import sub\n")
    (pkg / "sub" / "__init__.py").write_text(
        "from __future__ import annotations\nfrom pkg.sub import x\nfrom aiohttp import web\n"
        "def f():\n    import rich.console\n"
    )
    assert third_party_imports([pkg]) == {
        "yaml": {"pkg/__init__.py"},
        "aiohttp": {"pkg/sub/__init__.py"},
        "rich": {"pkg/sub/__init__.py"},
    }


def test_gitpython_and_prometheus_api_client_are_not_runtime_dependencies() -> None:
    """The two clients the programs replaced (see their ports' docstrings) stay out of the install."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    names = {_distribution_name(r) for r in project["dependencies"]}
    assert not names & {"gitpython", "prometheus-api-client"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel pip builds from a copy of the tree (every top-level package in it, so e2e/ too)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for path in ROOT.iterdir():
        if path.name in ("pyproject.toml", "README.md") or (path.is_dir() and (path / "__init__.py").is_file()):
            if path.is_dir():
                shutil.copytree(path, src / path.name, ignore=ignore)
            else:
                shutil.copy2(path, src / path.name)
    assert (src / "e2e" / "__init__.py").is_file()
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(src), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("gitopsd-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_only_the_two_programs(wheel: zipfile.ZipFile) -> None:
    """gitopsd/, metrics_adapter/ and the dist-info; never e2e/, tests/ or bench/."""
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == set(RUNTIME_PACKAGES)
    for package in RUNTIME_PACKAGES:
        in_tree = {str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}
        in_wheel = {n for n in wheel.namelist() if n.startswith(f"{package}/")}
        assert in_tree <= in_wheel, sorted(in_tree - in_wheel)[:5]


def test_wheel_declares_both_commands(wheel: zipfile.ZipFile) -> None:
    """`gitopsd` and `metrics-adapter` are console scripts pointing at functions that exist."""
    (entry_points,) = (n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    scripts = dict(parser["console_scripts"])
    assert scripts == {"gitopsd": "gitopsd.cli:main", "metrics-adapter": "metrics_adapter.cli:main"}
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr)), target


def test_wheel_metadata_requires_what_pyproject_declares(wheel: zipfile.ZipFile) -> None:
    """Requires-Dist without an extra marker is the runtime list, so pipx installs exactly that."""
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    lines = wheel.read(metadata).decode().splitlines()
    runtime = {_distribution_name(line.split(":", 1)[1].strip()) for line in lines
               if line.startswith("Requires-Dist:") and "extra ==" not in line}  # fmt: skip
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert runtime == {_distribution_name(r) for r in project["dependencies"]}


def test_image_bases_are_pinned_by_digest() -> None:
    """Every FROM is a stage or a build argument whose default is tag@sha256 of 64 hex digits.

    An argument's default may name another argument (BUILD_IMAGE=${PYTHON_IMAGE}) or a stage
    (KUBECTL_IMAGE=kubectl-download): both are followed.
    """
    text = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))

    def default(ref: str) -> str:
        while arg := re.fullmatch(r"\$\{(\w+)\}", ref):
            ref = args[arg.group(1)]
        return ref

    stages: set[str] = set()
    bases = []
    for ref, stage in re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE):
        if ref not in stages and default(ref) not in stages:
            bases.append(ref)
        if stage:
            stages.add(stage)
    assert len(bases) == 3
    for ref in bases:
        assert re.fullmatch(r"\$\{(\w+)\}", ref), f"FROM {ref}: name the base through a build argument"
        assert re.fullmatch(r"[\w.-]+:[\w.-]+@sha256:[0-9a-f]{64}", default(ref)), default(ref)
