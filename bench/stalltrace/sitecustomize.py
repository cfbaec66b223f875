"""Stall tracer for a metrics-adapter process under bench (``bench.adapter_load --trace-stalls``).

Put this directory on ``PYTHONPATH`` with ``METRICS_ADAPTER_STALL_TRACE=FILE`` and every
event-loop callback longer than 2 ms, every garbage collection, every TLS handshake step and
every SubjectAccessReview is written to FILE (JSON lines, every 5 s and at exit) with its wall
time *and the CPU time the thread used*. The two tell our stalls from the machine's: a 40 ms
callback that used 0.3 ms of CPU was waiting for a CPU, not working. Costs ~1 µs per
callback; never loaded by the adapter itself.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("METRICS_ADAPTER_STALL_TRACE")


def _install(path: str) -> None:
    import asyncio.events
    import asyncio.sslproto
    import atexit
    import gc
    import json
    import threading
    import time
    from typing import Any

    events: list[list[Any]] = []
    wall, cpu, now = time.perf_counter, time.thread_time, time.time
    gc_start = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0], gc_start[1] = wall(), cpu()
        else:
            events.append(["gc", now(), wall() - gc_start[0], cpu() - gc_start[1], str(info["generation"])])

    def name(callback: Any) -> str:
        task = getattr(callback, "__self__", None)
        if task is not None and hasattr(task, "get_coro"):
            coro = task.get_coro()
            return "task " + getattr(coro, "__qualname__", "?")
        text = repr(callback)
        return text.split(" of <")[0].split(" at 0x")[0][:100]

    run = asyncio.events.Handle._run

    def traced_run(self: asyncio.events.Handle) -> None:
        w, c = wall(), cpu()
        run(self)
        took = wall() - w
        if took > 0.002:
            events.append(["callback", now(), took, cpu() - c, name(getattr(self, "_callback", None))])

    handshake = getattr(asyncio.sslproto.SSLProtocol, "_do_handshake")  # noqa: B009 - private, by design

    def traced_handshake(self: Any) -> None:
        w, c = wall(), cpu()
        handshake(self)
        events.append(["tls_handshake_step", now(), wall() - w, cpu() - c, ""])

    gc.callbacks.append(on_gc)
    asyncio.events.Handle._run = traced_run  # type: ignore[method-assign]
    setattr(asyncio.sslproto.SSLProtocol, "_do_handshake", traced_handshake)  # noqa: B010

    import metrics_adapter.auth as auth

    review = auth.Auth._review

    async def traced_review(self: Any, user: Any, attrs: Any) -> Any:
        w = wall()
        try:
            return await review(self, user, attrs)
        finally:
            events.append(["subjectaccessreview", now(), wall() - w, 0.0, ""])

    auth.Auth._review = traced_review  # type: ignore[method-assign]

    def dump() -> None:
        # Whole, then renamed: the bench may read it at any moment.
        with open(path + ".tmp", "w") as f:
            for e in list(events):
                f.write(json.dumps(e) + "\n")
        os.replace(path + ".tmp", path)

    def every_5s() -> None:
        while True:
            time.sleep(5)
            dump()

    threading.Thread(target=every_5s, name="stall-trace", daemon=True).start()
    atexit.register(dump)


if _PATH:
    _install(_PATH)
