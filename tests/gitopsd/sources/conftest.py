"""Fixtures for the Git source tests: a source cache per test, repositories, and ways to watch processes."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from e2e.gitrepo import WorkRepo
from gitopsd.sources import GitSources


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[GitSources]:
    """A GitSources over a fresh cache directory, closed after the test."""
    git_sources = GitSources(tmp_path / "cache", timeout=20)
    yield git_sources
    await git_sources.close()


@pytest.fixture
def remote(tmp_path: Path) -> WorkRepo:
    """A repository with develop, main and release tags, pushed to a bare remote read over file://.

    main: deploy/{dev,staging,prod}/app.yaml; develop one commit ahead; tags v1.0.0 (annotated),
    v1.1.0 and v1.10.0 on main's history, v2.0.0-rc.1 on develop.
    """
    repo = WorkRepo.create(tmp_path / "remote" / "app.git", tmp_path / "work")
    files = {f"deploy/{env}/app.yaml": f"env: {env}\nversion: 1\n" for env in ("dev", "staging", "prod")}
    repo.commit({**files, "README.md": "manifests\n"}, "first")
    repo.tag("v1.0.0", message="release 1.0.0")
    repo.commit({"deploy/prod/app.yaml": "env: prod\nversion: 2\n"}, "second")
    repo.tag("v1.1.0")
    repo.tag("v1.10.0")
    repo.branch("develop")
    repo.commit({"deploy/dev/app.yaml": "env: dev\nversion: 3\n"}, "on develop")
    repo.tag("v2.0.0-rc.1")
    repo.switch("main")
    return repo


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A loopback port that accepts connections (kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_under(directory: Path) -> list[str]:
    """Processes whose working directory is inside ``directory`` (git and the ssh/https helpers it starts)."""
    found = []
    prefix = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and (cwd == prefix or cwd.startswith(prefix + "/")):
            found.append(f"{entry.name}: {cmdline}")
    return found


def git_children() -> list[str]:
    """Live git or ssh processes whose parent is this test process."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z" and comm.startswith(("git", "ssh")):
            found.append(f"{entry.name}: {comm}")
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
