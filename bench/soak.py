"""Memory over time under churn: the daemon's RSS each minute while objects and Environments come and go.

Each minute: a few managed ConfigMaps are edited by another field manager (drift for the daemon
to restore), a handful of new Environments are created (into a namespace of that minute, from
app directories the main fleet does not use), and the previous minute's are deleted (their
objects pruned by the daemon's finalizer). The daemon's VmRSS is sampled at each minute's end,
and a least-squares line through the samples says whether memory is flat.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench.fleet import Fleet, daemon_pid, namespace, rss_mib
from bench.sync_environments import create
from e2e.daemon import DaemonProcess
from gitopsd.finalizer import FINALIZER as PRUNE_FINALIZER
from gitopsd.kube import ApiError, Kube

ENVIRONMENTS = "/apis/gitopsd.dev/v1alpha1/namespaces/{ns}/environments/{name}"


def slope_per_minute(samples: list[float]) -> float:
    """The least-squares slope of ``samples`` taken one minute apart (0 for fewer than two)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def flat(samples: list[float]) -> bool:
    """Flat: the fitted rise over the whole soak is under 2 MiB or 3% of the first sample."""
    if len(samples) < 2:
        return True
    rise = slope_per_minute(samples) * (len(samples) - 1)
    return rise <= max(2.0, 0.03 * samples[0])


async def _edit_configmaps(kube: Kube, fleet: Fleet, count: int, minute: int) -> int:
    edited = 0
    for name in random.sample(fleet.names, min(count, len(fleet.names))):
        path = f"/api/v1/namespaces/{fleet.target}/configmaps/{name}"
        patch = {"data": {"GREETING": f"edited by hand, minute {minute}"}}
        try:
            await kube.patch(path, patch, field_manager="bench-churn")
            edited += 1
        except ApiError:
            pass  # an object the daemon is re-creating right now: the next minute edits others
    return edited


async def soak(
    kube: Kube, fleet: Fleet, daemon: DaemonProcess, *, minutes: int, first_app: int, per_minute: int, edits: int
) -> dict[str, Any]:
    """``minutes`` of churn; RSS per minute and whether it is flat. Apps ``first_app`` to
    ``first_app + per_minute - 1`` of the repository feed the Environments added each minute."""
    pid = daemon_pid(daemon)
    samples: list[dict[str, Any]] = []
    previous: list[str] = []
    started = time.monotonic()
    for minute in range(1, minutes + 1):
        target = f"{fleet.target}-churn-{minute}"
        names = [f"churn-{minute}-{i}" for i in range(per_minute)]
        await create(kube, [namespace(target)])
        churned = [fleet.manifest(n, first_app + i, target) for i, n in enumerate(names)]
        for env in churned:  # deleted with their objects, as a team tearing an app down would
            env["metadata"]["finalizers"] = [PRUNE_FINALIZER]
        await create(kube, churned)
        for name in previous:
            await kube.delete(ENVIRONMENTS.format(ns=fleet.ops, name=name))
        edited = await _edit_configmaps(kube, fleet, edits, minute)
        previous = names
        await asyncio.sleep(max(0.0, started + 60 * minute - time.monotonic()))
        samples.append({"minute": minute, **rss_mib(pid), "configmaps_edited": edited})
    rss = [s["rss_mib"] for s in samples]
    return {
        "minutes": minutes,
        "environments_added_per_minute": per_minute,
        "environments_deleted_per_minute": per_minute,
        "configmaps_edited_per_minute": edits,
        "rss_per_minute": samples,
        "rss_slope_mib_per_minute": round(slope_per_minute(rss), 3),
        "rss_slope_mib_per_minute_second_half": round(slope_per_minute(rss[len(rss) // 2 :]), 3),
        "rss_flat": flat(rss),
        "flat_means": "fitted rise over the soak <= max(2 MiB, 3% of the first minute's RSS)",
    }


__all__ = ["flat", "slope_per_minute", "soak"]
