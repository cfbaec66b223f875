"""Leftovers of a killed harness are found and removed; live ones are not touched."""

from __future__ import annotations

import shutil
import subprocess

from e2e import procs


def test_reap_removes_only_directories_of_dead_owners() -> None:
    """A directory whose owner exited is removed; one owned by a live process stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = procs.private_dir("unit-orphan")
    (orphan / ".gitopsd-owner").write_text(str(dead.pid))
    mine = procs.private_dir("unit-mine")
    try:
        removed = procs.reap_stale_dirs()
        assert orphan in removed
        assert not orphan.exists()
        assert mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)
