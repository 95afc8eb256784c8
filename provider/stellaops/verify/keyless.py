"""Keyless (Fulcio) signers: certificate chain at the verified time, embedded SCT, identity (pure).

Hand-written for cosign's legacy ``.att`` layers, which sigstore-python cannot read (DESIGN.md §5);
sigstore bundles are additionally checked by sigstore-python (see ``attestation.py``).

Facts (Fulcio ``docs/oid-info.md``, RFC 6962 §3.2):
- identity = a SubjectAltName value: email, URI, or Fulcio's OtherName 1.3.6.1.4.1.57264.1.7;
- OIDC issuer = extension 1.3.6.1.4.1.57264.1.1 (v1, raw string) or 1.3.6.1.4.1.57264.1.8
  (v2, DER UTF8String); when both are present they must agree (else the certificate is refused);
- the leaf must be valid at the verified time (Rekor's integrated time), chain to a configured
  Fulcio CA valid then, have digitalSignature and the codeSigning EKU;
- the embedded SCT is signed by a trusted CT log over the precertificate TBS and the issuer's
  key hash;
- the extensions an authority pins (:data:`EXTENSION_KEYS`): ``….1.2``–``….1.6`` (GitHub
  workflow trigger, SHA, name, repository, ref; deprecated, raw strings) as cosign's
  ``--certificate-github-workflow-*`` read them, and ``….1.9``–``….1.22`` (DER UTF8String):
  build signer URI, source repository URI, digest, ref, owner URI. A pinned value must be in
  its own extension (for the GitHub pins the deprecated one, as cosign reads it), and every
  other extension present that carries the same claim (its DER successor) must agree.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError

from ..errors import VerificationError
from ..trust import KeylessAuthority
from . import keys
from .trustroot import TrustedRootMaterial

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_OTHERNAME_SAN = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
MAX_CHAIN = 10


def _fulcio_oid(n: int) -> x509.ObjectIdentifier:
    return x509.ObjectIdentifier(f"1.3.6.1.4.1.57264.1.{n}")


# config key (authorities[].keyless.<key>) -> (deprecated raw-string OID, DER UTF8String OID)
# per Fulcio docs/oid-info.md; the successor of a deprecated GitHub extension carries the same
# claim (trigger = Build Trigger .20, sha = Source Repository Digest .13, ref = Source Repository
# Ref .14); workflow name and repository ("owner/repo") have none in the same format.
EXTENSION_KEYS: dict[str, tuple[x509.ObjectIdentifier | None, x509.ObjectIdentifier | None]] = {
    "githubWorkflowTrigger": (_fulcio_oid(2), _fulcio_oid(20)),
    "githubWorkflowSha": (_fulcio_oid(3), _fulcio_oid(13)),
    "githubWorkflowName": (_fulcio_oid(4), None),
    "githubWorkflowRepository": (_fulcio_oid(5), None),
    "githubWorkflowRef": (_fulcio_oid(6), _fulcio_oid(14)),
    "buildSignerUri": (None, _fulcio_oid(9)),
    "sourceRepositoryUri": (None, _fulcio_oid(12)),
    "sourceRepositoryDigest": (None, _fulcio_oid(13)),
    "sourceRepositoryRef": (None, _fulcio_oid(14)),
    "sourceRepositoryOwnerUri": (None, _fulcio_oid(16)),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class CertificateInvalid(VerificationError):
    reason = "CERTIFICATE_INVALID"


class SctInvalid(VerificationError):
    reason = "SCT_INVALID"


class IdentityMismatch(VerificationError):
    reason = "IDENTITY_MISMATCH"


class UntrustedSigner(VerificationError):
    reason = "UNTRUSTED_SIGNER"


@dataclass(frozen=True)
class Identity:
    issuer: str
    sans: tuple[str, ...]
    # the certificate's Fulcio extensions (dotted OID -> raw extension value), for pinned values
    extensions: tuple[tuple[str, bytes], ...] = ()

    def extension(self, oid: x509.ObjectIdentifier) -> bytes | None:
        return next((v for o, v in self.extensions if o == oid.dotted_string), None)


def load_pem_chain(pem: str | bytes, what: str) -> list[x509.Certificate]:
    data = pem.encode() if isinstance(pem, str) else pem
    if not data.strip():
        return []
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateInvalid(f"{what} is not PEM certificates: {exc}") from exc
    if len(certs) > MAX_CHAIN:
        raise CertificateInvalid(f"{what} has {len(certs)} certificates, more than {MAX_CHAIN}")
    return certs


def _der_utf8(value: bytes) -> str:
    """The string inside a DER UTF8String (Fulcio v2 extensions)."""
    if len(value) < 2 or value[0] != 0x0C:
        raise CertificateInvalid("a Fulcio v2 extension is not a DER UTF8String")
    length = value[1]
    offset = 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or len(value) < 2 + n:
            raise CertificateInvalid("a Fulcio v2 extension has a malformed length")
        length = int.from_bytes(value[2 : 2 + n], "big")
        offset = 2 + n
    if len(value) != offset + length:
        raise CertificateInvalid("a Fulcio v2 extension has trailing or missing bytes")
    try:
        return value[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CertificateInvalid("a Fulcio v2 extension is not UTF-8") from exc


def identity_of(cert: x509.Certificate) -> Identity:
    """The OIDC issuer and SAN identities of a Fulcio certificate."""
    v1 = v2 = None
    fulcio: list[tuple[str, bytes]] = []
    for ext in cert.extensions:
        if ext.oid.dotted_string.startswith("1.3.6.1.4.1.57264.1.") and isinstance(ext.value, x509.UnrecognizedExtension):
            fulcio.append((ext.oid.dotted_string, ext.value.value))
        if ext.oid == OID_ISSUER_V1:
            try:
                v1 = ext.value.value.decode("utf-8")  # type: ignore[attr-defined]
            except UnicodeDecodeError as exc:
                raise CertificateInvalid("the Fulcio issuer (v1) extension is not UTF-8") from exc
        elif ext.oid == OID_ISSUER_V2:
            v2 = _der_utf8(ext.value.value)  # type: ignore[attr-defined]
    if v1 is not None and v2 is not None and v1 != v2:
        raise CertificateInvalid(
            f"the certificate names two different OIDC issuers: v1 {v1!r} and v2 {v2!r}",
            hint="a Fulcio certificate carries one issuer; this one is ambiguous and refused",
        )
    issuer = v2 if v2 is not None else v1
    if not issuer:
        raise CertificateInvalid("the certificate carries no Fulcio OIDC issuer extension (1.3.6.1.4.1.57264.1.1 or .8)")
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise CertificateInvalid("the certificate has no SubjectAlternativeName identity") from exc
    sans.extend(san.get_values_for_type(x509.RFC822Name))
    sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OID_OTHERNAME_SAN:
            sans.append(_der_utf8(other.value))
    if not sans:
        raise CertificateInvalid("the certificate's SubjectAlternativeName has no email, URI or Fulcio username")
    return Identity(issuer=issuer, sans=tuple(sans), extensions=tuple(fulcio))


@functools.lru_cache(maxsize=256)
def compile_regexp(pattern: str):  # type: ignore[no-untyped-def]
    """RE2 (Go regexp syntax, linear time): never Python ``re``, so no pattern can hang us."""
    import re2

    try:
        return re2.compile(pattern)
    except Exception as exc:  # noqa: BLE001 - re2 raises its own error type
        raise IdentityMismatch(f"the regexp {pattern!r} is not valid RE2: {exc}") from exc


def matches(value: str, exact: str, regexp: str) -> bool:
    """Exact equality, or an RE2 match of the **whole** value (stricter than cosign)."""
    if regexp:
        return compile_regexp(regexp).fullmatch(value) is not None
    return value == exact


def _raw_string(value: bytes) -> str:
    """A deprecated Fulcio extension (``….1.1``–``….1.6``): the raw UTF-8 string, no DER."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CertificateInvalid("a deprecated Fulcio extension is not a UTF-8 string") from exc


def extension_problem(identity: Identity, authority: KeylessAuthority) -> str | None:
    """None when every extension value the authority pins is in the certificate; else what is
    wrong, in words. Exact comparison. The pin's own extension must be present (the deprecated
    raw one for ``githubWorkflow*``, as cosign; the DER one otherwise), and every extension
    present that carries the claim (a deprecated one and its DER successor) must hold the value."""
    for key, expected in authority.extensions:
        raw_oid, der_oid = EXTENSION_KEYS[key]
        found: list[tuple[str, str]] = []
        for oid, decode in ((raw_oid, _raw_string), (der_oid, _der_utf8)):
            if oid is None:
                continue
            value = identity.extension(oid)
            if value is None:
                continue
            try:
                found.append((oid.dotted_string, decode(value)))
            except CertificateInvalid as exc:
                return f"{key}: extension {oid.dotted_string} is malformed ({exc.detail})"
        primary = raw_oid or der_oid
        assert primary is not None
        if not any(o == primary.dotted_string for o, _v in found):
            # cosign reads the deprecated GitHub extension for --certificate-github-workflow-*:
            # its successor alone (e.g. a GitLab certificate's Source Repository Ref) is not it
            return f"{key}: the certificate has no extension {primary.dotted_string}"
        for oid_text, value in found:
            if value != expected:
                return f"{key}: expected {expected!r}, the certificate's extension {oid_text} has {value!r}"
    return None


def match_authority(identity: Identity, authority: KeylessAuthority) -> str | None:
    """The SAN that satisfies ``authority`` (issuer, identity, and every pinned extension), or None."""
    if not (authority.issuer or authority.issuer_regexp) or not (authority.subject or authority.subject_regexp):
        return None  # an authority that constrains nothing admits nobody
    if not matches(identity.issuer, authority.issuer, authority.issuer_regexp):
        return None
    san = next((s for s in identity.sans if matches(s, authority.subject, authority.subject_regexp)), None)
    if san is None or extension_problem(identity, authority) is not None:
        return None
    return san


def describe_mismatch(identity: Identity, authorities: tuple[KeylessAuthority, ...]) -> str:
    def one(a: KeylessAuthority) -> str:
        text = f"{a.name}: issuer {a.issuer or 're:' + a.issuer_regexp!s} subject {a.subject or 're:' + a.subject_regexp!s}"
        if a.extensions:
            problem = extension_problem(identity, a)
            text += f" and {len(a.extensions)} pinned extension(s)" + (f" ({problem})" if problem else "")
        return text

    wanted = "; ".join(one(a) for a in authorities)
    return f"certificate issuer {identity.issuer!r} and identity {', '.join(repr(s) for s in identity.sans)} match no keyless authority ({wanted})"


def verify_chain(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], root: TrustedRootMaterial, at: datetime
) -> list[x509.Certificate]:
    """The chain (issuer first, root last) from ``leaf`` to a Fulcio CA valid at ``at``."""
    cas = root.fulcio_cas_at(at)
    if not cas:
        raise CertificateInvalid(
            f"no Fulcio certificate authority in the trust root is valid at {at.isoformat()}",
            hint="check certificateAuthorities[].validFor in the trusted root",
        )
    anchors = [c for ca in cas for c in ca.certificates]
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(leaf, intermediates).chain[1:]
    except (X509VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
        expired = not (leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc)
        if expired:
            raise CertificateInvalid(
                f"the signing certificate was not valid at the verified time {at.isoformat()} "
                f"(valid {leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()})",
                hint="the log entry was made outside the certificate's lifetime",
            ) from exc
        raise CertificateInvalid(
            f"the signing certificate (issuer {leaf.issuer.rfc4514_string()!r}) does not chain to a trusted Fulcio CA: {exc}",
            hint="configure the Fulcio root that issued it (trustedRootPem or bundlePath)",
        ) from exc
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateInvalid(f"the signing certificate lacks {exc.oid.dotted_string}: not a code-signing certificate") from exc
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateInvalid("the signing certificate is not for digitalSignature with the codeSigning extended key usage")
    return chain


def verify_sct(leaf: x509.Certificate, issuer: x509.Certificate, root: TrustedRootMaterial) -> None:
    """At least one embedded SCT verifies with a trusted CT log key (RFC 6962 §3.2)."""
    try:
        scts = leaf.extensions.get_extension_for_oid(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS).value
    except x509.ExtensionNotFound as exc:
        raise SctInvalid(
            "the signing certificate carries no embedded SCT", hint="Fulcio embeds one; a certificate without it was not logged"
        ) from exc
    except ValueError as exc:
        raise SctInvalid(f"the certificate's SCT list cannot be parsed: {exc}") from exc
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    problems = []
    for sct in scts:
        log = root.ctlog_key(sct.log_id)
        if log is None:
            problems.append(f"SCT from unknown CT log {sct.log_id.hex()}")
            continue
        when = _aware(sct.timestamp)
        if not log.valid_for.contains(when):
            problems.append(f"CT log {sct.log_id.hex()} was not valid at the SCT time {when.isoformat()}")
            continue
        ext = sct.extension_bytes
        millis = (when - _EPOCH) // timedelta(milliseconds=1)
        signed = (
            struct.pack(">BBQH", 0, 0, millis, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack(">H", len(ext))
            + ext
        )
        if keys.verify_signature(log.public_key, signed, sct.signature):
            return
        problems.append(f"SCT signature by CT log {sct.log_id.hex()} does not verify")
    raise SctInvalid(
        "no embedded SCT verifies: " + "; ".join(problems or ["the SCT list is empty"]),
        hint="add the CT log's key (ctlogs in trusted_root.json, or ctlogPublicKey)",
    )


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
