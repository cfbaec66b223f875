"""Shards: several independent daemon groups, each reconciling the Environments its label selector picks.

When one replica cannot keep up (thousands of Environments, or big ones), Environments are
labelled (``gitopsd.dev/shard: a``) and each group of replicas runs with
``--shard-selector gitopsd.dev/shard=a``; the Environments without the label go to a group
run with ``--shard-selector '!gitopsd.dev/shard'``. Each shard elects its own leader on its
own Lease (named after the selector), so the groups never wait for each other.

The selector is Kubernetes' label-selector syntax, checked here so a typo fails at start
rather than silently matching nothing.
"""

from __future__ import annotations

import hashlib
import re

_KEY = r"(?:[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"^\s*(?:!\s*{_KEY}|{_KEY}(?:\s*(?:==?|!=)\s*{_VALUE}|\s+(?:in|notin)\s*\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\))?)\s*$"
)


def check_selector(text: str) -> str:
    """``text`` if it is a valid label selector; ``ValueError`` naming the bad requirement otherwise."""
    if not text.strip():
        raise ValueError("the selector is empty")
    for requirement in _split(text):
        if not _REQUIREMENT.match(requirement):
            raise ValueError(f"{requirement.strip()!r} is not a label requirement (key=value, key!=value, "
                             "key in (a,b), key notin (a,b), key, !key)")  # fmt: skip
    return text.strip()


def lease_name(base: str, selector: str | None) -> str:
    """The Lease of a shard: ``base`` for the unsharded daemon, ``base-<selector slug>-<hash>`` otherwise."""
    if not selector:
        return base
    slug = re.sub(r"[^a-z0-9]+", "-", selector.lower()).strip("-")[:30].strip("-")
    digest = hashlib.sha256(selector.strip().encode()).hexdigest()[:6]
    return f"{base}-{slug}-{digest}" if slug else f"{base}-{digest}"


def _split(text: str) -> list[str]:
    """Requirements separated by commas outside ``( )``."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts
