"""The resource metrics API (``metrics.k8s.io/v1beta1``) served from ``resourceRules``.

What ``kubectl top`` and CPU/memory HPAs read, answered from Prometheus the way
prometheus-adapter's resource metrics provider does, in metrics-server's wire format:
``config`` parses the rules, ``wire`` builds the JSON, ``provider`` runs the queries.
"""
