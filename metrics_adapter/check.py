"""``metrics-adapter check``: a dry run of a config against a live Prometheus, before switching.

It loads the config as the server would (same errors, exit 2), runs series discovery once, prints
every metric that would be served in each API, then runs one real query per rule (for one of
the metrics the rule produced) and reads each queue once, so template mistakes and PromQL
errors show up now rather than in an HPA's events. Exit 1 when Prometheus, a query or a queue
fails; when Prometheus cannot be reached, each rule is reported as not checked rather than as
matching nothing. Exit 2 for a bad config, flag or kubeconfig (the server's refused flags
included). Without ``--kubeconfig`` resource names resolve against a built-in table of the
standard resources, and the output says so; an override naming a resource outside it (a CRD) is
a warning, not a failure.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import aiohttp

from gitopsd.kube.config import Connection
from gitopsd.usage import Parser
from metrics_adapter.catalog import Catalog
from metrics_adapter.errors import ConfigError, UpstreamError
from metrics_adapter.federation import check as federation_check
from metrics_adapter.flags import (
    compat_flags,
    fail,
    prometheus_flags,
    prometheus_settings,
    refuse,
    stdout_closed,
    warn_ignored,
)
from metrics_adapter.kube import mapper as kmapper
from metrics_adapter.kube.client import KubeClient, load_settings
from metrics_adapter.kube.discovery import discover
from metrics_adapter.metrics import AdapterMetrics
from metrics_adapter.queues import QueueConfigError, QueueError, open_reader
from metrics_adapter.resourcemetrics import check as resource_check
from metrics_adapter.rules import config as rules_config
from metrics_adapter.rules.query import QueryError, custom_query, external_query
from metrics_adapter.rules.registry import Snapshot
from metrics_adapter.selectors import EVERYTHING
from metrics_adapter.sources.prometheus import PrometheusClient


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="metrics-adapter check", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--config", required=True)
    p.add_argument("--kubeconfig", help="resolve resource names against this cluster (default: built-in table)")
    prometheus_flags(p)
    compat_flags(p)
    return p


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        try:
            refuse(args)
            warn_ignored(args)
            config = rules_config.load(args.config)
            prom = prometheus_settings(args)
            if (config.rules or config.external_rules) and prom is None:
                raise ConfigError(f"{args.config} has 'rules' or 'externalRules': give --prometheus-url")
            kube = load_settings(args.kubeconfig) if args.kubeconfig else None
        except ConfigError as exc:
            return fail(str(exc))
        return asyncio.run(_check(args, config, prom, kube))
    except BrokenPipeError:  # `check ... | head`: the reader has what it wanted
        return stdout_closed()


def _out(line: str = "") -> None:
    print(line, flush=True)


async def _mapper(kube: Connection | None) -> kmapper.Mapper:
    if kube is None:
        return kmapper.builtin()
    client = KubeClient(kube)
    try:
        return await discover(client)
    finally:
        await client.close()


async def _check(
    args: argparse.Namespace, config: rules_config.Config, settings: object, kube: Connection | None
) -> int:
    failures = 0
    try:
        mapper = await _mapper(kube)
    except UpstreamError as exc:
        return fail(f"cannot read the cluster's resources: {exc}", 1)
    _out(
        f"config {config.path}: {len(config.rules)} rules, {len(config.external_rules)} externalRules, "
        f"{len(config.queues)} queues; resources from {mapper.source}"
    )
    prom = PrometheusClient(settings) if settings is not None else None  # type: ignore[arg-type]
    catalog = Catalog(config, prom, mapper, AdapterMetrics(), max_age=args.metrics_max_age or 600.0)
    try:
        # Without a cluster only the standard resources are known: a CRD's name is not an error.
        resolved_later = None if kube is not None else "give --kubeconfig to check it against the cluster"
        warnings = catalog.validate(unknown_resource=resolved_later)
    except ConfigError as exc:
        return fail(str(exc))
    snap = Snapshot()
    not_checked: str | None = None  # why rules cannot be checked, after a FAIL line saying so
    try:
        if prom is not None:
            not_checked = "Prometheus unreachable"
            await prom.ready()
            _out(f"{prom.source}: reachable")
            not_checked = "series discovery failed"
            snap = await catalog.relist()
            not_checked = None
    except UpstreamError as exc:
        _out(f"FAIL {exc}")
        failures += 1
    try:
        failures += await _report(catalog, snap, prom, not_checked)
        failures += await resource_check.report(config.resource_rules, prom, mapper, _out, not_checked)
    finally:
        if prom is not None:
            await prom.close()
    failures += await _queues(config)
    failures += await federation_check.report(config, _out)
    for w in (*config.warnings, *warnings, *snap.skipped):
        _out(f"warning: {w}")
    _out("check passed" if not failures else f"check failed: {failures} problem(s)")
    return 1 if failures else 0


async def _report(catalog: Catalog, snap: Snapshot, prom: PrometheusClient | None, not_checked: str | None) -> int:
    failures = 0
    names = snap.custom_names()
    _out(f"custom.metrics.k8s.io would serve {len(names)} metrics:")
    for name, namespaced in names:
        _out(f"  {name}{' (namespaced)' if namespaced else ''}")
    ext = sorted({*snap.external, *(q.name for q in catalog.config.queues)})
    _out(f"external.metrics.k8s.io would serve {len(ext)} metrics:")
    for name in ext:
        src = next((f"queue {q.upstream}" for q in catalog.config.queues if q.name == name), None)
        if src is None:
            src = snap.external[name].rule.where
        _out(f"  {name}  ({src})")
    if prom is None:
        return 0
    if not_checked is not None:
        for rule in (*catalog.config.rules, *catalog.config.external_rules):
            _out(f"{rule.where}: not checked ({not_checked})")
        return 0
    for rule in catalog.config.rules:
        sample = next((m for m in snap.custom.values() if m.rule is rule), None)
        if sample is None:
            _out(f"{rule.where}: no series matched; it serves nothing now")
            continue
        conv = catalog.converter(rule)
        try:
            query = custom_query(
                rule,
                sample.series,
                resource_label=conv.label_for(sample.resource),
                namespace_label=conv.namespace_label(),
                namespace="default" if sample.namespaced else None,
                metric_selector=EVERYTHING,
            )
            result = await prom.query(query)
            _out(f"{rule.where}: query ok ({len(result.samples)} series for namespace 'default'): {query}")
        except (QueryError, UpstreamError) as exc:
            _out(f"FAIL {rule.where}.metricsQuery: {exc}")
            failures += 1
    for rule in catalog.config.external_rules:
        ext_sample = next((m for m in snap.external.values() if m.rule is rule), None)
        if ext_sample is None:
            _out(f"{rule.where}: no series matched; it serves nothing now")
            continue
        conv = catalog.converter(rule)
        if rule.resources.namespaced and conv.namespace_label() is None:
            _out(f"{rule.where}: not checked: every request for it fails (see the warning below)")
            continue
        try:
            query = external_query(
                rule,
                ext_sample.series,
                namespace_label=conv.namespace_label(),
                namespace="default",
                metric_selector=EVERYTHING,
            )
            result = await prom.query(query)
            _out(f"{rule.where}: query ok ({len(result.samples)} series for namespace 'default'): {query}")
        except (QueryError, UpstreamError) as exc:
            _out(f"FAIL {rule.where}.metricsQuery: {exc}")
            failures += 1
    return failures


async def _queues(config: rules_config.Config) -> int:
    if not config.queues:
        return 0
    failures = 0
    async with aiohttp.ClientSession() as session:
        for q in config.queues:
            try:
                reader = await open_reader(q, session)
                try:
                    sample = await reader.read()
                finally:
                    await reader.close()
                _out(f"queue {q.name} ({q.upstream}): backlog {sample.value:g}")
            except (QueueError, QueueConfigError) as exc:
                _out(f"FAIL queue {q.name}: {exc}")
                failures += 1
    return failures
