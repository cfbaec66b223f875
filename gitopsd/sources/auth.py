"""Handing credentials to one git call without showing them to anyone else on the machine.

Nothing secret goes on a command line, which every user can read in ``ps``:

- https: the ``Authorization`` header (Basic from username/password, or Bearer) and the CA file
  are passed as configuration through the environment (``GIT_CONFIG_COUNT``/``KEY``/``VALUE``,
  readable only by our own user), scoped to the server's origin with ``http.<url>.*`` so a
  redirect to another host does not receive them.
- ssh: the identity and known_hosts are written to 0600 files in a private directory that is
  removed when the call ends. ``GIT_SSH_COMMAND`` ignores every ssh config (``-F /dev/null``),
  offers only that key, and checks the host key strictly against that file, so an unknown or
  changed host key is refused rather than trusted on first use.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gitopsd.sources.credentials import Credentials
from gitopsd.sources.urls import GitURL


@dataclass(frozen=True, slots=True)
class Access:
    """How to reach one URL with one set of credentials; :meth:`open` makes it usable for a call.

    Shared operations (a fetch or ls-remote other callers join) open their own, so the files
    they use live as long as the git process, not as long as the caller that started it.
    """

    url: GitURL
    creds: Credentials | None
    tmp_root: Path
    connect_timeout: float

    @property
    def fingerprint(self) -> str:
        return self.creds.fingerprint if self.creds else ""

    @property
    def secret_name(self) -> str | None:
        return self.creds.secret_name if self.creds else None

    @property
    def sends_credentials(self) -> bool:
        """Whether a call presents any (password, token or key), to tell "refused" from "required"."""
        if self.creds is not None and (self.creds.password or self.creds.bearer_token or self.creds.identity):
            return True
        return bool(self.url.password)

    def open(self) -> contextlib.AbstractContextManager[GitAuth]:
        return git_auth(self.url, self.creds, self.tmp_root, self.connect_timeout)


@dataclass(frozen=True, slots=True)
class GitAuth:
    """Environment additions for one git call, and the values to scrub from its output."""

    env: dict[str, str]
    secrets: tuple[str, ...]


def _config_env(entries: list[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(entries))}
    for i, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _write_private(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def ssh_command(identity: Path | None, known_hosts: Path | None, connect_timeout: float) -> str:
    """The ``GIT_SSH_COMMAND``: no user or system ssh config, strict host keys, one key only."""
    options = [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        f"IdentityFile={identity if identity else 'none'}",
        "StrictHostKeyChecking=yes",
        f"UserKnownHostsFile={known_hosts if known_hosts else '/dev/null'}",
        "GlobalKnownHostsFile=/dev/null",
        "UpdateHostKeys=no",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        f"ConnectTimeout={max(1, int(connect_timeout))}",
    ]
    argv = ["ssh", "-F", "/dev/null"]
    for option in options:
        argv += ["-o", option]
    return shlex.join(argv)


@contextlib.contextmanager
def git_auth(url: GitURL, creds: Credentials | None, tmp_root: Path, connect_timeout: float) -> Iterator[GitAuth]:
    """Everything git needs to authenticate to ``url``; files made for it are gone on exit."""
    tmp_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory: Path | None = None
    try:
        secrets: list[str] = []
        env: dict[str, str] = {}
        if url.scheme == "ssh":
            identity = known_hosts = None
            if creds is not None and (creds.identity or creds.known_hosts):
                directory = Path(tempfile.mkdtemp(prefix="auth-", dir=tmp_root))
                if creds.identity:
                    identity = _write_private(directory, "identity", creds.identity)
                if creds.known_hosts:
                    known_hosts = _write_private(directory, "known_hosts", creds.known_hosts)
            env["GIT_SSH_COMMAND"] = ssh_command(identity, known_hosts, connect_timeout)
            env["GIT_SSH_VARIANT"] = "ssh"
        elif url.scheme in ("https", "http"):
            entries: list[tuple[str, str]] = []
            header = None
            username = creds.username if creds and creds.username else url.username
            password = creds.password if creds and creds.password else url.password
            if creds is not None and creds.bearer_token:
                header = f"Authorization: Bearer {creds.bearer_token}"
                secrets.append(creds.bearer_token)
            elif username and password:
                token = base64.b64encode(f"{username}:{password}".encode()).decode()
                header = f"Authorization: Basic {token}"
                secrets += [password, token]
            if header:
                entries.append((f"http.{url.origin}.extraHeader", header))
            if creds is not None and creds.ca_cert:
                directory = Path(tempfile.mkdtemp(prefix="auth-", dir=tmp_root))
                ca_file = _write_private(directory, "ca.crt", creds.ca_cert)
                entries.append((f"http.{url.origin}.sslCAInfo", str(ca_file)))
            if entries:
                env.update(_config_env(entries))
        if creds is not None:
            secrets += creds.secrets()
        yield GitAuth(env, tuple(secrets))
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
