"""The verdict: what the provider answers per image key (DESIGN.md §3, schema version 1).

Frozen dataclasses; ``to_json()`` produces exactly the documented shape. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import StellaError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Signer:
    """Who signed: a key authority or a keyless (Fulcio) identity."""

    kind: str  # "key" | "keyless"
    authority: str
    key_id: str = ""  # "sha256:<hex of SPKI DER>"
    issuer: str = ""
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "authority": self.authority}
        if self.key_id:
            out["keyId"] = self.key_id
        if self.kind == "keyless":
            out["issuer"] = self.issuer
            out["subject"] = self.subject
        return out


@dataclass(frozen=True)
class TlogResult:
    """The transparency-log outcome of one attestation."""

    verified: bool = False
    log_index: int | None = None
    integrated_time: int | None = None
    log_id: str = ""
    # whether the provider's trust configuration required a verified log entry for this
    # attestation (requireTlog, or a keyless signer); False is cosign's --insecure-ignore-tlog
    required: bool = True
    # the entry was not attached but found by the online Rekor lookup (attestation.tlogLookup)
    looked_up: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verified": self.verified, "required": self.required}
        if self.looked_up:
            out["origin"] = "rekor-lookup"
        if self.log_index is not None:
            out["logIndex"] = self.log_index
        if self.integrated_time is not None:
            out["integratedTime"] = self.integrated_time
        return out


@dataclass(frozen=True)
class TimestampResult:
    """An RFC 3161 signed timestamp that verified against a configured timestamp authority."""

    authority: str  # the TSA certificate's common name
    time: str  # the token's genTime, RFC 3339 UTC

    def to_json(self) -> dict[str, str]:
        return {"authority": self.authority, "time": self.time}


@dataclass(frozen=True)
class ErrorItem:
    reason: str
    message: str
    hint: str = ""

    @classmethod
    def from_error(cls, err: StellaError) -> "ErrorItem":
        return cls(err.reason, err.detail, err.hint)

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class AttestationResult:
    """One attestation found for the image, with the outcome of verifying it.

    ``predicate`` is only ever the *signed* predicate, and only for verified attestations;
    an unverified attestation carries its reasons and nothing of its content.
    """

    predicate_type: str
    verified: bool
    source: str  # referrers | referrers-tag | cosign-tag | bundle | imported
    digest: str = ""  # the image digest this attestation's subject covers
    signers: tuple[Signer, ...] = ()
    tlog: TlogResult = field(default_factory=TlogResult)
    created: str = ""
    created_signed: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    predicate: Any = None
    predicate_summary: dict[str, Any] = field(default_factory=dict)
    errors: tuple[ErrorItem, ...] = ()
    envelope_digest: str = ""  # sha256 of the envelope bytes: identifies copies of one envelope
    timestamps: tuple[TimestampResult, ...] = ()  # verified RFC 3161 timestamps (omitted from JSON when none)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "predicateType": self.predicate_type,
            "verified": self.verified,
            "signers": [s.to_json() for s in self.signers],
            "tlog": self.tlog.to_json(),
            "source": self.source,
            "digest": self.digest,
            "created": self.created,
            "createdSigned": self.created_signed,
            "annotations": dict(self.annotations),
            "predicateSummary": dict(self.predicate_summary),
            "errors": [e.to_json() for e in self.errors],
        }
        if self.verified and self.predicate is not None:
            out["predicate"] = self.predicate
        if self.timestamps:
            out["timestamps"] = [t.to_json() for t in self.timestamps]
        return out


@dataclass(frozen=True)
class PlatformDetail:
    """One platform manifest of an index, as the index lists it (informational, unsigned)."""

    digest: str
    platform: str  # "os/architecture[/variant]", bounded; "" when the entry names none
    index: str  # the index listing it (the image's, or a nested one)

    def to_json(self) -> dict[str, str]:
        return {"digest": self.digest, "platform": self.platform, "index": self.index}


@dataclass(frozen=True)
class Verdict:
    """Everything the provider says about one image key."""

    image: str
    digest: str
    attestations: tuple[AttestationResult, ...] = ()
    errors: tuple[ErrorItem, ...] = ()
    # for an index: every platform manifest a runtime could select (nested indexes' leaves too)
    platforms: tuple[str, ...] = ()
    platform_details: tuple[PlatformDetail, ...] = ()  # the same platforms with their platform and index

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "image": self.image,
            "digest": self.digest,
            "platforms": list(self.platforms),
            "platformDetails": [p.to_json() for p in self.platform_details],
            "attestations": [a.to_json() for a in self.attestations],
            "errors": [e.to_json() for e in self.errors],
        }
