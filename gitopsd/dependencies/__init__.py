"""``spec.dependsOn``: an Environment is applied only once the Environments it names are Ready.

``spec`` reads the field (imported by ``gitopsd.spec``); ``check`` decides, before a reconcile
renders anything, whether every dependency is Ready on its current revision, and refuses a
cycle by name. This package imports nothing at its top, so ``gitopsd.spec`` can use ``spec``.
"""
