"""``./scripts/demo.sh`` as a user runs it: every act's outcome, and nothing left behind on any way out.

The full demo runs once, in the background, from the first test that needs it, cut off from
the network when the machine allows (a network namespace with only loopback). Meanwhile the
short runs go on in directories of their own: a second run in the full run's directory,
SIGTERM during the cluster's start, SIGINT mid-story, ``--keep`` then ``--stop``, a component
that fails to start, missing programs. The full run's own checks come last in the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e import procs

pytestmark = [pytest.mark.cluster, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo.sh"
FULL_RUN_TIMEOUT = 480.0  # the demo takes ~2.5 min here; CI machines may be slower
CUSTOM = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop-prod/services/web/http_requests_per_second"
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop-prod/jobs_backlog"


def _can_isolate() -> bool:
    """Whether this machine lets us run a command in a network namespace with only loopback up."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, check=False)
    return probe.returncode == 0


@dataclass
class DemoRun:
    """One ``scripts/demo.sh`` process, its output files and the processes it recorded."""

    directory: Path
    out: Path
    err: Path
    popen: subprocess.Popen[bytes]
    isolated: bool = False
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float) -> None:
        """Wait until ``marker`` is in stdout; fail at once if the demo exits first."""
        deadline = time.monotonic() + timeout
        while marker not in self.stdout:
            if self.popen.poll() is not None:
                pytest.fail(f"the demo exited ({self.popen.returncode}) before {marker!r}:\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {marker!r} within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)

    def record_pids(self) -> dict[str, int]:
        """The processes the demo recorded as running (its state file), remembered for the final check."""
        doc = json.loads((self.directory / "demo.json").read_text())
        self.pids.update({name: int(pid) for name, pid in doc["processes"].items()})
        return dict(self.pids)

    def finish(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.interrupt(signal.SIGTERM, 60)
            pytest.fail(f"the demo did not finish within {timeout:.0f} s:\n{self.tail()}")

    def interrupt(self, sig: signal.Signals, timeout: float = 60) -> int:
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"the demo did not stop within {timeout:.0f} s of {sig.name}:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.stdout.splitlines()[-40:]) + "\n--- stderr ---\n" + self.stderr[-3000:]


def start_demo(
    base: Path,
    *args: str,
    env: dict[str, str] | None = None,
    isolate: bool = False,
    name: str = "demo",
    label: str | None = None,
    setup: bool = False,
) -> DemoRun:
    """Start the demo in ``base/name``; its output goes to ``base/<label>.out|.err`` (label: name).

    ``setup`` runs scripts/setup.sh first, as the README's command does (warm: a fraction of a second).
    """
    directory = base / name
    out, err = base / f"{label or name}.out", base / f"{label or name}.err"
    argv = [str(SCRIPT), *([] if setup else ["--skip-setup"]), "--dir", str(directory), *args]
    if isolate:
        argv = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *argv]
    with open(out, "wb") as o, open(err, "wb") as e:
        popen = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    return DemoRun(directory, out, err, popen, isolated=isolate)


def run_demo(base: Path, *args: str, name: str = "demo", label: str | None = None) -> DemoRun:
    run = start_demo(base, *args, name=name, label=label)
    run.finish(timeout=300)
    return run


def processes_naming(directory: Path) -> list[str]:
    needle = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(entry.name + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def assert_nothing_left(run: DemoRun) -> None:
    """No process names the directory, every recorded process is gone, the directory is gone."""
    deadline = time.monotonic() + 10  # a killed process may take a moment to leave /proc

    def lingering() -> bool:
        return bool(processes_naming(run.directory)) or any(procs.pid_alive(p) for p in run.pids.values())

    while lingering() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(run.directory) == []
    assert {n: p for n, p in run.pids.items() if procs.pid_alive(p)} == {}
    assert not run.directory.exists()
    # The demo keeps everything in its directory: no harness temp dir is left in its name.
    owners = []
    for d in Path("/tmp").glob("gitopsd-*"):
        try:
            owners.append(int((d / ".gitopsd-owner").read_text()))
        except (OSError, ValueError):
            continue
    assert run.popen.pid not in owners


def block_after(text: str, command: str, occurrence: int = -1) -> list[str]:
    """The output lines of ``$ command`` (its ``occurrence``-th run), up to the next prompt or note."""
    chunks = text.split(f"$ {command}\n")
    assert len(chunks) > 1, f"`{command}` was never shown"
    body = chunks[1:][occurrence]
    lines = []
    for line in body.splitlines():
        if line.startswith(("$ ", "# ", "[ok] ", "===")):
            break
        lines.append(line)
    return lines


# -- the full run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The whole demo as the README runs it (set-up included), once, in the background, without network
    when the machine allows: after set-up, nothing may need more than loopback."""
    run = start_demo(tmp_path_factory.mktemp("demo-full"), isolate=_can_isolate(), setup=True)
    yield run
    if run.popen.poll() is None:
        run.interrupt(signal.SIGTERM)


@pytest.fixture(scope="module")
def finished(full_run: DemoRun) -> DemoRun:
    """The full run, once it has ended (its processes recorded when the set-up was done)."""
    if not full_run.pids:
        full_run.wait_for("=== 1.", timeout=180)
        full_run.record_pids()
    code = full_run.finish(FULL_RUN_TIMEOUT)
    assert code == 0, full_run.tail()
    return full_run


def test_a_second_run_in_the_same_directory_is_refused(full_run: DemoRun, tmp_path: Path) -> None:
    """While a demo runs, another run and --stop in its directory are refused at once and change nothing."""
    full_run.wait_for("=== 1.", timeout=180)
    before = full_run.record_pids()
    second = run_demo(full_run.directory.parent, name=full_run.directory.name, label="second")  # same --dir
    assert second.popen.returncode == 1
    assert f"another demo is running in {full_run.directory}" in second.stderr
    assert "nothing was started" in second.stderr
    assert second.stdout == ""
    stop = subprocess.run(
        [str(SCRIPT), "--stop", "--dir", str(full_run.directory)], capture_output=True, text=True, timeout=30
    )
    assert stop.returncode == 1 and "nothing was stopped" in stop.stderr
    assert full_run.popen.poll() is None
    assert json.loads((full_run.directory / "demo.json").read_text())["processes"] == before
    assert all(procs.pid_alive(pid) for pid in before.values())


def test_sigterm_during_the_cluster_start_stops_everything(tmp_path: Path) -> None:
    """SIGTERM while the cluster boots: exit 130, what had started is stopped, the directory removed."""
    run = start_demo(tmp_path)
    run.wait_for("Redis is up", timeout=60)
    time.sleep(2)  # into the cluster's start
    assert "local cluster ready" not in run.stdout
    run.record_pids()
    assert run.interrupt(signal.SIGTERM) == 130
    assert "interrupted (SIGTERM): stopping everything the demo started" in run.stderr
    assert "stopped everything the demo started and removed" in run.stdout
    assert_nothing_left(run)


def test_sigint_mid_story_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C in act 1: exit 130, every component (cluster, services, adapter, daemon, app) stopped."""
    run = start_demo(tmp_path)
    run.wait_for("serverside-applied", timeout=180)
    pids = run.record_pids()
    assert {"kube-apiserver", "prometheus", "redis", "metrics-adapter", "gitopsd", "demo-app"} <= set(pids)
    assert run.interrupt(signal.SIGINT) == 130
    assert "interrupted (SIGINT)" in run.stderr
    assert_nothing_left(run)


def test_keep_leaves_it_running_and_stop_ends_it(tmp_path: Path) -> None:
    """--keep: the stack outlives the demo, its kubeconfig works, a new run is refused; --stop ends all of it."""
    run = run_demo(tmp_path, "--keep", "--until", "0")
    assert run.popen.returncode == 0, run.tail()
    kubeconfig = run.directory / "cluster" / "kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in run.stdout
    assert f"./scripts/demo.sh --stop --dir {run.directory}" in run.stdout
    pids = run.record_pids()
    assert all(procs.pid_alive(pid) for pid in pids.values()), pids
    crd = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "get", "crd", "environments.gitopsd.dev", "-o", "name"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert crd.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/environments.gitopsd.dev"

    again = run_demo(tmp_path, label="again")
    assert again.popen.returncode == 1
    assert "a demo started with --keep is still running" in again.stderr
    assert all(procs.pid_alive(pid) for pid in pids.values())

    stop = subprocess.run(
        [str(SCRIPT), "--stop", "--dir", str(run.directory)], capture_output=True, text=True, timeout=60
    )
    assert stop.returncode == 0, stop.stderr
    assert f"removed {run.directory}" in stop.stdout and "kube-apiserver" in stop.stdout
    assert_nothing_left(run)


def test_a_component_that_fails_to_start_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    """The adapter refusing its arguments: the error names metrics-adapter and its complaint; all else stops."""
    env = {**os.environ, "DEMO_ADAPTER_ARGS": "--no-such-flag"}
    run = start_demo(tmp_path, env=env)
    run.wait_for("local cluster ready", timeout=120)
    run.record_pids()
    assert run.finish(timeout=120) == 1
    assert "error: metrics-adapter did not start" in run.stderr
    assert "--no-such-flag" in run.stderr
    assert "Nothing of the demo is left running." in run.stderr
    assert "metrics-adapter behind the aggregator" not in run.stdout
    assert_nothing_left(run)


def test_missing_programs_are_named_before_anything_starts(tmp_path: Path) -> None:
    """Without redis-cli on PATH: one error naming it and its Debian package; nothing created."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("git", "kubectl", "prometheus", "redis-server"):
        found = shutil.which(program)
        assert found, program
        (bin_dir / program).symlink_to(found)
    directory = tmp_path / "demo"
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "e2e.demo", "--dir", str(directory)],
        env={**os.environ, "PATH": str(bin_dir)}, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "missing programs: redis-cli (Debian package redis-tools)" in out.stderr
    assert not directory.exists()


def test_directories_that_are_not_a_demos_are_never_touched(tmp_path: Path) -> None:
    """--stop and a run refuse a directory without the demo's state file, and leave its files alone."""
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    stop = subprocess.run(
        [str(SCRIPT), "--stop", "--dir", str(directory)], capture_output=True, text=True, timeout=30, check=False
    )
    assert stop.returncode == 1 and "is not a demo directory" in stop.stderr
    run = run_demo(tmp_path, name="mine")
    assert run.popen.returncode == 1
    assert "exists and is not a demo directory" in run.stderr
    assert (directory / "notes.txt").read_text() == "keep me"


# -- the full run's outcome ----------------------------------------------------------------------


def test_every_act_succeeds(finished: DemoRun) -> None:
    """Each act ends with its success line, and the summary gives the time taken."""
    text = finished.stdout
    for line in (
        "[ok] dev and staging run the first commit",
        "[ok] a push to develop deployed web 1.0.0 to dev",
        "[ok] the merge to main deployed web 1.0.0 to staging",
        "[ok] tag v1.0.0 deployed web 1.0.0 to prod (release 1)",
        "[ok] v1.1.0 rolled back automatically (release 2 → 3) and held",
        "[ok] tag v1.1.1 deployed to prod (release 4); the hold on v1.1.0 is gone",
        "[ok] the HPA scaled web 1 → 4 (request rate) → 6 (queue length) and back to 1 when both fell",
    ):
        assert line in text, line
    assert re.search(r"^The demo took \d+ min \d\d s\.$", text, re.M)
    # The pushes went through the repository's hook: git's own output shows gitopsd's answer.
    assert "remote: 1 Environment(s) triggered by" in text and "(gitopsd-system/prod)" in text


def test_history_shows_the_bad_release_rolled_back_and_held(finished: DemoRun) -> None:
    """`gitopsd get` shows v1.1.0 held; `gitopsd history prod` shows release 2 RolledBack, 3 its restore."""
    text = finished.stdout
    get_after_rollback = block_after(text, "gitopsd get", occurrence=2)  # after first commit, v1.0.0, rollback
    prod = next(line for line in get_after_rollback if line.startswith("prod "))
    assert "v1.0.0@sha1:" in prod and "v1.1.0@sha1:" in prod, prod  # REVISION and HELD
    history = block_after(text, "gitopsd history prod", occurrence=0)
    rows = {line.split()[0]: line for line in history[1:]}
    assert set(rows) == {"1", "2", "3"}, history
    assert "v1.0.0@" in rows["1"] and "Healthy" in rows["1"]
    assert "v1.1.0@" in rows["2"] and "RolledBack" in rows["2"]
    assert "v1.0.0@" in rows["3"] and "Healthy" in rows["3"] and "current, rollback to 1" in rows["3"]
    events = block_after(text, "kubectl get events -n gitopsd-system --field-selector reason=RolledBack")
    assert any("Warning" in line and "holding v1.1.0" in line for line in events), events
    final = block_after(text, "gitopsd history prod", occurrence=1)
    assert "v1.1.1@" in final[-1] and "Healthy" in final[-1] and "current" in final[-1]


def test_the_hpa_scaled_on_both_metrics(finished: DemoRun) -> None:
    """The HPA went above 1 replica on the request rate (4) and on the queue (6); both metrics were served."""
    text = finished.stdout
    assert "[ok] the HPA scaled web to 4 on the request rate" in text
    assert "[ok] the HPA scaled web to 6 on the queue length" in text
    assert "[ok] with both metrics down, the HPA scaled web back to 1" in text
    replicas = [int(line.split()[-2]) for line in text.splitlines() if line.startswith("web    Deployment/web")]
    assert max(replicas) == 6 and replicas[-1] == 1, replicas
    custom = json.loads("".join(block_after(text, f"kubectl get --raw '{CUSTOM}'")))
    (item,) = custom["items"]
    assert item["describedObject"]["kind"] == "Service" and item["metric"]["name"] == "http_requests_per_second"
    assert 30 <= _quantity(item["value"]) <= 40  # 35 requests/s sent
    external = json.loads("".join(block_after(text, f"kubectl get --raw '{EXTERNAL}'")))
    assert [(i["metricName"], i["value"]) for i in external["items"]] == [("jobs_backlog", "28")]


def test_the_full_run_leaves_nothing_behind(finished: DemoRun) -> None:
    """After a normal end: no process, no directory, no temporary directory of the demo's."""
    assert f"stopped everything the demo started and removed {finished.directory}" in finished.stdout
    assert {"kube-apiserver", "etcd", "gitopsd", "metrics-adapter", "prometheus", "redis", "demo-app"} <= set(
        finished.pids
    )
    assert_nothing_left(finished)


def test_the_full_run_needed_no_network(finished: DemoRun) -> None:
    """The full run, set-up included, ran in a network namespace with only loopback (where the machine allows)."""
    if not finished.isolated:
        pytest.skip("this machine does not allow a network namespace (unshare -n); the run had the network")
    assert "[setup] control-plane binaries" in finished.stderr  # set-up ran in the namespace too
    assert finished.popen.returncode == 0


def _quantity(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
