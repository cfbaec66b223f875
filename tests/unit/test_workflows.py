"""The GitHub Actions workflows, checked by actionlint (built by e2e.binaries), since they only run on GitHub."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from e2e.binaries import BinariesUnavailable, ensure_actionlint

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """actionlint, with shellcheck for the `run:` scripts (both installed by scripts/setup.sh)."""
    try:
        binary = ensure_actionlint()
    except BinariesUnavailable as exc:
        pytest.fail(str(exc))
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not on PATH: run scripts/setup.sh"
    return [str(binary), "-no-color", f"-shellcheck={shellcheck}", "-pyflakes="]


def _lint(actionlint: list[str], cwd: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*actionlint, *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_workflows_pass_actionlint(actionlint: list[str]) -> None:
    """Every workflow under .github/workflows/ lints clean (syntax, expressions, action inputs, shell)."""
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert any(f.name == "release.yml" for f in files)
    out = _lint(actionlint, ROOT, *files)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_rejects_a_broken_workflow(actionlint: list[str], tmp_path: Path) -> None:
    """A bad expression, an unknown job in `needs`, a wrong action input and a shell bug are each reported."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    broken = workflows / "broken.yml"
    broken.write_text(
        """\
name: broken
on: {push: {tags: ["v*"]}}
jobs:
  publish:
    needs: [no-such-job]
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          no-such-input: true
      - run: echo "${{ github.no_such_context }}"
      - run: cd $UNQUOTED_DIR && ls
"""
    )
    out = _lint(actionlint, tmp_path, broken)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no-such-job" in out.stdout
    assert "no-such-input" in out.stdout
    assert "no_such_context" in out.stdout
    assert "shellcheck reported issue" in out.stdout and "SC2086" in out.stdout
