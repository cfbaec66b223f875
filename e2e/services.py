"""Real Prometheus, RabbitMQ and Redis for tests, on free loopback ports.

The servers come from Debian's packages (``scripts/setup.sh`` installs them). Each instance
gets a private data directory and its own ports (RabbitMQ also its own epmd), so they never
touch a system-wide service and several can run at once. Stopping removes the directory.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import procs

PROMETHEUS = "prometheus"
REDIS = "redis-server"
RABBITMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "epmd"


class ServiceUnavailable(RuntimeError):
    """A service's program is not installed."""


def _require(program: str, package: str) -> str:
    path = shutil.which(program) or (program if os.path.isabs(program) and os.access(program, os.X_OK) else None)
    if not path:
        raise ServiceUnavailable(f"{program} not found: install the Debian package '{package}' (scripts/setup.sh does)")
    return path


def _own_dir(directory: Path | None, kind: str) -> Path:
    if directory is None:
        return procs.private_dir(kind)
    directory.mkdir(parents=True)
    return directory


def _loopback(ip_family: str) -> str:
    return "::1" if ip_family == "ipv6" else "127.0.0.1"


@dataclass(slots=True)
class _Base:
    directory: Path
    host: str = "127.0.0.1"
    _procs: procs.ProcessSet = field(default_factory=procs.ProcessSet)

    @property
    def processes(self) -> list[procs.Process]:
        """The service's running processes (for callers that record them, like the demo)."""
        return list(self._procs.procs)

    def stop(self) -> None:
        self._procs.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# -- Prometheus ----------------------------------------------------------------------------


@dataclass(slots=True)
class Prometheus(_Base):
    """A Prometheus server scraping whatever targets a test registers (file service discovery)."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{procs.url_host(self.host)}:{self.port}"

    def add_target(self, job: str, address: str, labels: Mapping[str, str] | None = None) -> None:
        """Scrape ``address`` (host:port serving /metrics) as ``job`` from now on."""
        entry = [{"targets": [address], "labels": {"job": job, **(labels or {})}}]
        target_file = self.directory / "targets" / f"{job}.json"
        tmp = target_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.rename(target_file)  # atomic, so discovery never reads half a file

    def add_tls_job(self, job: str, address: str, *, ca_file: Path, token_file: Path | None = None) -> None:
        """Scrape ``https://address/metrics`` as ``job``, its certificate checked against ``ca_file``.

        TLS and credentials are settings of a scrape job, not of a discovered target, so this adds
        a job of its own (``token_file``: a bearer token sent with each scrape) and reloads.
        """
        job_config: dict[str, Any] = {
            "job_name": job,
            "scheme": "https",
            "tls_config": {"ca_file": str(ca_file)},
            "static_configs": [{"targets": [address]}],
        }
        if token_file is not None:
            job_config["authorization"] = {"credentials_file": str(token_file)}
        self._edit_jobs(job, job_config)

    def remove_job(self, job: str) -> None:
        """Stop scraping a job added by :meth:`add_tls_job`."""
        self._edit_jobs(job, None)

    def _edit_jobs(self, job: str, job_config: dict[str, Any] | None) -> None:
        path = self.directory / "prometheus.yml"
        config = json.loads(path.read_text())
        jobs = [j for j in config["scrape_configs"] if j["job_name"] != job]
        config["scrape_configs"] = jobs + ([job_config] if job_config else [])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        tmp.rename(path)
        # /-/reload answers once the new configuration is in force, or with the reason it is not.
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310 - loopback URL
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback URL
            resp.read()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query and return its result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback URL
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def start_prometheus(
    ip_family: str = "ipv4",
    scrape_interval: str = "1s",
    *,
    directory: Path | None = None,
    tie_to_parent: bool = True,
    host: str | None = None,
) -> Prometheus:
    """Start Prometheus on a free port; returns once /-/ready answers.

    ``directory`` (default: a new private temporary one) is created and removed at stop;
    ``tie_to_parent=False`` lets the server outlive this process (the demo's ``--keep``);
    ``host`` (default: the family's loopback) is the address it listens on, e.g. the host's end
    of the real node's link, where Pods reach it.
    """
    binary = _require(PROMETHEUS, "prometheus")
    directory = _own_dir(directory, "prometheus")
    host = host or _loopback(ip_family)
    prom = Prometheus(directory=directory, host=host, port=procs.free_port(host))
    try:
        (directory / "targets").mkdir()
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "e2e",
                    "file_sd_configs": [{"files": [str(directory / "targets" / "*.json")], "refresh_interval": "1s"}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        proc = prom._procs.add(
            procs.start(
                "prometheus",
                [
                    binary,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={procs.url_host(host)}:{prom.port}",
                    "--web.enable-remote-write-receiver",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                directory / "logs",
                tie_to_parent=tie_to_parent,
            )
        )
        procs.wait_until("prometheus /-/ready", lambda: procs.http_ok(f"{prom.url}/-/ready"), timeout=60, watch=[proc])
    except BaseException:
        prom.stop()
        raise
    return prom


# -- Redis -------------------------------------------------------------------------------


@dataclass(slots=True)
class Redis(_Base):
    """A redis-server with no persistence."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://{procs.url_host(self.host)}:{self.port}/0"


def start_redis(ip_family: str = "ipv4", *, directory: Path | None = None, tie_to_parent: bool = True) -> Redis:
    """Start redis-server on a free port; returns once it answers PING (arguments as for Prometheus)."""
    binary = _require(REDIS, "redis-server")
    directory = _own_dir(directory, "redis")
    host = _loopback(ip_family)
    redis = Redis(directory=directory, host=host, port=procs.free_port(host))
    try:
        proc = redis._procs.add(
            procs.start(
                "redis",
                [
                    binary,
                    "--port",
                    str(redis.port),
                    "--bind",
                    host,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "no",
                ],
                directory / "logs",
                tie_to_parent=tie_to_parent,
            )
        )
        procs.wait_until("redis PING", lambda: _redis_ping(host, redis.port), timeout=30, watch=[proc])
    except BaseException:
        redis.stop()
        raise
    return redis


def _redis_ping(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


# -- RabbitMQ ----------------------------------------------------------------------------


@dataclass(slots=True)
class RabbitMQ(_Base):
    """A RabbitMQ node with the management plugin; user guest/guest (loopback only)."""

    amqp_port: int = 0
    management_port: int = 0
    username: str = "guest"
    password: str = "guest"  # noqa: S105 - RabbitMQ's default, accepted on loopback only

    @property
    def management_url(self) -> str:
        return f"http://{procs.url_host(self.host)}:{self.management_port}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the management HTTP API (``path`` starts with /api/)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.management_url + path, data=data, method=method)  # noqa: S310
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
            raw = resp.read()
        return json.loads(raw) if raw else None

    def declare_queue(self, name: str, vhost: str = "/") -> None:
        self.api(
            "PUT",
            f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(name, safe='')}",
            {"durable": False, "auto_delete": False},
        )

    def publish(self, queue: str, count: int, vhost: str = "/") -> None:
        """Publish ``count`` messages to ``queue`` through the default exchange."""
        path = f"/api/exchanges/{urllib.parse.quote(vhost, safe='')}/amq.default/publish"
        for i in range(count):
            result = self.api(
                "POST", path, {"properties": {}, "routing_key": queue, "payload": f"m{i}", "payload_encoding": "string"}
            )
            if not result.get("routed"):
                raise RuntimeError(f"message to queue {queue!r} was not routed (does the queue exist?)")

    def queue_info(self, name: str, vhost: str = "/") -> dict[str, Any]:
        info: dict[str, Any] = self.api(
            "GET", f"/api/queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(name, safe='')}"
        )
        return info


def start_rabbitmq(ip_family: str = "ipv4", timeout: float = 90.0) -> RabbitMQ:
    """Start a private RabbitMQ node with its own epmd; returns once the management API answers."""
    binary = _require(RABBITMQ, "rabbitmq-server")
    epmd = _require(EPMD, "erlang-base")
    host = _loopback(ip_family)
    directory = procs.private_dir("rabbitmq")
    # As root, Debian's RabbitMQ must run as its own user, which needs to reach and own its dirs.
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("rabbitmq")
        except KeyError:
            run_as = None
    directory.chmod(0o755)
    rabbit = RabbitMQ(
        directory=directory, host=host, amqp_port=procs.free_port(host), management_port=procs.free_port(host)
    )
    try:
        epmd_port, dist_port = procs.free_port("127.0.0.1"), procs.free_port("127.0.0.1")
        for sub in ("mnesia", "log", "home"):
            (directory / sub).mkdir()
        (directory / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (directory / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = {host}:{rabbit.amqp_port}",
                    f"management.tcp.port = {rabbit.management_port}",
                    f"management.tcp.ip = {host}",
                    # Refresh queue counters every second instead of every five.
                    "collect_statistics_interval = 1000",
                    "log.console = true",
                    "log.console.level = warning",
                    "",
                ]
            )
        )
        (directory / "home" / ".erlang.cookie").write_text(os.urandom(16).hex().upper())
        (directory / "home" / ".erlang.cookie").chmod(0o400)
        if run_as is not None:
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        node = f"e2e{rabbit.amqp_port}@localhost"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(directory / "home"),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        }
        logs = directory / "logs"
        epmd_proc = rabbit._procs.add(
            procs.start("epmd", [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"], logs, env=env)
        )
        proc = rabbit._procs.add(
            procs.start(
                "rabbitmq",
                [binary],
                logs,
                env=env,
                cwd=directory,
                user=run_as.pw_uid if run_as else None,
                group=run_as.pw_gid if run_as else None,
            )
        )
        procs.wait_until(
            "rabbitmq management API",
            lambda: bool(rabbit.api("GET", "/api/overview").get("node")),
            timeout=timeout,
            interval=0.5,
            watch=[epmd_proc, proc],
        )
    except BaseException:
        rabbit.stop()
        raise
    return rabbit
