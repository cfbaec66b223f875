"""Leftovers of a killed harness are found and removed; live ones are not touched."""

from __future__ import annotations

import shutil
import subprocess

from e2e import procs


def test_reap_removes_only_directories_of_dead_owners() -> None:
    """A dead owner's directory goes, with the processes still using it; a live owner's stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = procs.private_dir("unit-orphan")
    (orphan / ".gitopsd-owner").write_text(str(dead.pid))
    # Like RabbitMQ's Erlang VM: a grandchild in its own session, naming the directory.
    survivor = subprocess.Popen(["sh", "-c", "sleep 60", str(orphan / "vm")], start_new_session=True)
    mine = procs.private_dir("unit-mine")
    try:
        removed = procs.reap_stale_dirs()
        assert orphan in removed
        assert not orphan.exists()
        assert survivor.wait(timeout=10) == -9
        assert mine.exists()
    finally:
        survivor.kill()
        shutil.rmtree(mine, ignore_errors=True)


def test_free_ports_stay_out_of_the_ephemeral_range_and_are_bindable() -> None:
    """Outgoing connections take ephemeral ports; a port picked below that range stays ours to bind."""
    low = procs.ephemeral_low()
    for host in ("127.0.0.1", "::1"):
        for _ in range(20):
            port = procs.free_port(host)
            assert port < low or low <= 10_000
            procs.free_port_exact(host, port)
