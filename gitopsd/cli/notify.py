"""``gitopsd notify``: tell the daemon that a ref moved, from a self-hosted Git server's post-receive hook.

It sends what a Git host's webhook would, to the generic hook, signed the same way::

    POST {receiver}/hooks/generic
    X-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>
    {"event": "push", "repository": URL, "ref": "refs/heads/main", "after": "<sha>"}

The hook script (docs/push-to-deploy.md) calls it once per pushed ref. Exit 0 when the daemon
accepted the request (it says which Environments it triggered), 1 when it refused or could
not be reached (after a few quick retries), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp

from gitopsd.cli.common import CliError, seconds
from gitopsd.webhooks.signatures import sign

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_DEFAULT_RECEIVER = "http://127.0.0.1:8081"
_ATTEMPTS = 3


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("notify", help="tell gitopsd a ref was pushed (for post-receive hooks)")
    parser.add_argument("--url", required=True, help="the repository URL, as Environments name it (any spelling)")
    parser.add_argument("--ref", required=True, help="the full ref name: refs/heads/BRANCH or refs/tags/TAG")
    parser.add_argument("--after", help="the commit the ref points to now (all zeros for a deleted ref)")
    parser.add_argument(
        "--receiver",
        default=os.environ.get("GITOPSD_RECEIVER", _DEFAULT_RECEIVER),
        help=f"the daemon's webhook receiver (default $GITOPSD_RECEIVER, else {_DEFAULT_RECEIVER})",
    )
    parser.add_argument(
        "--secret-file",
        type=Path,
        default=os.environ.get("GITOPSD_SECRET_FILE"),
        help="file holding the generic hook's secret (default $GITOPSD_SECRET_FILE)",
    )
    parser.add_argument("--timeout", type=seconds("--timeout"), default=10.0, help="seconds per attempt (default 10)")
    parser.set_defaults(handler=notify)


def request_body(url: str, ref: str, after: str | None) -> bytes:
    """The generic hook's body for one pushed ref (validated: exit 2 naming the bad argument)."""
    if not url.strip():
        raise CliError("--url: the repository URL is empty", code=2)
    if not ref.startswith(("refs/heads/", "refs/tags/")) or ref in ("refs/heads/", "refs/tags/"):
        raise CliError(f"--ref {ref!r}: give the full ref name (refs/heads/main, refs/tags/v1.2.0)", code=2)
    body: dict[str, Any] = {"event": "push", "repository": url.strip(), "ref": ref}
    if after is not None:
        if not _SHA.match(after):
            raise CliError(f"--after {after!r}: expected a commit id (40 lowercase hex digits)", code=2)
        body["after"] = after
    return json.dumps(body, separators=(",", ":")).encode()


def endpoint(receiver: str) -> str:
    base = receiver.rstrip("/")
    if not re.match(r"^https?://[^/]+", base):
        raise CliError(f"--receiver {receiver!r}: expected http(s)://HOST[:PORT]", code=2)
    return base if base.endswith("/hooks/generic") else base + "/hooks/generic"


def read_secret(path: Path | None) -> bytes:
    if path is None:
        raise CliError("--secret-file is required (or $GITOPSD_SECRET_FILE): the generic hook's secret", code=2)
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise CliError(f"--secret-file {path}: {exc.strerror or exc}", code=2) from None
    if not secret:
        raise CliError(f"--secret-file {path}: the file is empty", code=2)
    return secret


async def notify(args: argparse.Namespace) -> int:
    body = request_body(args.url, args.ref, args.after)
    url = endpoint(args.receiver)
    secret = read_secret(args.secret_file)
    headers = {"Content-Type": "application/json", "X-Signature": sign(secret, body)}
    last = ""
    async with aiohttp.ClientSession() as session:
        for attempt in range(_ATTEMPTS):
            try:
                async with session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=args.timeout)
                ) as resp:
                    text = await resp.text()
                    message = _message(text)
                    if resp.status < 300:
                        print(message)
                        return 0
                    last = f"{url}: HTTP {resp.status}: {message}"
                    if resp.status not in (429, 502, 503, 504):
                        break
                    delay = float(resp.headers.get("Retry-After", "1") or 1)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = f"{url}: {'timed out' if isinstance(exc, TimeoutError) else exc}"
                delay = 1.0
            if attempt < _ATTEMPTS - 1:
                await asyncio.sleep(min(delay, 5.0))
    print(f"error: {last}", file=sys.stderr)
    return 1


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(data, dict):
        triggered = data.get("triggered")
        suffix = f" ({', '.join(triggered)})" if triggered else ""
        return f"{data.get('message', '')}{suffix}"
    return text.strip()[:300]
