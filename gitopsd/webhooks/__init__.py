"""Push to deploy: webhooks from GitHub, GitLab, Gitea and ``gitopsd notify`` trigger reconciles at once.

``signatures`` checks who sent a request, ``payloads`` reads the push out of each host's body,
``repourl`` names a repository the same way whatever its URL spelling, ``matching`` picks the
Environments a push concerns, and ``receiver`` is the HTTP side (its own port).
"""
