"""One candidate attestation → :class:`AttestationResult`, against a :class:`TrustConfig`.

:func:`verify_candidate` never raises for a verification failure: it returns
``verified=False`` with the reason. The order of checks (``docs/verification.md``):

1. parse: a DSSE envelope (``kind dsse``) or a sigstore bundle holding one (``kind bundle``);
   duplicate JSON keys anywhere are refused                  → MALFORMED_ENVELOPE
2. payloadType is ``application/vnd.in-toto+json``           → PAYLOAD_TYPE_INVALID
3. signatures: every signature against every authority — key authorities by the key type's
   algorithm over PAE; keyless authorities through the certificate carried with the envelope:
   its key signs PAE (SIGNATURE_INVALID); then what needs no time: the chain reaches a
   configured Fulcio CA at the certificate's own start (CERTIFICATE_INVALID), an embedded SCT
   verifies (SCT_INVALID), the SAN identity and OIDC issuer match an authority, exactly or by a
   whole-value RE2 match (IDENTITY_MISMATCH; UNTRUSTED_SIGNER when no keyless authority is
   configured; the SCT may be waived per authority, ``insecureIgnoreSct``; pinned Fulcio
   extensions must match exactly). No signer → the most specific of those reasons. Every RFC
   3161 timestamp — a cosign annotation on a ``.att`` layer, any bundle's — is verified when
   timestamp authorities are configured (TIMESTAMP_INVALID; ignored otherwise, as cosign without
   --timestamp-certificate-chain); it must cover the envelope or a signature that verified — a
   certificate's signatures count only once its chain, SCT and identity passed. A sigstore
   bundle's envelope carries exactly one signature (MALFORMED_ENVELOPE).
4. statement: strict in-toto Statement v0.1/v1              → MALFORMED_STATEMENT
5. subject: some subject digest equals the image digest      → SUBJECT_MISMATCH
   Only then the keyless time (nothing is asked of Rekor for an attestation of another image):
   log entries (attached, or found by the online lookup) whose integrated time the chain is
   valid at (TLOG_MISSING / CERTIFICATE_INVALID); every verified timestamp must lie inside the
   certificate's validity (TIMESTAMP_INVALID); timestamps replace a keyless log entry the
   attestation lacks only with ``requireTlog: false`` and ``useSignedTimestamps`` on the
   authority or ``keylessTimestampWithoutTlog: true``. A failure drops the keyless signer; a transient
   one (Rekor unreachable, TUF mirror down) is raised even when a key signer verified.
6. transparency log: SET, inclusion proof + checkpoint when present, entry bound to this
   envelope and to *one* signer (TLOG_INVALID / TLOG_MISSING): each signer needs an entry that
   records it — a key signer its key (or a certificate holding that key), a keyless signer its
   certificate; every entry is tried, the first that passes counts. A signer without one is
   dropped (keyless always; key signers under ``requireTlog``); no signer left → the failure.
   With ``attestation.tlogLookup`` on (never offline), a required entry that is not attached is
   searched in Rekor as cosign does and then checked like an attached one (inclusion proof
   required); Rekor unreachable → ``TLOG_UNREACHABLE``, raised (transient), not a verdict.
   Sigstore bundles with a certificate are also verified by sigstore-python, on a copy holding
   only the keyless signer's accepted entry (a Rekor v2 entry is verified only by it).
7. predicate type from the signed statement; predicate summary; ``created``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from .. import dsse
from ..candidate import KIND_BUNDLE, KIND_DSSE, Candidate
from ..errors import StellaError, VerificationError
from ..predicates import inline_predicate, signed_time
from ..trust import TrustConfig
from ..verdict import AttestationResult, ErrorItem, Signer, TimestampResult, TlogResult
from . import keys

_log = logging.getLogger(__name__)

BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)


class SignatureInvalid(VerificationError):
    reason = "SIGNATURE_INVALID"


@dataclass
class _Material:
    """What a candidate carries: the envelope and whatever proves who signed it and when."""

    envelope: dsse.Envelope
    envelope_bytes: bytes | None  # exact uploaded bytes (legacy layer / plain DSSE) or None (bundle)
    certificate: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)
    tlog_entries: list[Any] = field(default_factory=list)  # tlog.LogEntry, unverified
    tlog_error: StellaError | None = None  # an entry was present but could not be parsed
    tlog_raw: list[Any] = field(default_factory=list)  # a bundle's tlogEntries[] items, aligned with tlog_entries
    bundle_json: bytes | None = None
    envelope_digest: str = ""
    require_proof: bool = False  # sigstore bundles v0.2+ must carry inclusion proofs
    has_timestamps: bool = False  # the bundle carries RFC 3161 timestamps
    tlog_looked_up: bool = False  # tlog_entries came from the online Rekor lookup, not the candidate
    lookup_query: tuple[Any, bytes, list[bytes]] | None = None  # (settings, envelope bytes, verifiers) of that lookup
    timestamp_annotation: str = ""  # cosign's dev.sigstore.cosign/rfc3161timestamp (legacy layer), unverified
    bundle_timestamps: list[Any] = field(default_factory=list)  # timestampVerificationData.rfc3161Timestamps, unverified


# JSON values (objects, arrays, list items outside strings) a sigstore bundle may hold before it
# is parsed: a real one holds a few hundred at most (10 certificates, 8 log entries with their
# inclusion proofs' hashes, timestamps); megabytes of `{}` would take seconds to parse strictly
BUNDLE_MAX_VALUES = 8192


def _parse_bundle(data: bytes) -> _Material:
    values = dsse.values_outside_strings(bytes(data), BUNDLE_MAX_VALUES)
    if values > BUNDLE_MAX_VALUES:
        raise dsse.MalformedEnvelope(
            f"the sigstore bundle holds about {values} JSON values (objects, arrays, list items), more than {BUNDLE_MAX_VALUES}",
            reason="LIMIT_EXCEEDED",
            hint="this is not a sigstore bundle; re-import the attestation as cosign wrote it",
        )
    doc = dsse.strict_json(data, what="sigstore bundle", error=dsse.MalformedEnvelope)
    if not isinstance(doc, dict):
        raise dsse.MalformedEnvelope("a sigstore bundle must be a JSON object")
    media_type = doc.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise dsse.MalformedEnvelope(f"bundle mediaType is {media_type!r}, expected one of {list(BUNDLE_MEDIA_TYPES)}")
    if "dsseEnvelope" not in doc:
        raise dsse.MalformedEnvelope(
            "the sigstore bundle holds no dsseEnvelope (a messageSignature bundle signs a blob, not an attestation)"
        )
    envelope = dsse.parse_envelope_obj(doc["dsseEnvelope"])
    if len(envelope.signatures) != 1:
        # the bundle spec (sigstore-go: invalid signature count; sigstore-python refuses it too):
        # a bundle binds one signature to its one verification material
        raise dsse.MalformedEnvelope(
            f"a sigstore bundle's DSSE envelope must carry exactly one signature, this one carries {len(envelope.signatures)}",
            hint="a bundle holds one signature and its verification material; sign each signer's bundle separately",
        )
    # Digest of the envelope as cosign v3 serialises it (= its legacy layer bytes), so that
    # copies of one attestation found as a bundle and as a .att layer are recognised.
    envelope_digest = envelope.canonical_digest()
    material = _Material(
        envelope=envelope,
        envelope_bytes=None,
        bundle_json=bytes(data),
        envelope_digest=envelope_digest,
        require_proof=media_type != BUNDLE_MEDIA_TYPES[0],
    )
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise dsse.MalformedEnvelope("the sigstore bundle has no verificationMaterial")
    from cryptography.x509 import load_der_x509_certificate

    def der_cert(item: Any, what: str) -> x509.Certificate:
        raw = item.get("rawBytes") if isinstance(item, dict) else None
        try:
            return load_der_x509_certificate(base64.b64decode(raw or "", validate=True))
        except (ValueError, TypeError) as exc:
            raise dsse.MalformedEnvelope(f"bundle {what} is not a DER certificate") from exc

    if isinstance(vm.get("certificate"), dict):
        material.certificate = der_cert(vm["certificate"], "verificationMaterial.certificate")
    elif isinstance(vm.get("x509CertificateChain"), dict):
        certs = vm["x509CertificateChain"].get("certificates") or []
        if not isinstance(certs, list) or not certs or len(certs) > 10:
            raise dsse.MalformedEnvelope("bundle x509CertificateChain.certificates must list 1 to 10 certificates")
        parsed = [der_cert(c, "x509CertificateChain certificate") for c in certs]
        material.certificate, material.chain = parsed[0], parsed[1:]
    tvd = vm.get("timestampVerificationData")
    material.has_timestamps = isinstance(tvd, dict) and bool(tvd.get("rfc3161Timestamps"))
    if material.has_timestamps:
        stamps = tvd["rfc3161Timestamps"]  # type: ignore[index]
        material.bundle_timestamps = list(stamps) if isinstance(stamps, list) else [stamps]
    entries = vm.get("tlogEntries") or []
    if not isinstance(entries, list) or len(entries) > 8:
        raise dsse.MalformedEnvelope("bundle tlogEntries must be a list of at most 8 entries")
    from . import tlog

    for e in entries:
        try:
            material.tlog_entries.append(tlog.parse_bundle_entry(e))
            material.tlog_raw.append(e)
        except StellaError as exc:
            material.tlog_error = exc
    return material


def _parse(candidate: Candidate) -> _Material:
    if candidate.kind == KIND_BUNDLE:
        return _parse_bundle(candidate.data)
    if candidate.kind != KIND_DSSE:
        raise dsse.MalformedEnvelope(f"unknown candidate kind {candidate.kind!r}, expected dsse or bundle")
    envelope = dsse.parse_envelope(candidate.data)
    # identity of the attestation: its canonical (cosign v3) serialisation, so a v2-style copy with
    # `keyid: ""` on the .att tag and its bundle copy count once; Rekor still binds the exact bytes
    material = _Material(envelope=envelope, envelope_bytes=bytes(candidate.data), envelope_digest=envelope.canonical_digest())
    ann = candidate.cosign
    material.timestamp_annotation = ann.rfc3161_timestamp
    if ann.certificate:
        from . import keyless

        certs = keyless.load_pem_chain(ann.certificate, "the dev.sigstore.cosign/certificate annotation")
        if len(certs) != 1:
            raise keyless.CertificateInvalid("the dev.sigstore.cosign/certificate annotation must hold exactly one certificate")
        material.certificate = certs[0]
        material.chain = keyless.load_pem_chain(ann.chain or "", "the dev.sigstore.cosign/chain annotation")
    if ann.rekor_bundle:
        from . import tlog

        try:
            material.tlog_entries.append(tlog.parse_cosign_bundle(ann.rekor_bundle))
        except StellaError as exc:
            material.tlog_error = exc
    return material


def _roots(trust: TrustConfig, what: str):  # type: ignore[no-untyped-def]
    """The trust material, or None when none is configured. A configured root that cannot be
    loaded (bad document, TUF unreachable) raises its own error, so the verdict says so."""
    from . import trustroot

    if trust.sigstore is None:
        return None
    return trustroot.from_roots(trust.sigstore)


@dataclass
class _KeySigner:
    """A key authority whose key verified a signature, and the verifiers a log entry may record
    for it: the key's SPKI DER, and the attached certificate's DER only when that certificate
    holds this very key (never a certificate that merely came along)."""

    signer: Signer
    ders: list[bytes]
    sigs: list[bytes] = field(default_factory=list)  # the envelope signatures this key made
    use_signed_timestamps: bool = False


@dataclass
class _Signers:
    key_signed: list[_KeySigner] = field(default_factory=list)
    keyless: list[Signer] = field(default_factory=list)  # keyless signers (time-free checks passed, then dated)
    cert_der: bytes = b""
    cert_sigs: list[bytes] = field(default_factory=list)  # signatures the certificate's key made
    keyless_error: StellaError | None = None
    deferred: bool = False  # chain/SCT/time/log left to sigstore-python (Rekor v2 bundle)
    timestamp: Any = None  # the first verified timestamp (timestamp.VerifiedTimestamp)
    timestamps: list[Any] = field(default_factory=list)  # every verified timestamp, for the verdict
    keyless_timestamped: bool = False  # the certificate was checked at a verified timestamp's time
    stamp_dated: bool = False  # no log entry: verified timestamps date the keyless signer (explicit opt-in)
    keyless_entries: list[Any] = field(default_factory=list)  # entries at whose integrated time the certificate is valid
    keyless_entry: Any = None  # the log entry accepted for the keyless signer (tlog.LogEntry)

    @property
    def keyless_used(self) -> bool:
        return bool(self.keyless)

    @property
    def signers(self) -> list[Signer]:
        return [k.signer for k in self.key_signed] + self.keyless

    def drop_keyless(self, exc: StellaError) -> None:
        self.keyless_error, self.keyless = exc, []
        self.deferred, self.keyless_entries, self.keyless_timestamped, self.stamp_dated = False, [], False, False


_MAX_TIMESTAMPS = 8


def _our_timestamps(m: _Material) -> bool:
    """Timestamps this module verifies: all of them — a legacy layer's annotation, and those of
    every sigstore bundle, key- or certificate-signed, whatever its log entry (issue 17: they
    were left to sigstore-python for certificate-signed bundles, which it sees only for dsse and
    Rekor v2 entries). sigstore-python still checks them again where it runs."""
    return bool(m.timestamp_annotation) or bool(m.bundle_timestamps)


def _verify_timestamps(m: _Material, trust: TrustConfig, signatures: list[bytes]) -> list[Any]:
    """The attestation's RFC 3161 timestamps, each verified over the exact envelope bytes (legacy
    layers only) or one of ``signatures`` (raw bytes of signatures that verified); all must
    verify. Empty when there are none, or when no timestamp authority is configured (cosign
    ignores them unless given a TSA chain or told to use signed timestamps)."""
    if not _our_timestamps(m) or not signatures:
        return []
    root = _roots(trust, "timestamp")
    if root is None or not root.tsas:
        _log.info("RFC 3161 timestamps ignored: no timestamp authority is configured")
        return []
    from . import timestamp

    tokens: list[bytes] = []
    if m.timestamp_annotation:
        tokens.append(timestamp.parse_annotation(m.timestamp_annotation))
    else:
        if len(m.bundle_timestamps) > _MAX_TIMESTAMPS:
            raise timestamp.TimestampInvalid(f"the bundle carries {len(m.bundle_timestamps)} RFC 3161 timestamps, more than {_MAX_TIMESTAMPS}")
        for item in m.bundle_timestamps:
            raw = item.get("signedTimestamp") if isinstance(item, dict) else None
            try:
                tokens.append(base64.b64decode(raw if isinstance(raw, str) else "", validate=True))
            except (ValueError, TypeError) as exc:
                raise timestamp.TimestampInvalid("a bundle rfc3161Timestamps[].signedTimestamp is not base64") from exc
    return [timestamp.verify(der, envelope=m.envelope_bytes, signatures=signatures, authorities=root.tsas) for der in tokens]


def _keyless_stamp_allowed(trust: TrustConfig) -> bool:
    """A verified RFC 3161 timestamp may replace the log entry of *every* keyless signer only when
    the log is not required *and* the explicit ``keylessTimestampWithoutTlog`` opt-in is set (the
    CLI sets it with ``--insecure-ignore-tlog``, as cosign accepts a TSA there)."""
    return not trust.require_tlog and trust.keyless_timestamp_without_tlog


def _stamp_only_authorities(trust: TrustConfig) -> set[str]:
    """The keyless authorities whose signers a verified timestamp may date without a log entry:
    all with the global opt-in, else those with ``useSignedTimestamps`` (never under requireTlog)."""
    if _keyless_stamp_allowed(trust):
        return {a.name for a in trust.keyless_authorities}
    if trust.require_tlog:
        return set()
    return {a.name for a in trust.keyless_authorities if a.use_signed_timestamps}


def _cert_stamps(result: _Signers) -> list[Any]:
    """The verified timestamps that date the certificate: over the exact envelope bytes, or over
    a signature the certificate's key made."""
    return [t for t in result.timestamps if t.covers == "envelope" or t.message in result.cert_sigs]


def _check_stamps_in_validity(m: _Material, root: Any, stamps: list[Any]) -> None:
    """Every timestamp that dates the certificate lies inside its validity, and the chain (with
    the CA's ``validFor``) is valid then; otherwise the signature was not made while the
    certificate was valid → TIMESTAMP_INVALID (fails closed, as cosign and sigstore-python)."""
    from . import keyless
    from .timestamp import TimestampInvalid

    cert = m.certificate
    assert cert is not None
    for t in stamps:
        if not (cert.not_valid_before_utc <= t.time <= cert.not_valid_after_utc):
            raise TimestampInvalid(
                f"the RFC 3161 timestamp of {t.time.isoformat()} (authority {t.authority}) lies outside the signing "
                f"certificate's validity ({cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})",
                hint="the signature was timestamped when its certificate was expired or not yet valid: it cannot be dated inside its lifetime",
            )
        try:
            keyless.verify_chain(cert, m.chain, root, t.time)
        except keyless.CertificateInvalid as exc:
            raise TimestampInvalid(f"at the time of the RFC 3161 timestamp ({t.time.isoformat()}): {exc.detail}", hint=exc.hint) from exc


def _no_log_hint(m: _Material, trust: TrustConfig, stamps: list[Any]) -> str:
    """Why a verified timestamp did not stand in for the missing log entry, in the user's terms."""
    if stamps:
        return (
            "a verified RFC 3161 timestamp replaces the log entry only by explicit configuration: requireTlog: false "
            "with the authority's keyless.useSignedTimestamps: true (or attestation.keylessTimestampWithoutTlog: true); "
            "on the command line --insecure-ignore-tlog --use-signed-timestamps"
            + ("; requireTlog is true here" if trust.require_tlog else "")
        )
    if m.bundle_timestamps or m.timestamp_annotation:
        return (
            "its RFC 3161 timestamps were not verified because no timestamp authority is configured: add the TSA "
            "(timestampAuthorities in the trusted root, tsaCertChain, or --timestamp-certificate-chain)"
        )
    return "keyless attestations must be uploaded to Rekor (cosign does so by default); this one carries neither a log entry nor an RFC 3161 timestamp"


def _keyless_signers(cert: x509.Certificate, trust: TrustConfig) -> list[Signer]:
    """The keyless authorities the certificate's identity satisfies (raises when none)."""
    from . import keyless

    identity = keyless.identity_of(cert)
    authorities = trust.keyless_authorities
    if not authorities:
        raise keyless.UntrustedSigner(
            f"signed by certificate identity {', '.join(identity.sans)} (issuer {identity.issuer}), "
            "but no keyless authority is configured",
            hint="add a keyless authority (issuer + subject or subjectRegExp) for this signer",
        )
    out: list[Signer] = []
    for authority in authorities:
        san = keyless.match_authority(identity, authority)
        if san is not None:
            out.append(Signer(kind="keyless", authority=authority.name, issuer=identity.issuer, subject=san))
    if not out:
        raise keyless.IdentityMismatch(
            keyless.describe_mismatch(identity, authorities),
            hint="regexps must match the whole value (anchors are implied); check the issuer and the identity",
        )
    return out


def _check_keyless(m: _Material, trust: TrustConfig, result: _Signers) -> None:
    """The certificate's checks that need no time of signing, as cosign orders them: its key
    signed the envelope, the chain reaches a configured Fulcio CA at the certificate's own start
    of validity, the SCT, the identity. Fills ``result.keyless`` or sets ``keyless_error``; the
    time of signing (log entries, the online lookup, timestamps) is :func:`_date_keyless`'s, after
    the statement and subject checks. Transient errors (a TUF mirror) are raised, never swallowed."""
    from . import keyless

    cert = m.certificate
    assert cert is not None
    try:
        cert_key = cert.public_key()
        pae = m.envelope.pae
        cert_sigs = [s.sig for s in m.envelope.signatures if keys.verify_signature(cert_key, pae, s.sig)]  # type: ignore[arg-type]
        if not cert_sigs:
            raise SignatureInvalid(
                "no signature on the envelope verifies with the key of the attached certificate",
                hint="the payload or signature was altered after signing",
            )
        root = _roots(trust, "keyless")
        if root is None or not root.fulcio:
            raise keyless.CertificateInvalid(
                "no Fulcio certificate authority is configured, so no certificate can be trusted",
                hint="configure attestation.trustRoots (bundlePath or sigstore.trustedRootPem)",
            )
        chain = keyless.verify_chain(cert, m.chain, root, cert.not_valid_before_utc)
        sct_error: StellaError | None = None
        try:
            keyless.verify_sct(cert, chain[0] if chain else cert, root)
        except keyless.SctInvalid as exc:
            if not any(a.insecure_ignore_sct for a in trust.keyless_authorities):
                raise
            sct_error = exc  # waived only for the authorities that say insecureIgnoreSct
        matched = _keyless_signers(cert, trust)
        if sct_error is not None:
            waived = {a.name for a in trust.keyless_authorities if a.insecure_ignore_sct}
            matched = [s for s in matched if s.authority in waived]
            if not matched:
                raise sct_error
        result.keyless = matched
        result.cert_sigs = cert_sigs
        result.cert_der = keyless.cert_der(cert)
    except StellaError as exc:
        if exc.transient:
            raise  # no verdict: the next call retries
        result.drop_keyless(exc)


def _date_keyless(m: _Material, trust: TrustConfig, result: _Signers) -> None:
    """The keyless signer's time of signing, after the statement and subject checks (so an
    attestation of another image never costs a Rekor lookup): the attached entries, or those the
    online lookup finds, and every verified timestamp; the certificate must be valid at each time
    used. A timestamp outside the certificate's validity is TIMESTAMP_INVALID and always raised
    (it fails closed). Other failures drop the keyless signer (raised when no signer is left);
    transient errors are raised."""
    from . import keyless
    from .timestamp import TimestampInvalid

    if not result.keyless:
        return
    cert = m.certificate
    assert cert is not None
    try:
        root = _roots(trust, "keyless")
        assert root is not None
        stamps = _cert_stamps(result)
        _check_stamps_in_validity(m, root, stamps)
        if stamps:
            result.keyless_timestamped = True
        # useSignedTimestamps: that authority's signer needs a verified timestamp (cosign
        # --use-signed-timestamps: a threshold of one)
        demand = {a.name for a in trust.keyless_authorities if a.use_signed_timestamps}
        if not stamps and any(s.authority in demand for s in result.keyless):
            kept = [s for s in result.keyless if s.authority not in demand]
            if not kept:
                why = (
                    "no timestamp authority is configured, so its timestamps were not verified"
                    if (m.bundle_timestamps or m.timestamp_annotation)
                    else "the attestation carries none"
                )
                raise TimestampInvalid(
                    f"authority {', '.join(sorted(s.authority for s in result.keyless))} needs a verified RFC 3161 timestamp over "
                    f"the signature (useSignedTimestamps), and {why}",
                    hint="configure the TSA (timestampAuthorities in the trusted root, tsaCertChain, --timestamp-certificate-chain)",
                )
            result.keyless = kept
        allowed = _stamp_only_authorities(trust)
        stamp_only = bool(stamps) and any(s.authority in allowed for s in result.keyless)
        if not m.tlog_entries and m.tlog_error is None and not stamp_only:
            # no entry attached: the online lookup (when on) may find it; its integrated time then
            # dates the certificate below, and _check_tlog verifies the entry (SET, inclusion proof,
            # bound to this envelope and certificate) before anything is accepted
            _look_up(m, trust, _lookup_verifiers(trust, result))
        if m.tlog_error is not None and not m.tlog_entries:
            raise m.tlog_error  # an attached entry that cannot be read is never ignored for keyless
        if not m.tlog_entries:
            from .tlog import TlogMissing

            if not stamp_only:
                raise TlogMissing(
                    "a keyless signature needs a transparency log entry to fix the time of signing, and none is attached"
                    + (" or found by the online Rekor lookup" if _lookup_settings(trust) is not None else "")
                    + (", and no verified RFC 3161 timestamp may replace it" if stamps else ""),
                    hint=_no_log_hint(m, trust, stamps),
                )
            # no log entry: the verified timestamps' times are the time of signing (cosign
            # --insecure-ignore-tlog --use-signed-timestamps; GitHub's own Sigstore instance)
            result.keyless = [s for s in result.keyless if s.authority in allowed]
            result.stamp_dated = True
        else:
            dated = [e for e in m.tlog_entries if e.integrated_time]
            if not dated:
                from .tlog import TlogMissing

                if not _rekor_v2_bundle(m):
                    raise TlogMissing(
                        "the log entry carries no integrated time and no RFC 3161 timestamp comes with it, "
                        "so the time of signing is not established",
                        hint="keyless attestations need a Rekor v1 entry (SET) or, with Rekor v2, a signed timestamp in a sigstore bundle",
                    )
                if not stamps:
                    raise TlogMissing(
                        "the Rekor v2 log entry has no integrated time and no verified RFC 3161 timestamp dates the certificate",
                        hint=_no_log_hint(m, trust, stamps),
                    )
                # A Rekor v2 bundle: its timestamps (verified above, the certificate valid at each)
                # date the signature; the entry's inclusion proof is sigstore-python's, its binding
                # ours (_check_tlog), both mandatory (verify_candidate).
                result.deferred = True
            else:
                # Each entry's time is authenticated by its SET in the tlog step, which tries these
                # entries in turn and accepts the first that verifies in full (as cosign tries every
                # entry Rekor returns); an entry at whose time the certificate was not valid is out.
                problems: list[StellaError] = []
                for entry in dated:
                    try:
                        keyless.verify_chain(cert, m.chain, root, entry.integrated_datetime)
                        result.keyless_entries.append(entry)
                    except StellaError as exc:
                        problems.append(exc)
                if not result.keyless_entries:
                    raise problems[0]
    except StellaError as exc:
        if exc.transient or exc.reason == "TIMESTAMP_INVALID":
            raise  # no verdict (Rekor, TUF); or a timestamp that fails: closed, even next to a key signer
        result.drop_keyless(exc)
        if not result.key_signed:
            raise


def _check_signatures(m: _Material, trust: TrustConfig) -> _Signers:
    result = _Signers()
    pae = m.envelope.pae
    verified_sigs: list[bytes] = []  # raw bytes of every signature that verified for a trusted signer
    cert_spki = keys.public_key_der(m.certificate.public_key()) if m.certificate is not None else b""  # type: ignore[arg-type]
    for authority in trust.key_authorities:
        good = [s.sig for s in m.envelope.signatures if keys.verify_signature(authority.public_key, pae, s.sig)]
        verified_sigs.extend(good)
        if good:
            der = keys.public_key_der(authority.public_key)
            ders = [der]
            if m.certificate is not None and cert_spki == der:
                from . import keyless

                ders.append(keyless.cert_der(m.certificate))  # cosign --key with a certificate logs the certificate
            signer = Signer(kind="key", authority=authority.name, key_id=authority.key_id)
            result.key_signed.append(_KeySigner(signer, ders, good, authority.use_signed_timestamps))
    if m.certificate is not None:
        _check_keyless(m, trust, result)
    if not result.signers:
        if result.keyless_error is not None and result.keyless_error.reason != "SIGNATURE_INVALID":
            raise result.keyless_error
        names = ", ".join(a.name for a in trust.authorities) or "none configured"
        sigs = len(m.envelope.signatures)
        raise SignatureInvalid(
            f"none of the envelope's {sigs} signature(s) verifies against a configured authority ({names})"
            + (" and its certificate does not verify either" if m.certificate is not None else ""),
            hint="sign with a configured key, or add the signer's public key / keyless identity as an authority",
        )
    if _our_timestamps(m):
        # a certificate's signatures count only once chain, SCT and identity passed: a timestamp
        # over a signature by an untrusted certificate covers no trusted signature and is refused
        verified_sigs.extend(result.cert_sigs)
        # TIMESTAMP_INVALID propagates: a timestamp that is there and checkable must verify
        result.timestamps = _verify_timestamps(m, trust, verified_sigs)
        result.timestamp = result.timestamps[0] if result.timestamps else None
    _require_key_stamps(m, result)
    return result


def _require_key_stamps(m: _Material, result: _Signers) -> None:
    """Key authorities with ``useSignedTimestamps`` (cosign ``--key … --use-signed-timestamps``)
    need a verified timestamp over their own signature (or the exact envelope bytes); a signer
    without one is dropped, and none left → TIMESTAMP_INVALID."""
    from .timestamp import TimestampInvalid

    demanding = [k for k in result.key_signed if k.use_signed_timestamps]
    if not demanding:
        return
    missing = [k for k in demanding if not any(t.covers == "envelope" or t.message in k.sigs for t in result.timestamps)]
    if not missing:
        return
    result.key_signed = [k for k in result.key_signed if k not in missing]
    if not result.signers:
        why = "no timestamp authority is configured, so its timestamps were not verified" if (m.bundle_timestamps or m.timestamp_annotation) else "the attestation carries none"
        raise TimestampInvalid(
            f"key authority {', '.join(k.signer.authority for k in missing)} needs a verified RFC 3161 timestamp over its "
            f"signature (useSignedTimestamps), and {why}",
            hint="configure the TSA (--timestamp-certificate-chain, tsaCertChain or timestampAuthorities in the trusted root)",
        )


def _keyless_needs_log(m: _Material, trust: TrustConfig, signers: _Signers) -> bool:
    """A keyless signer needs its log entry, unless an explicit opt-in (``useSignedTimestamps``
    on its authority, or ``keylessTimestampWithoutTlog``) let verified RFC 3161 timestamps fix
    its time of signing on an attestation that has no log entry."""
    return signers.keyless_used and not (signers.stamp_dated and not m.tlog_entries)


def _tlog_needed(m: _Material, trust: TrustConfig, signers: _Signers) -> bool:
    """requireTlog, or a keyless signer (see :func:`_keyless_needs_log`)."""
    return trust.require_tlog or _keyless_needs_log(m, trust, signers)


def _lookup_verifiers(trust: TrustConfig, signers: _Signers) -> list[bytes]:
    """The verifiers to search Rekor for: the keyless certificate, and with requireTlog each key
    signer's key (and its certificate), so that one search serves every signer that needs it."""
    out = [signers.cert_der] if signers.keyless_used else []
    if trust.require_tlog:
        out += [d for k in signers.key_signed for d in k.ders]
    return list(dict.fromkeys(out))


def _check_tlog(m: _Material, trust: TrustConfig, signers: _Signers) -> TlogResult:
    """Each signer needs its own entry: an entry counts for a signer only when it records that
    signer's key or certificate. Key signers without one are dropped under requireTlog (kept
    otherwise); a keyless signer without one is dropped (its time is unproven). No signer left →
    the first entry's failure. Returns the result of the first accepted entry (keyless first)."""
    from .tlog import TlogInvalid, TlogMissing, verify_entry

    needed = _tlog_needed(m, trust, signers)
    if not m.tlog_entries:
        if not needed:
            return TlogResult()
        if m.tlog_error is not None:
            raise m.tlog_error
        if not _look_up(m, trust, _lookup_verifiers(trust, signers)):
            looked = " or found by the online Rekor lookup" if _lookup_settings(trust) is not None else ""
            raise TlogMissing(
                f"no transparency log entry is attached to this attestation{looked}, and requireTlog is on",
                hint="upload it to Rekor, or set attestation.requireTlog: false (--insecure-ignore-tlog) for key signers",
            )
    # (verifiers, entries to try, needed, keep) per signer; keyless first
    groups: list[tuple[list[bytes], list[Any], bool, Any]] = []
    if signers.keyless_used and not signers.deferred:
        groups.append(([signers.cert_der], signers.keyless_entries, _keyless_needs_log(m, trust, signers), None))
    for k in signers.key_signed:
        groups.append((k.ders, m.tlog_entries, trust.require_tlog, k))
    errors: list[StellaError] = []
    root = None
    try:
        root = _roots(trust, "tlog")
    except StellaError as exc:
        if exc.transient:
            raise
        errors.append(exc)
    if root is not None and not root.rekor:
        root = None
        errors.append(TlogInvalid("no Rekor key is configured, so the log entry cannot be verified", hint="configure attestation.trustRoots"))
    first: TlogResult | None = None
    accepted: list[Any] = []
    kept_keys: list[_KeySigner] = []
    keyless_ok = signers.deferred  # a Rekor v2 entry: SET-less; its proof is sigstore-python's (verify_candidate)
    if signers.keyless_used and signers.deferred:
        # ...but that it records this envelope and this certificate is checked here too
        from .tlog import check_binding

        try:
            check_binding(m.tlog_entries[0], m.envelope, envelope_bytes=m.envelope_bytes, verifiers=[signers.cert_der])
        except StellaError as exc:
            errors.append(exc)
            keyless_ok = False
    for ders, entries, group_needed, key_signer in groups:
        ok: TlogResult | None = None
        for entry in entries if root is not None else []:
            try:
                ok = verify_entry(entry, root, m.envelope, envelope_bytes=m.envelope_bytes, verifiers=ders, require_proof=m.require_proof)
            except StellaError as exc:
                errors.append(exc)
                continue
            accepted.append(entry)
            if key_signer is None:
                signers.keyless_entry = entry
            break
        if ok is not None and first is None:
            first = ok
        if key_signer is None:
            keyless_ok = ok is not None or not group_needed
        elif ok is not None or not group_needed:
            kept_keys.append(key_signer)
        else:
            _log.info("key signer %s dropped: no verified log entry records its key", key_signer.signer.authority)
    if m.tlog_looked_up and m.lookup_query is not None and accepted:
        from . import rekor_lookup

        rekor_lookup.remember(*m.lookup_query, accepted)  # only verified entries are cached for long
    if not errors:
        errors.append(TlogMissing("no log entry of this attestation records a signer that verified"))
    if signers.keyless_used and not keyless_ok:
        signers.drop_keyless(errors[0])
    signers.key_signed = kept_keys
    if not signers.signers:
        raise errors[0]
    if first is None:
        if signers.deferred:
            entry = m.tlog_entries[0]  # verified=True only once sigstore-python passed it
            return TlogResult(log_index=entry.log_index, log_id=entry.log_id.hex())
        if m.tlog_entries:
            _log.info("tlog entry ignored (requireTlog false, key signer): %s", errors[0])
        return TlogResult()
    return replace(first, looked_up=m.tlog_looked_up)


def _lookup_settings(trust: TrustConfig) -> Any:
    """The online Rekor lookup settings, or None: off unless configured, and always off when
    the trust roots are offline (air-gapped)."""
    if trust.tlog_lookup is None or trust.sigstore is None or trust.sigstore.offline:
        return None
    return trust.tlog_lookup


def _look_up(m: _Material, trust: TrustConfig, verifier_ders: list[bytes]) -> bool:
    """Ask Rekor for this attestation's entry (``attestation.tlogLookup``) as logged with one of
    ``verifier_ders`` (the keys and certificate that verified); the entries found are untrusted
    and go through the same checks as attached ones, with an inclusion proof required. Raises
    ``TLOG_UNREACHABLE`` (transient) when Rekor cannot answer."""
    settings = _lookup_settings(trust)
    if settings is None or not verifier_ders or m.tlog_looked_up:
        return bool(m.tlog_looked_up and m.tlog_entries)
    from . import rekor_lookup

    # the exact bytes cosign uploaded (a legacy layer, an imported envelope); for a bundle,
    # cosign v3's serialisation of its envelope
    data = m.envelope_bytes if m.envelope_bytes is not None else m.envelope.to_bytes()
    found = rekor_lookup.search(settings, data, verifier_ders)
    if not found:
        return False
    m.tlog_entries, m.tlog_looked_up, m.require_proof = list(found), True, True
    m.lookup_query = (settings, data, list(verifier_ders))
    return True


_SIGSTORE_KINDS = (("dsse", "0.0.1"), ("hashedrekord", "0.0.2"))


def _sigstore_entry(m: _Material, signers: _Signers) -> Any:
    """The raw bundle entry sigstore-python must check again, or None: the entry accepted for the
    keyless signer when sigstore-python 4.x reads its kind — ``dsse`` 0.0.1 (Rekor v1) or
    ``hashedrekord`` 0.0.2 (Rekor v2, the deferred path); for ``intoto`` entries (older cosign,
    bundles v0.1/v0.2) our own checks are the only ones. Other entries in the bundle never turn
    this check off. A looked-up entry is not in the bundle: our checks of it stand."""
    if m.bundle_json is None or m.tlog_looked_up or not signers.keyless_used:
        return None
    entry = m.tlog_entries[0] if signers.deferred else signers.keyless_entry
    if entry is None or (entry.kind, entry.version) not in _SIGSTORE_KINDS:
        return None
    return next((raw for e, raw in zip(m.tlog_entries, m.tlog_raw, strict=True) if e is entry), None)


def _rekor_v2_bundle(m: _Material) -> bool:
    entry = m.tlog_entries[0]
    return m.bundle_json is not None and m.has_timestamps and (entry.kind, entry.version) == ("hashedrekord", "0.0.2")


def _check_with_sigstore(m: _Material, trust: TrustConfig, raw_entry: Any) -> None:
    """Second, independent check of a certificate-signed sigstore bundle with sigstore-python, on
    a copy of the bundle holding only ``raw_entry`` (the entry our checks accepted: sigstore-python
    4.5 refuses bundles with more than one entry)."""
    import json

    from . import sigstore_bridge

    root = _roots(trust, "sigstore")
    assert root is not None and m.bundle_json is not None
    doc = json.loads(m.bundle_json)  # already read strictly by _parse_bundle
    doc["verificationMaterial"]["tlogEntries"] = [raw_entry]
    sigstore_bridge.verify_bundle(json.dumps(doc).encode(), root, trust.keyless_authorities)


def _summary(predicate_type: str, predicate: Any) -> dict[str, Any]:
    try:
        from .. import predicates  # type: ignore[attr-defined]
    except ImportError:
        return {}
    summarize = getattr(predicates, "summarize", None)
    if summarize is None:
        return {}
    try:
        out = summarize(predicate_type, predicate)
    except StellaError:
        raise
    except Exception as exc:  # noqa: BLE001 - a predicate that breaks the summariser is refused
        raise VerificationError(
            f"the {predicate_type} predicate cannot be summarised: {type(exc).__name__}: {exc}", reason="PREDICATE_INVALID"
        ) from exc
    return dict(out) if isinstance(out, dict) else {}


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_ANNOTATED_TYPES = ("predicateType", "dev.sigstore.bundle.predicateType", "dev.stellaops/predicate-type")

# An attestation refused before its statement was read (no trusted signature, ...) has its
# payload parsed for the type it claims only up to this size: a large envelope signed by nobody
# never costs a parse of its payload (issue 16 item 8); its claim then comes from annotations.
CLAIM_PARSE_BYTES = 16 * 1024


def _claimed_predicate_type(candidate: Candidate, material: _Material | None, *, statement_read: bool) -> str:
    """The predicate type an attestation that failed verification *claims* (its unsigned
    statement, else its annotations), so that denials can name the real cause. Never trusted:
    it is reported only with ``verified: false``. Nothing is parsed again: the envelope is the
    one already parsed (``material``; None when it did not parse), and its payload is read only
    when verification did not already try (``statement_read``) and it is at most
    ``CLAIM_PARSE_BYTES``."""
    if material is not None and not statement_read and len(material.envelope.payload) <= CLAIM_PARSE_BYTES:
        try:
            return dsse.parse_statement(material.envelope.payload).predicate_type
        except Exception:  # noqa: BLE001 - best effort on data already known to be bad
            pass
    for key in _ANNOTATED_TYPES:
        value = candidate.annotations.get(key, "")
        if isinstance(value, str) and value:
            return value
    return ""


def _bytes_digest(candidate: Candidate) -> str:
    """The digest a candidate that did not parse is named by: of its bytes."""
    return "sha256:" + hashlib.sha256(candidate.data).hexdigest()


def verify_candidate(
    candidate: Candidate, image_digest: str, trust: TrustConfig, *, now: float | None = None
) -> AttestationResult:
    """Verify one candidate for ``image_digest``. Never raises for a verification failure; raises
    transient errors (``TLOG_UNREACHABLE`` when the online Rekor lookup cannot reach Rekor,
    ``TRUST_ROOT_UNAVAILABLE`` when a TUF mirror cannot be read), which are not verdicts."""
    envelope_digest = ""  # the parsed envelope's (cosign v3 serialisation); else of the bytes
    predicate_type = ""
    signers: tuple[Signer, ...] = ()
    tlog_result = TlogResult(required=trust.require_tlog)
    m: _Material | None = None
    statement_read = False  # the payload was handed to the statement parser (never twice)
    try:
        m = _parse(candidate)
        # until the signers are known: a certificate-signed attestation needs the log as keyless
        # (unless the timestamp opt-in may stand in for an entry it lacks); the verdict says so
        # even when it fails before the log step
        keyless_needs = m.certificate is not None and not (_stamp_only_authorities(trust) and not m.tlog_entries)
        tlog_result = TlogResult(required=trust.require_tlog or keyless_needs)
        envelope_digest = m.envelope_digest or envelope_digest
        dsse.require_intoto(m.envelope)
        found = _check_signatures(m, trust)  # over PAE: no payload is parsed before a trusted signature
        statement_read = True
        statement = dsse.parse_statement(m.envelope.payload)
        predicate_type = statement.predicate_type
        dsse.require_subject(statement, image_digest)
        # only now anything that may ask Rekor: an attestation of another image never does
        _date_keyless(m, trust, found)
        required = _tlog_needed(m, trust, found)
        tlog_result = replace(_check_tlog(m, trust, found), required=required)
        raw_entry = _sigstore_entry(m, found)
        if raw_entry is not None:
            _check_with_sigstore(m, trust, raw_entry)
            if found.deferred:  # the Rekor v2 entry is verified now, by sigstore-python
                entry = m.tlog_entries[0]
                tlog_result = TlogResult(verified=True, log_index=entry.log_index, log_id=entry.log_id.hex(), required=required)
        elif found.deferred:
            raise VerificationError("the Rekor v2 log entry of this bundle cannot be checked", reason="TLOG_INVALID")
        signers = tuple(found.signers)
        summary = _summary(statement.predicate_type, statement.predicate)
    except StellaError as exc:
        if exc.transient:
            raise  # no verdict (Rekor lookup, TUF mirror, deadline): nothing is cached, the next call retries
        envelope_digest = envelope_digest or _bytes_digest(candidate)
        return AttestationResult(
            predicate_type=predicate_type or _claimed_predicate_type(candidate, m, statement_read=statement_read),
            verified=False,
            source=candidate.source,
            digest=image_digest,
            signers=(),
            tlog=tlog_result,
            created=candidate.created,
            created_signed=False,
            annotations=dict(candidate.annotations),
            errors=(ErrorItem.from_error(exc),),
            envelope_digest=envelope_digest,
        )
    except Exception as exc:  # noqa: BLE001 - fail closed on anything unexpected
        envelope_digest = envelope_digest or _bytes_digest(candidate)
        _log.exception("unexpected error verifying %s", candidate.location or envelope_digest)
        return AttestationResult(
            predicate_type=predicate_type,
            verified=False,
            source=candidate.source,
            digest=image_digest,
            tlog=TlogResult(required=tlog_result.required),
            created=candidate.created,
            annotations=dict(candidate.annotations),
            errors=(ErrorItem("INTERNAL_ERROR", f"verification failed unexpectedly: {type(exc).__name__}: {exc}", "this is a bug: report it; the attestation is treated as unverified"),),
            envelope_digest=envelope_digest,
        )
    created, created_signed = candidate.created, False
    signed = signed_time(statement.predicate_type, statement.predicate)  # scannedAt, VEX timestamp
    if signed:
        created, created_signed = signed, True
    elif tlog_result.verified and tlog_result.integrated_time:
        created, created_signed = _iso(tlog_result.integrated_time), True
    elif found.timestamp is not None:
        created, created_signed = found.timestamp.time.strftime("%Y-%m-%dT%H:%M:%SZ"), True
    stamps = tuple(TimestampResult(authority=t.authority, time=t.time.strftime("%Y-%m-%dT%H:%M:%SZ")) for t in found.timestamps)
    return AttestationResult(
        predicate_type=statement.predicate_type,
        verified=True,
        source=candidate.source,
        digest=image_digest,
        signers=signers,
        tlog=tlog_result,
        created=created,
        created_signed=created_signed,
        annotations=dict(candidate.annotations),
        predicate=inline_predicate(statement.predicate),  # large ones (SBOMs): the summary only
        predicate_summary=summary,
        errors=(),
        envelope_digest=envelope_digest,
        timestamps=stamps,
    )
