"""Running git: a clean environment, a deadline that kills the whole process group, scrubbed errors.

Why git is run directly and not through gitpython (so gitpython, though the design card names
it, is not a dependency): gitpython runs this same ``git`` executable for every command
(``Git.execute`` starts it with ``subprocess.Popen``), so the image needs git either way and the
library adds a layer, not a capability. What that layer would cost: a ``Repo`` keeps long-lived
``git cat-file --batch`` / ``--batch-check`` children (per Repo object and thread) that live
until ``Repo.close()`` or garbage collection, so a daemon holding mirrors for many
Environments accumulates processes and pipes; its deadline (``kill_after_timeout``, offered by
some calls) finds the ``git-remote-https`` or ``ssh`` children to kill by running ``pgrep`` or
``ps``, which the image does not install; and it blocks, where our remote calls are asyncio.
Credentials reach each call as environment variables (:mod:`gitopsd.sources.auth`), with every
prompt and askpass helper switched off below, which gitpython would only pass through.
Here every call is one short-lived process in its own process group, reaped before
the call returns, and killed with its children when the deadline passes or the caller is
cancelled. Calls made from worker threads (reading trees) are tracked too, so
:meth:`GitRunner.kill_all` leaves nothing behind.

The environment carries nothing from the host's git or ssh setup: no system or global config
(``GIT_CONFIG_NOSYSTEM``, ``HOME`` is an empty private directory), no terminal prompt, C locale
(so the messages we classify read the same everywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from gitopsd.errors import truncate
from gitopsd.sources import errors
from gitopsd.sources.auth import Access
from gitopsd.sources.urls import redact

GIT = "git"
# Variables of the host passed on to git: the program path, the default CA store and proxy settings
# a site needs (not GIT_SSL_CAINFO: it would override the CA a secret names).
_PASSED_ON = (
    "PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
)


class GitFailed(Exception):
    """git exited non-zero; ``stderr`` is already scrubbed of secrets. Classified by :func:`classify`."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(stderr)
        self.args_ = tuple(args)
        self.returncode = returncode
        self.stderr = stderr


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` without URL userinfo and without any of ``secrets``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return redact(text)


class GitRunner:
    """Starts git processes with a deadline, remembers the live ones, kills them on request."""

    def __init__(self, home: Path, timeout: float, *, ceiling: Path | None = None) -> None:
        self.home = home
        # Repository discovery stops here: a cache inside someone's work tree must not make
        # git read that work tree's config.
        self.ceiling = ceiling or home
        self.timeout = timeout
        self._lock = threading.Lock()
        self._async_live: set[asyncio.subprocess.Process] = set()
        self._sync_live: set[subprocess.Popen[bytes]] = set()
        self.closed = False

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {key: os.environ[key] for key in _PASSED_ON if key in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CEILING_DIRECTORIES": str(self.ceiling),
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "LC_ALL": "C",
                "LANG": "C",
            }
        )
        if extra:
            env.update(extra)
        return env

    async def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        extra_env: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        input: bytes | None = None,
        timeout: float | None = None,
        target: str = "",
    ) -> bytes:
        """Run ``git ARGS``; return stdout, raise ``GitFailed`` or ``errors.GitTimeout`` (naming ``target``)."""
        if self.closed:
            raise errors.SourceError("the Git source cache is closed")
        limit = timeout or self.timeout
        try:
            proc = await asyncio.create_subprocess_exec(
                GIT,
                *args,
                cwd=cwd,
                env=self.env(extra_env),
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise _not_installed(exc, cwd) from None
        with self._lock:
            self._async_live.add(proc)
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), limit)
        except TimeoutError:
            await self._kill_async(proc)
            raise errors.GitTimeout(_timed_out(args, target, limit)) from None
        except BaseException:  # cancelled: the caller gave up, so must the process
            await asyncio.shield(self._kill_async(proc))
            raise
        finally:
            with self._lock:
                self._async_live.discard(proc)
        if proc.returncode != 0:
            raise GitFailed(args, proc.returncode or -1, scrub(err.decode(errors="replace"), secrets))
        return out

    async def _kill_async(self, proc: asyncio.subprocess.Process) -> None:
        # The leader is not reaped yet, so its group id still names our processes.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    def run_sync(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        input: bytes | None = None,
        stdout: IO[bytes] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Blocking variant for worker threads (reading trees from a local mirror)."""
        if self.closed:
            raise errors.SourceError("the Git source cache is closed")
        limit = timeout or self.timeout
        try:
            popen = subprocess.Popen(
                [GIT, *args],
                cwd=cwd,
                env=self.env(),
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise _not_installed(exc, cwd) from None
        with self._lock:
            self._sync_live.add(popen)
        try:
            out, err = popen.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            self._kill_sync(popen)
            raise errors.GitTimeout(_timed_out(args, "", limit)) from None
        except BaseException:
            self._kill_sync(popen)
            raise
        finally:
            with self._lock:
                self._sync_live.discard(popen)
        if popen.returncode != 0:
            raise GitFailed(args, popen.returncode, redact(err.decode(errors="replace")))
        return out or b""

    def _kill_sync(self, popen: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if popen.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            popen.communicate(timeout=10)

    async def kill_all(self) -> None:
        """Stop every git process still running (async and worker-thread calls); no more calls after."""
        self.closed = True
        with self._lock:
            procs = list(self._async_live)
            popens = list(self._sync_live)
        for proc in procs:
            await self._kill_async(proc)
        for popen in popens:
            await asyncio.to_thread(self._kill_sync, popen)

    def live_count(self) -> int:
        with self._lock:
            return len(self._async_live) + len(self._sync_live)


def _not_installed(exc: FileNotFoundError, cwd: Path) -> errors.SourceError:
    if exc.filename and Path(str(exc.filename)) == cwd:
        return errors.SourceError(f"the directory {cwd} is gone (was the source cache removed?)")
    return errors.SourceError("git is not installed (no 'git' on PATH); gitopsd runs git to read sources")


def _timed_out(args: Sequence[str], target: str, limit: float) -> str:
    verb, skip = "", False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-c":
            skip = True
        elif not arg.startswith("-"):
            verb = arg
            break
    where = f" {redact(target)}" if target else ""
    return f"git {verb}{where} did not finish within {limit:g}s and was stopped (is the server up and answering?)"


# -- classifying git's complaints ----------------------------------------------------------

_AUTH = re.compile(
    r"Authentication failed|could not read (Username|Password)|returned error: 40[13]\b|"
    r"Permission denied \(|HTTP Basic: Access denied|invalid credentials",
    re.IGNORECASE,
)
_HOST_KEY_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed")
_HOST_KEY_UNKNOWN = re.compile(r"host key is known for|Host key verification failed|No .* host key is known")
_TLS = re.compile(
    r"SSL certificate problem|server certificate verification failed|certificate verify failed|SSL_ERROR|GnuTLS",
    re.IGNORECASE,
)
_UNREACHABLE = re.compile(
    r"Could not resolve (host|hostname)|Connection refused|Failed to connect|Couldn't connect|"
    r"Connection timed out|No route to host|Network is unreachable|Connection reset|"
    r"Connection closed by remote host|Name or service not known|Temporary failure in name resolution",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"does not appear to be a git repository|repository .* not found|returned error: 404\b|"
    r"not a git repository|No such file or directory",
    re.IGNORECASE,
)


def _detail(stderr: str) -> str:
    lines = [line.removeprefix("fatal: ").removeprefix("remote: ").strip() for line in stderr.splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Please make sure", "and the repository exists"))]
    return truncate("; ".join(useful), 240) or "no message"


def classify(failure: GitFailed, access: Access, action: str) -> errors.SourceError:
    """Turn a failed remote git call into the ``SourceError`` that says what to fix."""
    url, secret_name = access.url, access.secret_name
    where = redact(str(url))
    stderr = failure.stderr
    detail = _detail(stderr)
    from_secret = f"secret {secret_name!r}" if secret_name else "no secretRef"
    if _HOST_KEY_CHANGED.search(stderr):
        return errors.GitHostKeyChanged(
            f"{where}: the ssh host key of {url.host} does not match key 'known_hosts' of {from_secret}; "
            "refusing to connect (the server's key changed, or the entry is wrong)"
        )
    if _HOST_KEY_UNKNOWN.search(stderr):
        return errors.GitHostKeyUnknown(
            f"{where}: the ssh host key of {url.host} is not in key 'known_hosts' of {from_secret}; "
            "refusing to connect (add the server's key, e.g. from ssh-keyscan)"
        )
    if _TLS.search(stderr):
        return errors.GitTLSFailed(
            f"{where}: the TLS certificate of {url.host} is not trusted ({detail}); "
            f"put the CA that signed it in key 'ca.crt' of the source's secret"
        )
    if _AUTH.search(stderr):
        if url.scheme == "ssh":
            why = f"refused the ssh key in key 'identity' of {from_secret}"
        elif access.sends_credentials:
            why = f"refused the credentials in {from_secret}" if secret_name else "refused the credentials in the URL"
        elif secret_name:
            why = f"requires credentials: add username/password or bearerToken to {from_secret}"
        else:
            why = "requires credentials: set spec.source.secretRef to a secret with username/password or bearerToken"
        return errors.GitAuthenticationFailed(f"{where}: the server {why}")
    if _UNREACHABLE.search(stderr):
        return errors.GitUnreachable(f"{where}: cannot reach the Git server: {detail}")
    if _NOT_FOUND.search(stderr):
        return errors.GitRepositoryNotFound(f"{where}: no Git repository there ({detail})")
    return errors.SourceError(f"git {action} {where} failed: {detail}")
