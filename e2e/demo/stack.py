"""Everything the demo runs, started in order and stopped as one: the harness's parts, composed.

Order: Prometheus and Redis (quick, and a missing program shows up before anything slow),
the local cluster, the demo app, ``metrics-adapter`` behind the aggregator, the Environment
CRD, ``gitopsd run``, then the Git repository. Each start names its component in the error
if it fails; the caller then stops whatever did start. Every process goes into the state
file the moment it exists (guard.State), so nothing can run unrecorded. With ``keep`` the
processes are not tied to this one (no PR_SET_PDEATHSIG), so they outlive the demo.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from e2e import adapter, bootstrap, procs, services
from e2e.cluster import ClusterInfo, LocalCluster
from e2e.daemon import DaemonProcess
from e2e.demo import shop
from e2e.demo.guard import State
from e2e.gitrepo import WorkRepo

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"
WEBHOOK_SECRET = "gitopsd-webhooks"  # noqa: S105 - the Secret's name
FAST_ADAPTER = ["--metrics-relist-interval=2s", "--refresh-interval=1s", "--max-staleness=10s"]
# Programs the demo runs itself, and the Debian package of each (scripts/setup.sh installs them).
PROGRAMS = {
    "git": "git",
    "kubectl": "kubectl",
    "prometheus": "prometheus",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
}


class StartFailed(RuntimeError):
    """A component of the demo did not start; ``component`` names it."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component} did not start: {reason}")
        self.component = component


def missing_programs() -> list[str]:
    return [f"{prog} (Debian package {pkg})" for prog, pkg in PROGRAMS.items() if not shutil.which(prog)]


@dataclass
class Stack:
    directory: Path
    state: State
    keep: bool = False
    prometheus: services.Prometheus | None = None
    redis: services.Redis | None = None
    cluster: LocalCluster | None = None
    info: ClusterInfo | None = None
    app_url: str = ""
    adapter: adapter.RunningAdapter | None = None
    daemon: DaemonProcess | None = None
    repo: WorkRepo | None = None
    home: Path = field(default_factory=Path)

    @property
    def tie(self) -> bool:
        return not self.keep

    @property
    def kubeconfig(self) -> Path:
        assert self.info is not None
        return self.info.kubeconfig

    def _step(self, component: str, start: Callable[[], None], say: Callable[[str], None], label: str) -> None:
        started = time.monotonic()
        try:
            start()
        except StartFailed:
            raise
        except Exception as exc:
            raise StartFailed(component, str(exc)) from exc
        say(f"{label} ({time.monotonic() - started:.1f} s)")

    def start(self, say: Callable[[str], None]) -> None:
        self._step("Prometheus", self._prometheus, say, "Prometheus is up, scraping every second")
        self._step("Redis", self._redis, say, "Redis is up (the job queue)")
        self._step(
            "the local cluster",
            self._cluster,
            say,
            "local cluster ready: etcd, kube-apiserver, controller-manager (HPA every 5 s), scheduler, 3 kwok nodes",
        )
        self._step("the demo app", self._app, say, "demo app answering for prod's web pods; Prometheus scrapes it")
        self._step(
            "metrics-adapter",
            self._adapter,
            say,
            "metrics-adapter behind the aggregator: custom.metrics.k8s.io and external.metrics.k8s.io Available",
        )
        self._step("gitopsd", self._gitopsd, say, "Environment CRD installed; gitopsd run is up, webhook receiver on")
        self._step("the Git repository", self._git, say, "Git repository with main and develop; its hook calls gitopsd")

    # -- components --------------------------------------------------------------------------

    def _prometheus(self) -> None:
        self.prometheus = services.start_prometheus(directory=self.directory / "prometheus", tie_to_parent=self.tie)
        self._record("prometheus", self.prometheus.processes)

    def _redis(self) -> None:
        self.redis = services.start_redis(directory=self.directory / "redis", tie_to_parent=self.tie)
        self._record("redis", self.redis.processes)

    def _cluster(self) -> None:
        self.cluster = LocalCluster(self.directory / "cluster", "ipv4", tie_to_parent=self.tie)
        try:
            self.info = self.cluster.start()
        finally:
            for name, pid in self.cluster.processes.items():
                self.state.add(name, pid)
        self.state.info["kubeconfig"] = str(self.info.kubeconfig)
        self.state.save()

    def _app(self) -> None:
        assert self.prometheus is not None
        port = procs.free_port("127.0.0.1")
        assert self.info is not None
        info = self.info
        argv = [
            sys.executable, "-m", "e2e.demo.app", f"--api-url={info.api_url}", f"--ca={info.ca_cert}",
            f"--cert={info.admin_cert}", f"--key={info.admin_key}", f"--namespace={shop.TARGETS['prod']}",
            f"--selector=app={shop.APP}", f"--service={shop.APP}", f"--port={port}",
        ]  # fmt: skip
        proc = procs.start("demo-app", argv, self.directory / "app", tie_to_parent=self.tie, cwd=ROOT)
        self.state.add("demo-app", proc.pid)
        self.app_url = f"http://127.0.0.1:{port}"
        procs.wait_until("the demo app's /metrics", lambda: procs.http_ok(self.app_url + "/metrics"), timeout=30,
                         watch=[proc])  # fmt: skip
        self.prometheus.add_target("shop-web", f"127.0.0.1:{port}")

    def _adapter(self) -> None:
        assert self.info is not None and self.prometheus is not None and self.redis is not None
        extra = FAST_ADAPTER + shlex.split(os.environ.get("DEMO_ADAPTER_ARGS", ""))
        self.adapter = adapter.start_adapter(
            self.info, self.directory / "adapter", shop.adapter_config(self.redis.url),
            prometheus_url=self.prometheus.url, extra_args=extra, tie_to_parent=self.tie,
        )  # fmt: skip
        self.state.add("metrics-adapter", self.adapter.process.pid)
        adapter.register(self.info, self.adapter)
        info, proc = self.info, self.adapter.process
        procs.wait_until("the metrics APIServices to be Available", lambda: adapter.available(info), timeout=90,
                         interval=0.5, watch=[proc])  # fmt: skip

    def _gitopsd(self) -> None:
        assert self.info is not None
        home = self.directory / "gitopsd"
        home.mkdir()
        secret = home / "webhook-secret"
        secret.write_text(secrets.token_hex(16) + "\n")
        secret.chmod(0o600)
        self._kubectl("apply", "--server-side", "-f", str(CRD))
        self._kubectl("wait", "--for=condition=Established", "crd/environments.gitopsd.dev", "--timeout=30s")
        self._kubectl("create", "namespace", shop.NAMESPACE)
        self._kubectl(
            "create", "secret", "generic", WEBHOOK_SECRET, f"--namespace={shop.NAMESPACE}",
            f"--from-file=generic={secret}",
        )  # fmt: skip
        # gitopsd get / history without -n: the context's namespace is where the Environments are.
        self._kubectl("config", "set-context", "--current", f"--namespace={shop.NAMESPACE}")
        config = home / "config.yaml"
        config.write_text(shop.daemon_config(WEBHOOK_SECRET))
        port = procs.free_port("127.0.0.1")
        self.daemon = DaemonProcess(
            self.kubeconfig, home, f"--namespace={shop.NAMESPACE}", f"--config={config}",
            f"--webhook-bind-address=127.0.0.1:{port}",
            "--shutdown-grace=3",  # a stopping demo abandons a step in flight sooner than the harness's 10 s
            tie_to_parent=self.tie,
        )  # fmt: skip
        try:
            self.daemon.start()
        finally:
            if self.daemon.proc is not None:  # started, even if its readiness wait was cut short
                self.state.add("gitopsd", self.daemon.proc.pid)
        self.state.info["receiver"] = f"http://127.0.0.1:{port}"
        self.state.info["secret_file"] = str(secret)
        self.state.save()

    def _git(self) -> None:
        self.home = self.directory / "home"
        self.home.mkdir()
        (self.home / ".gitconfig").write_text(
            "[user]\n\tname = Dana Developer\n\temail = dana@shop.example\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        )
        self.repo = WorkRepo.create(self.directory / "git" / "shop.git", self.directory / "work" / "shop")
        self.repo.commit(shop.initial_files("0.9.0"), "shop: web 0.9.0 with dev, staging and prod overlays")
        self.repo.branch("develop")
        # The hook goes in after the first pushes: no Environment exists yet to tell about them.
        hook = self.repo.bare / "hooks" / "post-receive"
        hook.write_text(
            shop.post_receive_hook(
                sys.executable, self.repo.file_url, self.state.info["receiver"], self.state.info["secret_file"]
            )
        )
        hook.chmod(0o755)

    # -- helpers -------------------------------------------------------------------------------

    def api(self) -> bootstrap.Api:
        """A small client for the cluster, as its admin (standard library only)."""
        assert self.info is not None
        ctx = ssl.create_default_context(cafile=str(self.info.ca_cert))
        ctx.load_cert_chain(str(self.info.admin_cert), str(self.info.admin_key))
        return bootstrap.Api(self.info.api_url, ctx)

    def _kubectl(self, *args: str) -> None:
        out = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")

    def _record(self, prefix: str, processes: list[procs.Process]) -> None:
        for proc in processes:
            self.state.add(prefix if proc.name == prefix else f"{prefix}-{proc.name}", proc.pid)

    def shell_env(self) -> dict[str, str]:
        """The environment of the commands shown: what a user's shell has after the export line."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "TERM": "dumb",
            "COLUMNS": "160",
        }
