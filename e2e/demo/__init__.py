"""The README's demo: gitopsd and metrics_adapter doing their main job on a local cluster.

``./scripts/demo.sh`` runs ``python -m e2e.demo``: a local control plane (e2e.cluster), a Git
repository with develop / main / release tags, ``gitopsd run``, Prometheus scraping a small
demo app, Redis as a job queue and ``metrics-adapter`` behind the aggregator; then six acts,
each narrated with the real commands a user would type and their real output. Tooling, not
product: it only composes the harness (e2e/) and the two programs as a user runs them.
"""
