"""``metrics-adapter check`` for ``externalProviders``: can each provider be reached, and what it lists.

One discovery call per provider with the credentials the server would use, so a wrong CA, an
expired token or a wrong URL shows up before switching the APIService, not in an HPA's events.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from metrics_adapter.errors import AdapterError, ConfigError
from metrics_adapter.federation.router import Federation
from metrics_adapter.rules.config import Config

_SHOWN = 10


async def report(config: Config, out: Callable[[str], None]) -> int:
    """Print one line per provider; return the number of failures."""
    if not config.external_providers:
        return 0
    try:
        fed = Federation(config.external_providers, CollectorRegistry(), config.path)
    except ConfigError as exc:
        out(f"FAIL {exc}")
        return 1
    fed.open()
    failures = 0
    try:
        for u in fed.upstreams:
            cfg = u.cfg
            forwards = "every name not served here" if cfg.catch_all else ", ".join((*cfg.names, *cfg.globs))
            try:
                names = await u.discover()
            except AdapterError as exc:
                out(f"FAIL {exc.message}")
                failures += 1
                continue
            claimed = [n for n in names if n in cfg.names or any(fnmatch.fnmatchcase(n, g) for g in cfg.globs)]
            shown = ", ".join(claimed[:_SHOWN]) + (f", … ({len(claimed)} in all)" if len(claimed) > _SHOWN else "")
            out(
                f"provider {cfg.name} ({cfg.url}): reachable, lists {len(names)} metrics; forwards {forwards}"
                + (f": {shown}" if claimed else "; none of its metrics match")
            )
    finally:
        await fed.close()
    return failures
