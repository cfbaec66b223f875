"""Federation: other external-metrics providers served behind our one APIService.

Kubernetes routes a group version to one APIService, so a cluster has one external metrics
server. With ``externalProviders:`` the adapter authorizes the caller itself, then forwards
requests for the providers' names with its own credentials and checks what comes back.

    config.py     the ``externalProviders`` entries, validated
    upstream.py   one provider: HTTPS client, timeout, pool, circuit breaker, answer checks
    router.py     name → provider, discovery merge, discovery refresh loop
    telemetry.py  per-provider figures on /metrics

Nothing is imported here: ``rules/config.py`` reads ``federation.config`` while the router
imports the provider, which imports the rules.
"""
