"""A target cluster's connection, read from the kubeconfig a Secret holds (embedded credentials only).

``--kubeconfig`` (``kube.config``) trusts its file: certificates and tokens may be paths, exec
plugins run. A kubeconfig in a Secret is written by whoever may write Secrets in the
Environment's namespace, so it may name nothing outside itself:

- accepted: ``certificate-authority-data``, ``client-certificate-data`` + ``client-key-data``,
  ``token``, ``tls-server-name``, ``insecure-skip-tls-verify``;
- refused: ``exec`` (it would run a program in the daemon) and ``auth-provider``; file paths
  (``certificate-authority``, ``client-certificate``, ``client-key``, ``tokenFile``: they would
  read the daemon's files, its own service-account token among them); ``username``/``password``;
  ``proxy-url``; a server that is not ``https://``; no ``current-context``.

The key read is ``secretRef.key`` if given, else ``value``, else ``value.yaml`` (Flux's). Every
refusal is a ``KubeConfigInvalid`` naming the Secret, the key and the problem. No message holds
a value from the kubeconfig other than names and the server URL (a URL's user info is dropped).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from gitopsd import yamlerrors
from gitopsd.clusters.errors import KubeConfigInvalid
from gitopsd.clusters.spec import DEFAULT_KEYS, KubeConfigRef
from gitopsd.kube.config import Connection
from gitopsd.kube.secrets import SecretData

#: Fields of a kubeconfig ``user`` that point outside the Secret or run something: refused.
_REFUSED_USER = {
    "exec": "exec credential plugins are not supported in a kubeconfig Secret (they would run a program in"
    " gitopsd): give a bearer token (users[].user.token) or client certificate data",
    "auth-provider": "auth-provider plugins are not supported in a kubeconfig Secret: give a bearer token"
    " (users[].user.token) or client certificate data",
    "client-certificate": "client-certificate is a file path; a kubeconfig Secret must embed it"
    " (client-certificate-data)",
    "client-key": "client-key is a file path; a kubeconfig Secret must embed it (client-key-data)",
    "tokenFile": "tokenFile is a file path; a kubeconfig Secret must embed the token (token)",
    "username": "basic authentication (username/password) is not supported: give a bearer token or client"
    " certificate data",
    "password": "basic authentication (username/password) is not supported: give a bearer token or client"
    " certificate data",
}
_REFUSED_CLUSTER = {
    "certificate-authority": "certificate-authority is a file path; a kubeconfig Secret must embed it"
    " (certificate-authority-data)",
    "proxy-url": "proxy-url is not supported",
}


def pick_key(secret: SecretData, ref: KubeConfigRef) -> str:
    """The Secret's key holding the kubeconfig: ``ref.key``, else ``value``, else ``value.yaml``."""
    if ref.key is not None:
        if ref.key not in secret:
            raise KubeConfigInvalid(f"{secret.label} has no key {ref.key!r} (keys: {_keys(secret)})")
        return ref.key
    for key in DEFAULT_KEYS:
        if key in secret:
            return key
    wanted = " or ".join(repr(k) for k in DEFAULT_KEYS)
    raise KubeConfigInvalid(f"{secret.label} has no key {wanted} (keys: {_keys(secret)}); or set secretRef.key")


def _keys(secret: SecretData) -> str:
    return ", ".join(sorted(secret)) or "none"


def connection_of(secret: SecretData, ref: KubeConfigRef) -> Connection:
    """The connection the kubeconfig in ``secret`` describes; ``KubeConfigInvalid`` says what is wrong."""
    key = pick_key(secret, ref)
    return parse(secret[key], f"{secret.label} key {key!r}")


def parse(raw: bytes, where: str) -> Connection:
    """The connection of kubeconfig bytes ``raw`` (embedded credentials only); ``where`` prefixes errors."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KubeConfigInvalid(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Position and problem only: the YAML parser's snippet could show a token.
        where_at = yamlerrors.position(exc)
        at = f" at line {where_at[0]}, column {where_at[1]}" if where_at else ""
        raise KubeConfigInvalid(f"{where}: not YAML{at}: {yamlerrors.problem(exc)}") from None
    if not isinstance(doc, dict):
        got = "nothing" if doc is None else f"a {type(doc).__name__}"
        raise KubeConfigInvalid(
            f"{where}: not a kubeconfig (expected a mapping with clusters, contexts, users; got {got})"
        )
    current = doc.get("current-context")
    if not isinstance(current, str) or not current:
        raise KubeConfigInvalid(f"{where}: no current-context")
    context = _entry(doc, "contexts", "context", current, where)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise KubeConfigInvalid(f"{where}: context {current!r} names no cluster")
    cluster = _entry(doc, "clusters", "cluster", cluster_name, where)
    user = _entry(doc, "users", "user", user_name, where) if isinstance(user_name, str) and user_name else {}
    for field_name, problem in _REFUSED_CLUSTER.items():
        if cluster.get(field_name):
            raise KubeConfigInvalid(f"{where}: cluster {cluster_name!r}: {problem}")
    for field_name, problem in _REFUSED_USER.items():
        if user.get(field_name):
            raise KubeConfigInvalid(f"{where}: user {user_name!r}: {problem}")
    server = _server(cluster.get("server"), f"{where}: cluster {cluster_name!r}")
    ca = _data(cluster, "certificate-authority-data", f"{where}: cluster {cluster_name!r}")
    cert = _data(user, "client-certificate-data", f"{where}: user {user_name!r}")
    key = _data(user, "client-key-data", f"{where}: user {user_name!r}")
    if (cert is None) != (key is None):
        raise KubeConfigInvalid(f"{where}: user {user_name!r}: give both client-certificate-data and client-key-data")
    token = user.get("token")
    if token is not None and not isinstance(token, str):
        raise KubeConfigInvalid(f"{where}: user {user_name!r}: token must be a string")
    bearer = f"Bearer {token.strip()}" if token and token.strip() else None
    tls_name = cluster.get("tls-server-name")
    namespace = context.get("namespace")
    return Connection(
        server=server,
        ca_file=None,
        cert_file=None,
        key_file=None,
        verify=not bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=str(tls_name) if tls_name else None,
        authorization=lambda: bearer,
        context=current,
        namespace=str(namespace) if isinstance(namespace, str) and namespace else "default",
        refreshes=False,
        ca_data=_pem(ca, f"{where}: cluster {cluster_name!r}: certificate-authority-data") if ca else None,
        cert_data=cert,
        key_data=key,
    )


def _entry(doc: Mapping[str, Any], section: str, field_name: str, name: str, where: str) -> Mapping[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(field_name)
            if body is None:
                return {}
            if not isinstance(body, dict):
                raise KubeConfigInvalid(f"{where}: {section} entry {name!r}: {field_name} must be a mapping")
            return body
    raise KubeConfigInvalid(f"{where}: no {section} entry named {name!r}")


def _server(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise KubeConfigInvalid(f"{where}: no server URL")
    parts = urlsplit(raw)
    shown = parts._replace(netloc=parts.hostname or "").geturl() if parts.username or parts.password else raw
    if parts.scheme != "https":
        raise KubeConfigInvalid(f"{where}: server {shown!r} is not an https:// URL (credentials would travel in clear)")
    if parts.username or parts.password:
        raise KubeConfigInvalid(f"{where}: server {shown!r} must not carry user info")
    if not parts.hostname:
        raise KubeConfigInvalid(f"{where}: server {shown!r} names no host")
    return raw.rstrip("/")


def _data(section: Mapping[str, Any], name: str, where: str) -> bytes | None:
    raw = section.get(name)
    if raw is None or raw == "":
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise KubeConfigInvalid(f"{where}: {name} is not base64") from None


def _pem(data: bytes, where: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KubeConfigInvalid(f"{where}: not PEM text") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise KubeConfigInvalid(f"{where}: holds no PEM certificate")
    return text


__all__ = ["connection_of", "parse", "pick_key"]
