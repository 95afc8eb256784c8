"""What discovery hands to verification: one attestation as found, untrusted.

Everything here is *unverified* data from a registry or the store. Annotations are hints
only; trust comes from the signed payload (DESIGN.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where a candidate was found (the verdict's ``source``).
SOURCE_REFERRERS = "referrers"  # OCI 1.1 referrers API: a plain DSSE referrer
SOURCE_REFERRERS_TAG = "referrers-tag"  # the <alg>-<hex> referrers tag fallback index
SOURCE_COSIGN_TAG = "cosign-tag"  # cosign's legacy sha256-<hex>.att tag
SOURCE_BUNDLE = "bundle"  # a sigstore bundle referrer (API or fallback tag)
SOURCE_IMPORTED = "imported"  # the imported-attestation store
SOURCES = (SOURCE_REFERRERS, SOURCE_REFERRERS_TAG, SOURCE_COSIGN_TAG, SOURCE_BUNDLE, SOURCE_IMPORTED)

KIND_DSSE = "dsse"  # ``data`` is a DSSE envelope JSON
KIND_BUNDLE = "bundle"  # ``data`` is a sigstore bundle JSON (v0.1–v0.3) holding a DSSE envelope


@dataclass(frozen=True)
class CosignLayerAnnotations:
    """The cosign annotations of a legacy ``.att`` layer, carried for verification."""

    certificate: str = ""  # dev.sigstore.cosign/certificate (leaf PEM)
    chain: str = ""  # dev.sigstore.cosign/chain (PEM)
    rekor_bundle: str = ""  # dev.sigstore.cosign/bundle (Rekor SET JSON)
    rfc3161_timestamp: str = ""  # dev.sigstore.cosign/rfc3161timestamp


@dataclass(frozen=True)
class Candidate:
    """One attestation as found. ``data`` holds the exact bytes as stored (never re-serialised:
    Rekor binds the entry to sha256 of exactly these bytes)."""

    kind: str  # KIND_DSSE | KIND_BUNDLE
    data: bytes
    source: str
    attached_to: str  # the manifest digest it was found attached to (index or platform)
    location: str = ""  # where: referrer manifest digest, tag@layer digest, store id
    annotations: dict[str, str] = field(default_factory=dict)  # manifest/layer annotations
    cosign: CosignLayerAnnotations = field(default_factory=CosignLayerAnnotations)
    artifact_type: str = ""
    created: str = ""  # org.opencontainers.image.created if present (unsigned)
