"""A developer's Git clone for tests and the demo: commit, branch, merge, tag, push.

A work tree whose ``origin`` is a bare repository; Environments read the bare one (through a
``file://`` URL or the harness's web and ssh servers), so a test changes a remote exactly as
``git push`` does and watches gitopsd notice. Nothing depends on the machine's git config.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_GIT_IDENTITY = (
    "-c", "user.name=gitopsd e2e", "-c", "user.email=e2e@gitopsd.invalid",
    "-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false", "-c", "init.defaultBranch=main",
)  # fmt: skip



def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


def init_bare(path: Path) -> Path:
    """A new empty bare repository at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", *_GIT_IDENTITY, "init", "--quiet", "--bare", str(path)], check=True, capture_output=True)
    return path


@dataclass(slots=True)
class WorkRepo:
    """A clone of ``bare`` where tests commit and push, like a developer."""

    work: Path
    bare: Path

    @classmethod
    def create(cls, bare: Path, work: Path) -> WorkRepo:
        """A new bare repository and an empty work tree whose ``origin`` is it."""
        init_bare(bare)
        work.mkdir(parents=True)
        repo = cls(work, bare)
        repo.git("init", "--quiet", "-b", "main")
        repo.git("remote", "add", "origin", str(bare))
        return repo

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *_GIT_IDENTITY, *args],
            cwd=self.work,
            env=git_env(self.work),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed in {self.work}: {result.stderr.strip()}")
        return result.stdout.strip()

    def commit(self, files: Mapping[str, str | bytes | None], message: str = "change", *, push: bool = True) -> str:
        """Write ``files`` (None deletes one), commit on the current branch, push it; return the commit id."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        if push:
            self.git("push", "--quiet", "origin", "HEAD")
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str, *, push: bool = True) -> None:
        """Create ``name`` at HEAD and switch to it."""
        self.git("switch", "--quiet", "-c", name)
        if push:
            self.git("push", "--quiet", "origin", name)

    def switch(self, name: str) -> None:
        self.git("switch", "--quiet", name)

    def tag(self, name: str, *, message: str | None = None, ref: str = "HEAD", push: bool = True) -> str:
        """A lightweight tag, or an annotated one with ``message``; returns the commit it names."""
        self.git("tag", *(["-a", "-m", message] if message else []), name, ref)
        if push:
            self.git("push", "--quiet", "origin", f"refs/tags/{name}")
        return self.git("rev-parse", f"{name}^{{commit}}")

    def merge(self, branch: str, *, push: bool = True) -> str:
        """Merge ``branch`` into the current branch (a merge commit), push, return the new head."""
        self.git("merge", "--quiet", "--no-ff", "--no-edit", branch)
        if push:
            self.git("push", "--quiet", "origin", "HEAD")
        return self.head()

    def delete_remote(self, ref: str) -> None:
        self.git("push", "--quiet", "origin", f":{ref}")

    @property
    def file_url(self) -> str:
        return f"file://{self.bare}"


