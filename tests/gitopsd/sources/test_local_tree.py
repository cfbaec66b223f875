"""LocalTree: a plain directory read through the same interface as a Git commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.sources import LocalTree, PathNotFound


@pytest.fixture
def tree(tmp_path: Path) -> LocalTree:
    (tmp_path / "deploy" / "base").mkdir(parents=True)
    (tmp_path / "deploy" / "base" / "a.yaml").write_text("a: 1\n")
    (tmp_path / "deploy" / "b.json").write_text("{}")
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / "deploy" / "link.yaml").symlink_to(tmp_path / "README.md")
    return LocalTree(tmp_path)


def test_files_are_keyed_by_root_relative_path(tree: LocalTree) -> None:
    """files(path) reads the directory recursively, keys relative to the root, links and .git skipped."""
    assert tree.files("deploy") == {"deploy/base/a.yaml": b"a: 1\n", "deploy/b.json": b"{}"}
    assert tree.files("./deploy/base/") == {"deploy/base/a.yaml": b"a: 1\n"}
    assert set(tree.files("")) == {"README.md", "deploy/base/a.yaml", "deploy/b.json"}


def test_missing_path_is_file_not_found(tree: LocalTree) -> None:
    """A missing directory, a file, or a path leaving the root raises PathNotFound (a FileNotFoundError)."""
    with pytest.raises(FileNotFoundError, match=r"'nope' .* not found"):
        tree.files("nope")
    with pytest.raises(PathNotFound, match="is a file"):
        tree.files("README.md")
    with pytest.raises(PathNotFound, match="outside the repository"):
        tree.files("../elsewhere")


def test_directory_is_the_root(tree: LocalTree, tmp_path: Path) -> None:
    """directory() is the directory itself (nothing copied)."""
    assert tree.directory() == tmp_path.resolve()
