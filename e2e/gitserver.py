"""Git servers and repositories for tests: smart HTTP behind nginx, OpenSSH, and a developer's clone.

- :func:`start_git_https`: git's own smart-HTTP backend (``git http-backend``) run by fcgiwrap
  behind nginx, TLS with a certificate from a CA made here, HTTP basic auth. Protocol v2 works
  (nginx passes the ``Git-Protocol`` header on to the backend).
- :func:`start_git_ssh`: Debian's sshd on a loopback port in the foreground, with its own host
  key and an ``authorized_keys`` holding a fresh client key; it logs in the user running the
  tests (root in CI, hence ``StrictModes no`` for key files under /tmp and ``UsePAM no``).
- repositories are :class:`e2e.gitrepo.WorkRepo` clones pushing to bare repositories here.

The programs come from Debian packages (``nginx``, ``fcgiwrap``, ``openssh-server``;
``scripts/setup.sh`` installs them). Each server has a private directory and free ports, and
``stop()`` stops its processes and removes the directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from e2e import pki, procs
from e2e.gitrepo import WorkRepo, git_env

NGINX = "/usr/sbin/nginx"
FCGIWRAP = "/usr/sbin/fcgiwrap"
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and insists on an absolute path
HOST = "127.0.0.1"

class GitServerUnavailable(RuntimeError):
    """A server program is not installed."""


def _require(path: str, package: str) -> str:
    if not os.access(path, os.X_OK):
        raise GitServerUnavailable(f"{path} not found: install the Debian package '{package}' (scripts/setup.sh does)")
    return path


def _http_backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    return _require(os.path.join(exec_path, "git-http-backend"), "git")


# -- https ---------------------------------------------------------------------------------


@dataclass(slots=True)
class GitHttpsServer:
    """nginx + fcgiwrap + git http-backend serving every bare repository under ``repos``."""

    directory: Path
    port: int = 0
    username: str = "gitops"
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)  # accepted as "Authorization: Bearer" under /bearer/
    ca_cert: bytes = b""  # PEM of the CA that signed the server certificate
    _procs: procs.ProcessSet = field(default_factory=procs.ProcessSet)

    @property
    def repos(self) -> Path:
        return self.directory / "repos"

    def url(self, name: str, *, bearer: bool = False) -> str:
        """The https URL of repository ``name`` (its bare directory is ``repos/NAME.git``).

        With ``bearer`` the URL is under ``/bearer/``, where the server wants the token instead
        of basic auth.
        """
        return f"https://{HOST}:{self.port}{'/bearer' if bearer else ''}/{name}.git"

    def new_repo(self, name: str) -> WorkRepo:
        """A new repository served here, with a work tree to commit to."""
        return WorkRepo.create(self.repos / f"{name}.git", self.directory / "work" / name)

    def secret_data(self, *, password: str | None = None) -> dict[str, bytes]:
        """A Secret's data for this server: username, password (or another one), ca.crt."""
        return {
            "username": self.username.encode(),
            "password": (self.password if password is None else password).encode(),
            "ca.crt": self.ca_cert,
        }

    def bearer_secret_data(self, *, token: str | None = None) -> dict[str, bytes]:
        """A Secret's data for the ``/bearer/`` URLs: bearerToken (or another one), ca.crt."""
        return {"bearerToken": (self.token if token is None else token).encode(), "ca.crt": self.ca_cert}

    @property
    def access_log(self) -> Path:
        return self.directory / "logs" / "access.log"

    def stop(self) -> None:
        self._procs.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_git_https(username: str = "gitops", timeout: float = 20.0) -> GitHttpsServer:
    """Start nginx and fcgiwrap; return once an authenticated request is served."""
    nginx, fcgiwrap, backend = _require(NGINX, "nginx"), _require(FCGIWRAP, "fcgiwrap"), _http_backend()
    directory = procs.private_dir("git-https")
    server = GitHttpsServer(
        directory, procs.free_port(HOST), username, secrets.token_urlsafe(12), secrets.token_urlsafe(16)
    )
    try:
        for sub in ("repos", "logs", "tmp"):
            (directory / sub).mkdir()
        ca_cert, ca_key = pki.new_ca("gitopsd-e2e-git-ca")
        cert, key = pki.issue(ca_cert, ca_key, "git-https", server=True, dns=("localhost",), ips=(HOST,))
        crt_path, key_path = pki.write_pair(directory, "server", cert, key)
        server.ca_cert = ca_cert.public_bytes(serialization.Encoding.PEM)
        # nginx reads {PLAIN} entries; the file is private to this run.
        (directory / "htpasswd").write_text(f"{username}:{{PLAIN}}{server.password}\n")
        socket_path = directory / "fcgiwrap.sock"
        (directory / "nginx.conf").write_text(
            _nginx_conf(directory, server.port, crt_path, key_path, socket_path, backend, server.token)
        )
        logs = directory / "logs"
        fcgi = server._procs.add(
            procs.start("fcgiwrap", [fcgiwrap, "-c", "4", "-s", f"unix:{socket_path}"], logs, env=git_env(directory))
        )
        procs.wait_until("fcgiwrap socket", socket_path.exists, timeout=timeout, watch=[fcgi])
        web = server._procs.add(
            procs.start(
                "nginx",
                [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(logs / "error.log")],
                logs,
            )
        )
        procs.wait_until("nginx", lambda: _accepts(server.port), timeout=timeout, watch=[web, fcgi])
    except BaseException:
        server.stop()
        raise
    return server


def _nginx_conf(directory: Path, port: int, cert: Path, key: Path, socket_path: Path, backend: str, token: str) -> str:
    # As root, nginx would hand requests to workers running as "nobody", who cannot read this
    # private directory; the workers run as the user that started the tests instead.
    user = "user root root;" if os.geteuid() == 0 else ""
    tmp = directory / "tmp"
    cgi = "\n".join(
        f"      fastcgi_param {name} {value};"
        for name, value in {
            "SCRIPT_FILENAME": backend,
            "GIT_PROJECT_ROOT": f"{directory}/repos",
            "GIT_HTTP_EXPORT_ALL": '""',
            "QUERY_STRING": "$query_string",
            "REQUEST_METHOD": "$request_method",
            "CONTENT_TYPE": "$content_type",
            "CONTENT_LENGTH": "$content_length",
            "REMOTE_USER": "$remote_user",
            "REMOTE_ADDR": "$remote_addr",
            "SERVER_PROTOCOL": "$server_protocol",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }.items()
    )
    return f"""
{user}
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/logs/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log {directory}/logs/access.log;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen {HOST}:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    client_max_body_size 0;
    location / {{
      auth_basic "git";
      auth_basic_user_file {directory}/htpasswd;
      fastcgi_pass unix:{socket_path};
      fastcgi_param PATH_INFO $uri;
{cgi}
    }}
    location ~ ^/bearer(/.*)$ {{
      set $path_info $1;
      if ($http_authorization != "Bearer {token}") {{
        add_header WWW-Authenticate 'Bearer realm="git"' always;
        return 401;
      }}
      fastcgi_pass unix:{socket_path};
      fastcgi_param PATH_INFO $path_info;
{cgi}
    }}
  }}
}}
"""


def _accepts(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=2):
        return True


# -- ssh -----------------------------------------------------------------------------------


@dataclass(slots=True)
class GitSshServer:
    """sshd serving every bare repository under ``repos`` to one key."""

    directory: Path
    port: int = 0
    user: str = ""
    client_key: bytes = field(default=b"", repr=False)  # OpenSSH private key authorized here
    host_public_key: str = ""  # "ssh-ed25519 AAAA..."
    _procs: procs.ProcessSet = field(default_factory=procs.ProcessSet)

    @property
    def repos(self) -> Path:
        return self.directory / "repos"

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@{HOST}:{self.port}{self.repos}/{name}.git"

    def new_repo(self, name: str) -> WorkRepo:
        return WorkRepo.create(self.repos / f"{name}.git", self.directory / "work" / name)

    @property
    def known_hosts(self) -> bytes:
        """The known_hosts line for this server (non-default port, so ``[host]:port``)."""
        return f"[{HOST}]:{self.port} {self.host_public_key}\n".encode()

    def secret_data(self, *, identity: bytes | None = None, known_hosts: bytes | None = None) -> dict[str, bytes]:
        """A Secret's data for this server: identity and known_hosts (either replaceable)."""
        return {
            "identity": self.client_key if identity is None else identity,
            "known_hosts": self.known_hosts if known_hosts is None else known_hosts,
        }

    def stop(self) -> None:
        self._procs.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def new_ssh_key() -> tuple[bytes, str]:
    """A fresh ed25519 key: (OpenSSH private key, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def start_git_ssh(timeout: float = 20.0) -> GitSshServer:
    """Start sshd in the foreground on a free loopback port; return once it greets."""
    sshd = _require(SSHD, "openssh-server")
    directory = procs.private_dir("git-ssh")
    user = pwd.getpwuid(os.geteuid()).pw_name
    server = GitSshServer(directory, procs.free_port(HOST), user)
    try:
        (directory / "repos").mkdir()
        host_private, server.host_public_key = new_ssh_key()
        host_key = directory / "host_ed25519"
        host_key.write_bytes(host_private)
        host_key.chmod(0o600)
        server.client_key, client_public = new_ssh_key()
        (directory / "authorized_keys").write_text(client_public + "\n")
        if os.geteuid() == 0:
            # sshd's privilege separation directory (Debian creates it from its service unit).
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        (directory / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {server.port}",
                    f"ListenAddress {HOST}",
                    f"HostKey {host_key}",
                    f"PidFile {directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {user}",
                    "AcceptEnv GIT_PROTOCOL",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "UseDNS no",
                    "MaxStartups 64:30:128",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        proc = server._procs.add(
            procs.start("sshd", [sshd, "-D", "-e", "-f", str(directory / "sshd_config")], directory / "logs")
        )
        procs.wait_until("sshd banner", lambda: _ssh_banner(server.port), timeout=timeout, watch=[proc])
    except BaseException:
        server.stop()
        raise
    return server


def _ssh_banner(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=2) as conn:
        return conn.recv(64).startswith(b"SSH-2.0-")
