"""Who an Environment acts as, and what it may reach: the daemon's tenancy policy.

Several teams share one gitopsd. Each Environment's writes (dry-run, apply, prune, the cache
misses of its health reads, rollback, the finalizer's deletes) go out impersonating a
ServiceAccount of the Environment's own namespace when ``spec.serviceAccountName`` names one
or the daemon has ``--default-service-account``, so kube-apiserver's RBAC decides what a team
may change, as Flux's ``serviceAccountName`` does. gitopsd's own bookkeeping (status, Events,
release records, the watch cache) stays under gitopsd's identity.

The policy comes from daemon flags:

* ``--default-service-account NAME``: Environments that name none act as ``NAME`` of their
  own namespace (unset: as gitopsd itself, today's behaviour).
* ``--no-cross-namespace-refs``: every reference an Environment makes resolves in its own
  namespace, and a notifier of the DaemonConfig is usable only by the namespaces it lists.
* ``--allow-file-sources``: ``file://`` Git URLs are accepted (tests, the demo, a laptop);
  off by default, since a path on the daemon's disk is not a team's to read.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_ACCOUNT_USER = "system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class Tenancy:
    default_service_account: str | None = None
    no_cross_namespace_refs: bool = False
    allow_file_sources: bool = False

    def service_account(self, requested: str | None) -> str | None:
        """The ServiceAccount an Environment asking for ``requested`` acts as (None: gitopsd itself)."""
        return requested or self.default_service_account

    def user(self, namespace: str, requested: str | None) -> str | None:
        """The user name to impersonate for an Environment of ``namespace`` (None: no impersonation)."""
        account = self.service_account(requested)
        return SERVICE_ACCOUNT_USER.format(namespace=namespace, name=account) if account else None
