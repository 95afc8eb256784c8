"""Errors of StellaOps Attest.

One base class, :class:`StellaError`, carrying a stable ``reason`` code (the closed list in
:data:`REASONS`, documented in ``docs/verification.md``), a ``detail`` that names the value
found and the value expected, and a ``hint`` saying what to do next. Each stage of the chain
(reference → registry → discovery → verification → verdict) has its own subclass, so callers
can catch a stage without string matching. Only the CLI turns errors into exit codes, and only
the Gatekeeper blueprint turns them into ``error``/``systemError``.
"""

from __future__ import annotations

# The closed list of reason codes. Adding one is an API change: update docs/verification.md.
REASONS: dict[str, str] = {
    # definitive: per-key outcomes Gatekeeper may cache
    "INVALID_REFERENCE": "the image reference cannot be parsed",
    "REGISTRY_NOT_ALLOWED": "the registry is not in registries.allow, or resolves to a refused address",
    "MANIFEST_NOT_FOUND": "the image or one of its manifests does not exist",
    "NO_ATTESTATION": "no attestation of the wanted type is attached to the image",
    "MALFORMED_ENVELOPE": "the DSSE envelope is not valid JSON of the DSSE shape",
    "MALFORMED_STATEMENT": "the signed payload is not a valid in-toto Statement",
    "PAYLOAD_TYPE_INVALID": "the DSSE payloadType is not application/vnd.in-toto+json",
    "SIGNATURE_INVALID": "no signature on the envelope verifies against a configured authority",
    "UNTRUSTED_SIGNER": "a signature verifies, but its signer matches no configured authority",
    "SUBJECT_MISMATCH": "the statement does not name the image digest among its subjects",
    "CERTIFICATE_INVALID": "the signing certificate does not chain to a trusted root or has expired",
    "IDENTITY_MISMATCH": "the certificate identity or issuer does not match the authority",
    "SCT_INVALID": "the certificate's embedded SCT is missing or does not verify",
    "TLOG_MISSING": "the transparency log entry is required but absent",
    "TLOG_INVALID": "the transparency log entry does not verify or is not bound to this envelope",
    "TIMESTAMP_INVALID": "the RFC 3161 signed timestamp is malformed, from no configured timestamp authority, or does not cover this envelope",
    "PREDICATE_INVALID": "the predicate does not match its published schema",
    "LIMIT_EXCEEDED": "a configured size or count limit was exceeded",
    "REGISTRY_ERROR": "the registry answered with a definitive error (4xx, bad digest, bad JSON)",
    "UNAUTHORIZED": "the registry refused the credentials (or none were configured)",
    "CONFIG_INVALID": "the configuration is invalid",
    "KEY_INVALID": "a key file cannot be read or has an unsupported type",
    "REQUEST_INVALID": "the request is malformed",
    # transient: never cached per key (DESIGN.md §2 "Failure semantics")
    "REGISTRY_UNREACHABLE": "the registry could not be reached or answered 5xx/429",
    "DEADLINE_EXCEEDED": "the request deadline passed before the key was verified",
    "STORE_UNAVAILABLE": "the attestation store could not be reached",
    "TLOG_UNREACHABLE": "the online Rekor lookup (attestation.tlogLookup) could not reach Rekor or it answered 5xx/429",
    "SERVICE_UNREACHABLE": "a Sigstore signing service (Fulcio, Rekor or the timestamp authority) could not be reached or answered 5xx/429",
    "TRUST_ROOT_UNAVAILABLE": "the Sigstore trust material could not be fetched from its TUF mirror and no usable copy is held",
    "INTERNAL_ERROR": "an unexpected internal error (a bug); the key is retried on the next call",
}

TRANSIENT_REASONS = frozenset({"REGISTRY_UNREACHABLE", "DEADLINE_EXCEEDED", "STORE_UNAVAILABLE", "TLOG_UNREACHABLE", "TRUST_ROOT_UNAVAILABLE", "SERVICE_UNREACHABLE", "INTERNAL_ERROR"})


class StellaError(Exception):
    """Base error: a stable reason code, what was found, and what to do about it."""

    reason: str = "REQUEST_INVALID"

    def __init__(self, detail: str, *, reason: str | None = None, hint: str = "") -> None:
        if reason is not None:
            self.reason = reason
        if self.reason not in REASONS:  # pragma: no cover - programming error
            raise ValueError(f"unknown reason code {self.reason!r}")
        self.detail = detail
        self.hint = hint
        super().__init__(detail)

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (never cached per key)."""
        return self.reason in TRANSIENT_REASONS

    def to_json(self) -> dict[str, str]:
        """The ``errors[]`` item of DESIGN.md §3."""
        return {"reason": self.reason, "message": self.detail, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class ConfigError(StellaError):
    """The configuration (``stellaops.yaml``, a key file it names) is invalid."""

    reason = "CONFIG_INVALID"


class KeyLoadError(StellaError):
    """A key cannot be loaded or is of an unsupported type."""

    reason = "KEY_INVALID"


class InvalidReferenceError(StellaError):
    """An image reference cannot be parsed."""

    reason = "INVALID_REFERENCE"


class RegistryError(StellaError):
    """A registry call failed; ``reason`` tells a definitive failure from a transient one."""

    reason = "REGISTRY_ERROR"


class DiscoveryError(StellaError):
    """Finding attestations failed."""

    reason = "NO_ATTESTATION"


class VerificationError(StellaError):
    """An attestation failed verification; ``reason`` says which check."""

    reason = "SIGNATURE_INVALID"


class StoreError(StellaError):
    """The attestation store failed."""

    reason = "STORE_UNAVAILABLE"


class RequestError(StellaError):
    """A request to the provider is malformed."""

    reason = "REQUEST_INVALID"
