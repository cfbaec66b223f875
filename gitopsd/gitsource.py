"""The ``Source`` port (``gitopsd.context``) over Git and the renderer: what the daemon really uses.

``resolve`` asks the remote for the revision (``ls-remote``, cached ``ls_remote_max_age``
seconds unless the run is ``fresh``) with the Environment's credentials (read through
``secrets``: in the daemon a watch of them, so an idle resolve makes no request); ``render``
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
        max_age = 0.0 if fresh else self.ls_remote_max_age
        return Resolved(await self.sources.resolve(env.spec.source, creds, max_age=max_age), creds)

    async def render(self, env: Environment, resolved: Resolved) -> tuple[Sequence[Manifest], str]:
        return await self.desired.render(env, resolved.revision, resolved.access)

    def forget(self, uid: str) -> None:
        self.desired.forget(uid)
