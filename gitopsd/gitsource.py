"""The ``Source`` port (``gitopsd.context``) over Git and the renderer: what the daemon really uses.

``resolve`` asks the remote for the revision (``ls-remote``) with the Environment's credentials
(read through ``secrets``: in the daemon a watch of them, so an idle resolve makes no request).
An answer younger than a quarter of the Environment's interval (``INTERVAL_SHARE``, at least
``ls_remote_max_age``) is reused unless the run is ``fresh`` (a webhook, ``gitopsd sync``): the
Environments of one repository cost about four ``ls-remote`` per interval together however many
they are, and a push is seen at most a quarter interval after the next reconcile. ``render``
renders that revision (``gitopsd.desired``: kept in memory while commit, spec and substitution
values stay the same).

Which sources a daemon reads is its tenancy policy (``gitopsd.tenancy``): a ``file://`` URL is a
path on the daemon's own disk, not a team's repository, so it is refused (``SourceNotAllowed``,
before anything is read) unless the daemon runs with ``--allow-file-sources``. ``gitopsd
render`` on a user's own machine does not go through here and reads any ``file://`` URL.

An Environment with ``spec.chart`` resolves through the chart repositories instead
(``sources.charts``): its revision is ``NAME@VERSION``, the repository's listing reused for up
to one interval (shared by every Environment of that repository; ``fresh`` asks again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gitopsd.context import Resolved
from gitopsd.desired import Desired, load_credentials
from gitopsd.kube import KubeAPI
from gitopsd.kube.secretwatch import PlainSecretReader, SecretReader
from gitopsd.model import Manifest
from gitopsd.sources import GitSources, SourceNotAllowed, parse_url
from gitopsd.sources.charts_http import Login
from gitopsd.spec import Environment
from gitopsd.tenancy import Tenancy

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
    tenancy: Tenancy = field(default_factory=Tenancy)

    async def resolve(self, env: Environment, *, fresh: bool) -> Resolved:
        if env.spec.chart is not None:
            login = await chart_login(self.kube, env, self.secrets)
            max_age = 0.0 if fresh else env.spec.interval
            return Resolved(await self.desired.charts.resolve(env.spec.chart, login, max_age=max_age), login)
        check_source_allowed(env.spec.source.url, self.tenancy)
        creds = await load_credentials(self.kube, env, self.secrets)
        max_age = 0.0 if fresh else max(self.ls_remote_max_age, env.spec.interval * INTERVAL_SHARE)
        return Resolved(await self.sources.resolve(env.spec.source, creds, max_age=max_age), creds)

    async def render(
        self, env: Environment, resolved: Resolved, *, cluster: KubeAPI | None = None
    ) -> tuple[Sequence[Manifest], str]:
        return await self.desired.render(env, resolved.revision, resolved.access, cluster=cluster)

    def forget(self, uid: str) -> None:
        self.desired.forget(uid)


async def chart_login(kube: KubeAPI, env: Environment, secrets: SecretReader | None = None) -> Login | None:
    """The repository login named by ``spec.chart.secretRef`` (keys username, password), if any."""
    name = env.spec.chart.secret_name if env.spec.chart else None
    if not name:
        return None
    reader = secrets if secrets is not None else PlainSecretReader(kube)
    secret = await reader.read(env.namespace, name, where="spec.chart.secretRef")
    return Login(secret.text("username"), secret.text("password"))


def check_source_allowed(url: str, tenancy: Tenancy) -> None:
    """Raise ``SourceNotAllowed`` for a source ``tenancy`` refuses (``InvalidSourceURL`` for no Git URL).

    Called before anything is read: at every resolve, and by whoever accepts Environments for
    the daemon ahead of it (``gitopsd run --config``)."""
    if parse_url(url).scheme == "file" and not tenancy.allow_file_sources:
        raise SourceNotAllowed(FILE_SOURCES_OFF)


#: The message of a ``file://`` source on a daemon without ``--allow-file-sources``.
FILE_SOURCES_OFF = (
    "file:// sources are off in this daemon: start it with --allow-file-sources "
    "(a path on the daemon's disk is no team's repository)"
)
