"""Telling people what happened: lifecycle events delivered to Slack, webhooks and commit statuses.

``subscriptions`` reads an Environment's ``spec.notify``; ``messages`` turns one event into the
request each kind of notifier expects; ``delivery`` sends them off the reconcile path, one
bounded queue per notifier, with retries; ``dispatcher`` is the reconciler's ``Announcer``
that routes each event to the notifiers its Environment subscribed to.

This package's ``__init__`` imports nothing, so ``spec`` can read subscriptions without
pulling in the HTTP side.
"""
