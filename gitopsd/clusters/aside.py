"""How a request to a suspect cluster frees the daemon's worker while it waits.

The daemon gives each run an ``Aside`` (``outcome.Aside``: give the worker up while only
waiting); the reconcile sets it here for the whole run (``running``), so a request of that run
to a target whose last call failed (``Breaker.suspect``) waits aside: a black-holed cluster
costs its Environments time, never another cluster's worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar

#: ``outcome.Aside`` (not imported: ``outcome`` imports ``spec``, which loads this package first).
Aside = Callable[[], AbstractAsyncContextManager[None]]


def stay() -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


CURRENT: ContextVar[Aside] = ContextVar("gitopsd_run_aside", default=stay)


@contextlib.contextmanager
def running(aside: Aside) -> Iterator[None]:
    """Within this block (and the tasks it starts), ``CURRENT`` is ``aside``."""
    token = CURRENT.set(aside)
    try:
        yield
    finally:
        CURRENT.reset(token)


__all__ = ["CURRENT", "running"]
