"""``--tls-cipher-suites`` and ``--tls-min-version`` as Kubernetes API servers take them, on our SSL context.

prometheus-adapter's own deployment passes both (Go's IANA suite names, ``VersionTLS12``), so they
are applied rather than refused. Go, and so Kubernetes, leaves TLS 1.3 suites fixed; OpenSSL does
the same with ``set_ciphers``, so the names select TLS 1.2 suites only and TLS 1.3 names are
accepted as no-ops. The floor stays TLS 1.2 whatever is asked: 1.0 and 1.1 are raised to it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from metrics_adapter.errors import ConfigError

# IANA name (as Go's crypto/tls spells it) -> OpenSSL name.
_SUITES = {
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
_VERSIONS = {
    "VersionTLS10": ssl.TLSVersion.TLSv1_2,
    "VersionTLS11": ssl.TLSVersion.TLSv1_2,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    ciphers: str | None = None  # an OpenSSL cipher list for TLS 1.2; None: OpenSSL's defaults
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2

    def apply(self, ctx: ssl.SSLContext) -> None:
        ctx.minimum_version = self.minimum
        if self.ciphers:
            ctx.set_ciphers(self.ciphers)


def parse(cipher_suites: str | None, min_version: str | None) -> tuple[TLSPolicy, list[str]]:
    """The policy for the flags' values, and notes for the warning line (e.g. a version raised to 1.2)."""
    notes: list[str] = []
    minimum = ssl.TLSVersion.TLSv1_2
    if min_version:
        if min_version not in _VERSIONS:
            raise ConfigError(f"--tls-min-version {min_version!r}: use one of {', '.join(_VERSIONS)}")
        minimum = _VERSIONS[min_version]
        if min_version in ("VersionTLS10", "VersionTLS11"):
            notes.append(f"--tls-min-version={min_version} (TLS 1.2 is the floor here)")
    ciphers = None
    if cipher_suites:
        names = [n.strip() for n in cipher_suites.split(",") if n.strip()]
        unknown = [n for n in names if n not in _SUITES and n not in _TLS13]
        if unknown:
            raise ConfigError(f"--tls-cipher-suites: unknown cipher suite {unknown[0]!r} (give IANA names, as Go does)")
        openssl = list(dict.fromkeys(_SUITES[n] for n in names if n in _SUITES))
        if openssl:
            ciphers = ":".join(openssl)
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).set_ciphers(ciphers)
            except ssl.SSLError:
                raise ConfigError(
                    f"--tls-cipher-suites: none of {', '.join(names)} is available in this OpenSSL"
                ) from None
    return TLSPolicy(ciphers, minimum), notes
