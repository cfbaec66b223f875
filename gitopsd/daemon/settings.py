"""What ``gitopsd run`` is told (its flags become ``Settings``) and the daemon's fixed figures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.tenancy import Tenancy

#: When to look again at an Environment whose spec was refused, or whose reconcile crashed.
INVALID_RETRY = 60.0
#: Runs per worker: the one working and those waiting on a health gate. Measured with 64
#: workers and 400 new Environments (bench.sync_environments shape): a worker held through the
#: health wait left the 2 cores 60 % used, the pool being the limit.
RUNS_PER_WORKER = 4
#: The longest wait between two tries of a Terminating Environment whose cleanup fails.
FINALIZE_RETRY_MAX = 300.0


@dataclass(frozen=True, slots=True)
class Settings:
    namespace: str | None = None  # None: every namespace
    label_selector: str | None = None  # a shard: only Environments with this label
    workers: int = 8
    cache_dir: Path = Path("/tmp/gitopsd")
    probes_host: str = "0.0.0.0"  # noqa: S104 (probes must be reachable by the kubelet)
    probes_port: int = 8080
    jitter: float = 0.1
    shutdown_grace: float = 30.0
    git_timeout: float = 60.0
    webhook_host: str = "0.0.0.0"  # noqa: S104 (Git hosts must reach it)
    webhook_port: int | None = None  # None: no webhook receiver
    # A webhook connection that has not sent a whole request within this is closed (slow or
    # idle clients hold no socket for long; aiohttp's own default is an hour).
    webhook_idle_timeout: float = 15.0
    tenancy: Tenancy = field(default_factory=Tenancy)
    #: Working runs one remote cluster's Environments may hold at once (0: half the workers).
    cluster_share: int = 0


#: A task run beside the daemon until the ``stop`` it is given is set (notifications, secret refresh).
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
