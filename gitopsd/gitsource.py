"""The ``Source`` port (``gitopsd.context``) over Git and the renderer: what the daemon really uses.

``resolve`` asks the remote for the revision (``ls-remote``) with the Environment's credentials
(read through ``secrets``: in the daemon a watch of them, so an idle resolve makes no request).
An answer younger than a quarter of the Environment's interval (``INTERVAL_SHARE``, at least
``ls_remote_max_age``) is reused unless the run is ``fresh`` (a webhook, ``gitopsd sync``): the
Environments of one repository cost about four ``ls-remote`` per interval together however many
they are, and a push is seen at most a quarter interval after the next reconcile. ``render``
renders that revision (``gitopsd.desired``: kept in memory while commit, spec and substitution
values stay the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gitopsd.context import Resolved
from gitopsd.desired import Desired, load_credentials
from gitopsd.kube import KubeAPI
from gitopsd.kube.secretwatch import SecretReader
from gitopsd.model import Manifest
from gitopsd.sources import GitSources
from gitopsd.spec import Environment

#: How old, as a share of the Environment's interval, an ``ls-remote`` answer may be when reused.
INTERVAL_SHARE = 0.25


@dataclass(slots=True)
class GitSource:
    kube: KubeAPI
    sources: GitSources
    desired: Desired
    ls_remote_max_age: float = 1.0
    #: Where credentials are read (the daemon's ``SecretWatch``); None: a GET at each resolve.
    secrets: SecretReader | None = None

    async def resolve(self, env: Environment, *, fresh: bool) -> Resolved:
        creds = await load_credentials(self.kube, env, self.secrets)
        max_age = 0.0 if fresh else max(self.ls_remote_max_age, env.spec.interval * INTERVAL_SHARE)
        return Resolved(await self.sources.resolve(env.spec.source, creds, max_age=max_age), creds)

    async def render(self, env: Environment, resolved: Resolved) -> tuple[Sequence[Manifest], str]:
        return await self.desired.render(env, resolved.revision, resolved.access)

    def forget(self, uid: str) -> None:
        self.desired.forget(uid)
