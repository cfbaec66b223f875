"""Ordered syncs: Argo CD's phases, waves and hooks, Helm's hooks, and our own annotation names.

``classify`` sorts a release's objects into PreSync hooks, Sync waves, PostSync and SyncFail
hooks (pure); ``hooks`` creates, awaits and deletes hook objects; ``ordered`` runs a release
in that order for ``gitopsd.rollout``. This package imports nothing at its top so that the
renderer can use ``classify`` without pulling the reconcile engine in.
"""
