"""Release records: every release of an Environment, stored in the cluster so it can be restored.

- ``info``: the values (names, limits, ``ReleaseInfo``); ``payload``: the bundle's bytes, read
  with every size bounded before the work it bounds; ``signing``: the HMAC over each record and
  the key Secret it uses;
- ``record``: the format (one ``gitopsd.dev/release.v1`` Secret per release, the rendered
  bundle gzip-compressed, its digest, verdict and who applied it) and the checks on reading one;
- ``store``: the Secrets themselves (metadata-only lists, create-only heads, split parts);
- ``history``: the rules (next number, rollback target, what historyLimit removes);
- ``ledger``: the daemon's account of the records and the write order that survives kill -9;
- ``requests``: the rollback / resume / force-freeze requests the CLI leaves for the daemon.
"""

from gitopsd.releases import signing
from gitopsd.releases.ledger import Ledger, Ledgers, current_number
from gitopsd.releases.record import Owner, Release, ReleaseError, ReleaseInfo, Result, digest_of, secret_name
from gitopsd.releases.store import Listing, ReleaseStore

__all__ = [
    "Ledger",
    "Ledgers",
    "Listing",
    "Owner",
    "Release",
    "ReleaseError",
    "ReleaseInfo",
    "ReleaseStore",
    "Result",
    "current_number",
    "digest_of",
    "secret_name",
    "signing",
]
