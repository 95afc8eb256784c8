"""Who may sign: the trust part of ``stellaops.yaml`` as frozen, validated objects.

``load_trust`` (in :mod:`stellaops.config`) builds a :class:`TrustConfig` at start-up and fails
there, naming the exact field and file, so that verification never meets a bad key at
admission time. ``fingerprint`` identifies the trust material: verdicts are cached by
(digest, fingerprint), so any change of trust invalidates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class KeyAuthority:
    """An authority that signs with a fixed key (cosign ``--key``)."""

    name: str
    public_key: Any  # a cryptography public key object
    key_id: str  # "sha256:<hex of SPKI DER>"
    path: str = ""
    # cosign --use-signed-timestamps with --key: this signer needs at least one verified RFC 3161
    # timestamp over its signature (or the exact envelope bytes)
    use_signed_timestamps: bool = False


@dataclass(frozen=True)
class KeylessAuthority:
    """An authority that signs keylessly: a Fulcio certificate whose identity matches.

    Exactly one of ``issuer``/``issuer_regexp`` and one of ``subject``/``subject_regexp`` is set.
    Regexps are RE2 and must match the *whole* value (DESIGN.md §5: stricter than cosign).
    """

    name: str
    issuer: str = ""
    issuer_regexp: str = ""
    subject: str = ""
    subject_regexp: str = ""
    # Exact values the certificate's Fulcio extensions must carry, as (config key, value) pairs,
    # keys from :data:`stellaops.verify.keyless.EXTENSION_KEYS` (cosign's
    # --certificate-github-workflow-* and the source-repository extensions). All must match.
    extensions: tuple[tuple[str, str], ...] = ()
    # cosign --insecure-ignore-sct: accept a certificate without a verifying embedded SCT (an
    # instance without a CT log, e.g. GitHub's own Sigstore). Explicit per authority.
    insecure_ignore_sct: bool = False
    # cosign --use-signed-timestamps: this signer needs at least one verified RFC 3161 timestamp
    # over its signature; with requireTlog false it may stand in for a log entry the attestation
    # does not have (an instance without a transparency log, e.g. GitHub's own Sigstore).
    use_signed_timestamps: bool = False


Authority = Union[KeyAuthority, KeylessAuthority]


@dataclass(frozen=True)
class TufMirror:
    """A TUF repository that publishes Sigstore's ``trusted_root.json`` (what ``cosign initialize
    --mirror URL --root root.json`` points cosign at). Fetched and refreshed by
    :mod:`stellaops.verify.tuf`; ``root_json`` is the trusted initial root metadata."""

    url: str
    root_json: bytes
    root_source: str = ""  # the file it came from, for messages
    cache_dir: str = ""  # "" = ~/.cache/stellaops/tuf/<quoted url>
    refresh_seconds: float = 3600.0  # how long fetched material is used before asking the mirror again
    max_stale_seconds: float = 86400.0  # how long the last good material outlives failed refreshes
    fetch_timeout_seconds: float = 10.0  # one refresh (all metadata and the target) ends within this


@dataclass(frozen=True)
class SigstoreRoots:
    """Sigstore trust material for keyless and Rekor checks.

    ``trusted_root_json`` is a sigstore ``trusted_root.json`` document (bytes) holding the
    Fulcio CAs, Rekor keys, CT log keys and TSAs; when the config gives only PEM files for a
    private instance, the loader assembles an equivalent document from them.
    """

    trusted_root_json: bytes = b""  # trustRoots.bundlePath (a sigstore trusted_root.json)
    trusted_root_source: str = ""  # the file it came from, for messages
    fulcio_roots_pem: bytes = b""  # trustRoots.sigstore.trustedRootPem (private Fulcio CA chain)
    rekor_public_key_pem: bytes = b""  # trustRoots.sigstore.rekorPublicKey
    ctlog_public_key_pem: bytes = b""  # trustRoots.sigstore.ctlogPublicKey
    tsa_chain_pem: bytes = b""  # trustRoots.sigstore.tsaCertChain / --timestamp-certificate-chain (RFC 3161 TSA)
    public_good: bool = False  # no local material: public-good Sigstore via TUF (online, on first use)
    offline: bool = False
    fulcio_url: str = ""
    rekor_url: str = ""
    ctlog_url: str = ""
    tuf: TufMirror | None = None  # trustRoots.sigstore.tuf: a custom TUF mirror (merged with local material)


@dataclass(frozen=True)
class TlogLookup:
    """``attestation.tlogLookup``: ask Rekor (``rekor_url``) for the log entry of an attestation
    that carries none (cosign's search), when the log is required. Never used when the trust
    roots are ``offline`` (air-gapped); :mod:`stellaops.verify.rekor_lookup` does the I/O."""

    rekor_url: str  # trustRoots.sigstore.rekorUrl (or the CLI's --rekor-url), no trailing slash
    timeout_seconds: float = 1.0  # the whole lookup; the provider's request deadline also bounds it
    max_response_bytes: int = 1 << 20


@dataclass(frozen=True)
class TrustConfig:
    authorities: tuple[Authority, ...] = ()
    require_tlog: bool = True  # False == cosign --insecure-ignore-tlog (key authorities only)
    sigstore: SigstoreRoots | None = None
    fingerprint: str = ""
    tlog_lookup: TlogLookup | None = None  # None = off (the default, and always when offline)
    # attestation.keylessTimestampWithoutTlog: with require_tlog False, a verified RFC 3161 timestamp
    # may replace a keyless signer's log entry (cosign --insecure-ignore-tlog with a TSA). Off:
    # keyless signers always need a verified log entry, whatever require_tlog says.
    keyless_timestamp_without_tlog: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key_authorities(self) -> tuple[KeyAuthority, ...]:
        return tuple(a for a in self.authorities if isinstance(a, KeyAuthority))

    @property
    def keyless_authorities(self) -> tuple[KeylessAuthority, ...]:
        return tuple(a for a in self.authorities if isinstance(a, KeylessAuthority))
