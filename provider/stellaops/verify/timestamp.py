"""RFC 3161 signed timestamps on cosign's legacy ``.att`` layers (pure, no I/O).

cosign writes the layer annotation ``dev.sigstore.cosign/rfc3161timestamp`` as
``{"SignedRFC3161Timestamp": "<base64 of a DER TimeStampResp>"}`` (cosign
``pkg/cosign/bundle/tsa.go``). What the token's message imprint covers depends on the cosign that
made it (checked with the real binaries and a real sigstore timestamp-authority):

- cosign v2 ``attest --timestamp-server-url`` timestamps the **envelope bytes** (the layer as
  stored), and that is what ``cosign verify-attestation`` (v2 and v3) checks
  (``pkg/cosign/verify.go`` ``VerifyRFC3161Timestamp``: an attestation has no base64 signature,
  so the payload, i.e. the envelope, is hashed);
- cosign v3.1 ``attest --new-bundle-format=false`` gets its token from sigstore-go, which
  timestamps the **raw DSSE signature bytes**; cosign v3.1.3 cannot verify those itself
  ("hashed messages don't match").

Both bind the token to signed material, so we accept either: the exact envelope bytes, or the
decoded bytes of an envelope signature that verified for the signer in question (a timestamp
over a signature proves the signature existed then, as for sigstore bundles).

The token is checked with ``rfc3161-client`` (the library sigstore-python uses) against each
configured timestamp authority (``timestampAuthorities`` of a ``trusted_root.json``, or a PEM chain
from ``tsaCertChain`` / ``--timestamp-certificate-chain``): PKIStatus granted, CMS signature by the
configured TSA certificate, that certificate valid at the token's time with the critical
timeStamping EKU, message imprint equal to the hash of the covered bytes, and the token's time
inside the authority's ``validFor`` window. Nonce and policy are not checked (as cosign).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from .. import dsse
from ..errors import VerificationError
from .trustroot import CertificateAuthority

ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
MAX_TOKEN = 64 << 10  # a TimeStampResp with a chain is a few KiB

_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}


class TimestampInvalid(VerificationError):
    """The signed timestamp is malformed, untrusted, or does not cover this attestation."""

    reason = "TIMESTAMP_INVALID"


@dataclass(frozen=True)
class VerifiedTimestamp:
    """A timestamp that verified: when, by which authority, over which bytes."""

    time: datetime  # the token's genTime (UTC)
    authority: str  # the TSA certificate's common name (else its whole subject)
    message: bytes  # the bytes the imprint covers (the envelope or one signature)
    covers: str  # "envelope" | "signature"


def parse_annotation(value: str) -> bytes:
    """The DER TimeStampResp inside cosign's annotation value."""
    if len(value) > 2 * MAX_TOKEN:
        raise TimestampInvalid(f"the {ANNOTATION} annotation is {len(value)} characters, more than {2 * MAX_TOKEN}")
    doc = dsse.strict_json(value, what=f"the {ANNOTATION} annotation", error=TimestampInvalid)
    if not isinstance(doc, dict) or set(doc) != {"SignedRFC3161Timestamp"}:
        raise TimestampInvalid(
            f'the {ANNOTATION} annotation must be {{"SignedRFC3161Timestamp": "<base64>"}}',
            hint="it is written by cosign attest --timestamp-server-url",
        )
    raw = doc["SignedRFC3161Timestamp"]
    if not isinstance(raw, str) or not raw:
        raise TimestampInvalid(f"{ANNOTATION}: SignedRFC3161Timestamp must be a non-empty base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TimestampInvalid(f"{ANNOTATION}: SignedRFC3161Timestamp is not valid base64") from exc


def _name(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _decode(der: bytes):  # type: ignore[no-untyped-def]
    from rfc3161_client import decode_timestamp_response

    if len(der) > MAX_TOKEN:
        raise TimestampInvalid(f"the timestamp is {len(der)} bytes, more than {MAX_TOKEN}")
    try:
        return decode_timestamp_response(der)
    except Exception as exc:
        raise TimestampInvalid(f"the timestamp is not a DER RFC 3161 TimeStampResp: {exc}") from exc


def verify(
    der: bytes,
    *,
    envelope: bytes | None,
    signatures: Sequence[bytes],
    authorities: Sequence[CertificateAuthority],
) -> VerifiedTimestamp:
    """Verify the TimeStampResp ``der`` over ``envelope`` or one of ``signatures``.

    ``signatures`` are the raw bytes of the envelope signatures that verified for a signer;
    ``authorities`` the configured TSAs (leaf first, root last). Raises :class:`TimestampInvalid`."""
    from rfc3161_client import PKIStatus, VerifierBuilder
    from rfc3161_client import VerificationError as TspVerificationError

    if not authorities:
        raise TimestampInvalid("no timestamp authority is configured", hint="configure tsaCertChain or timestampAuthorities")
    resp = _decode(der)
    try:
        status = resp.status
        info = resp.tst_info
        gen_time = _utc(info.gen_time)
        imprint = info.message_imprint
        algorithm = _HASHES.get(imprint.hash_algorithm.dotted_string)
        imprinted = imprint.message
    except Exception as exc:
        raise TimestampInvalid(f"the timestamp response holds no readable TSTInfo (status {getattr(resp, 'status', '?')}): {exc}") from exc
    if status != PKIStatus.GRANTED:
        raise TimestampInvalid(f"the timestamp response has PKIStatus {status}, not granted (0)")
    if algorithm is None:
        raise TimestampInvalid(f"the timestamp's message imprint uses {imprint.hash_algorithm.dotted_string}, not SHA-256/384/512")
    candidates = ([("envelope", envelope)] if envelope is not None else []) + [("signature", s) for s in signatures]
    covered = next(((what, m) for what, m in candidates if hashlib.new(algorithm, m).digest() == imprinted), None)
    if covered is None:
        raise TimestampInvalid(
            f"the timestamp's message imprint ({algorithm}:{imprinted.hex()}) covers neither the envelope bytes "
            "nor a verified signature of this attestation",
            hint="the timestamp was made for other data, or the envelope was re-serialised after timestamping",
        )
    what, message = covered
    problems: list[str] = []
    for ca in authorities:
        leaf, chain = ca.certificates[0], ca.certificates
        name = _name(leaf)
        builder = VerifierBuilder(tsa_certificate=leaf, roots=[chain[-1]], intermediates=list(chain[1:-1]))
        try:
            builder.build().verify(resp, imprinted)
        except (TspVerificationError, ValueError) as exc:
            problems.append(f"{name}: {str(exc).split(': ErrorStack', 1)[0]}")  # drop OpenSSL's error stack
            continue
        if not (leaf.not_valid_before_utc <= gen_time <= leaf.not_valid_after_utc):
            problems.append(f"{name}: its certificate was not valid at {gen_time.isoformat()}")
            continue
        if not ca.valid_for.contains(gen_time):
            window = ca.valid_for.to_json()
            problems.append(f"{name}: the authority is trusted only for {window}, not at {gen_time.isoformat()}")
            continue
        return VerifiedTimestamp(time=gen_time, authority=name, message=message, covers=what)
    raise TimestampInvalid(
        f"the timestamp of {gen_time.isoformat()} does not verify against any configured timestamp authority: "
        + "; ".join(problems),
        hint="configure the TSA that issued it (tsaCertChain, --timestamp-certificate-chain, or timestampAuthorities "
        "in the trusted root), with a validity window covering the timestamp",
    )
