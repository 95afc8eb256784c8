"""Rekor transparency-log entries: SignedEntryTimestamp, inclusion proof, checkpoint, and the
binding of an entry to one envelope (pure).

Hand-written because sigstore-python verifies log entries only inside its own bundle flow and
does not read cosign's legacy ``dev.sigstore.cosign/bundle`` annotation (DESIGN.md §5). Facts
(reference/cosign-formats.md §9; rekor ``pkg/types/{dsse,intoto}``; RFC 6962/9162):

- SET = signature by the Rekor key (chosen by log ID = sha256 of its SPKI DER) over the RFC 8785
  canonical JSON of ``{"body","integratedTime","logIndex","logID"}`` (body base64, logID hex);
- inclusion proof: RFC 6962 Merkle audit path from ``sha256(0x00 || body)`` to the root hash,
  and the root hash must be the one in a checkpoint (signed note) signed by the same log;
- binding: the entry's hashes must be those of *this* envelope — ``dsse`` v0.0.1:
  ``payloadHash`` and (legacy layers) ``envelopeHash`` = sha256 of the exact layer bytes,
  with the signatures listed; ``intoto`` v0.0.1/v0.0.2: ``content.hash`` and
  ``content.payloadHash`` — and the key or certificate in the entry must be the signer's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..dsse import Envelope, strict_json
from ..errors import VerificationError
from ..verdict import TlogResult
from . import keys
from .trustroot import LogKey, TrustedRootMaterial

MAX_PROOF_HASHES = 64
MAX_BODY = 4 << 20


class TlogInvalid(VerificationError):
    reason = "TLOG_INVALID"


class TlogMissing(VerificationError):
    reason = "TLOG_MISSING"


@dataclass(frozen=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class LogEntry:
    """One Rekor entry as carried next to an attestation (unverified until :func:`verify_entry`)."""

    body: bytes  # the canonicalized entry body (decoded)
    integrated_time: int
    log_index: int
    log_id: bytes
    signed_entry_timestamp: bytes = b""
    inclusion_proof: InclusionProof | None = None
    kind: str = ""
    version: str = ""

    @property
    def integrated_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, tz=timezone.utc)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TlogInvalid(f"{what} is missing or not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TlogInvalid(f"{what} is not valid base64") from exc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TlogInvalid(f"{what} must be an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        out = int(value)  # protojson writes 64-bit integers as strings
    else:
        raise TlogInvalid(f"{what} must be a non-negative integer, got {value!r}")
    if out < 0:
        raise TlogInvalid(f"{what} must not be negative")
    return out



def _inclusion_proof(p: Any, decode: Callable[[Any, str], bytes], checkpoint: str) -> InclusionProof | None:
    """An ``inclusionProof`` object (None when absent); ``decode`` reads its hashes (base64 in
    bundles, hex in Rekor's API)."""
    if not isinstance(p, dict):
        return None
    hashes = p.get("hashes") or []
    if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES:
        raise TlogInvalid("inclusionProof.hashes must be a list of at most 64 hashes")
    return InclusionProof(
        log_index=_int(p.get("logIndex"), "inclusionProof.logIndex"),
        tree_size=_int(p.get("treeSize"), "inclusionProof.treeSize"),
        root_hash=decode(p.get("rootHash"), "inclusionProof.rootHash"),
        hashes=tuple(decode(h, "inclusionProof.hashes[]") for h in hashes),
        checkpoint=checkpoint,
    )

def _kind(body: bytes) -> tuple[str, str, dict[str, Any]]:
    # strict JSON: duplicate keys refused (two readers must not see two entries), bounded depth
    # (a deeply nested body must be a refusal, not a RecursionError)
    doc = strict_json(body, what="the log entry body", error=TlogInvalid)
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        raise TlogInvalid("the log entry body has no spec object")
    return str(doc.get("kind", "")), str(doc.get("apiVersion", "")), doc


def parse_cosign_bundle(text: str) -> LogEntry:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation (``{"SignedEntryTimestamp","Payload"}``)."""
    if not isinstance(text, str):
        raise TlogInvalid("the cosign Rekor bundle annotation is not a string")
    doc = strict_json(text, what="the cosign Rekor bundle annotation", error=TlogInvalid)
    if not isinstance(doc, dict) or not isinstance(doc.get("Payload"), dict):
        raise TlogInvalid("the cosign Rekor bundle annotation has no Payload object")
    payload = doc["Payload"]
    body = _b64(payload.get("body"), "Payload.body")
    if len(body) > MAX_BODY:
        raise TlogInvalid("the log entry body is too large", reason="LIMIT_EXCEEDED")
    log_id_hex = payload.get("logID")
    if not isinstance(log_id_hex, str) or not re.fullmatch(r"[0-9a-f]{64}", log_id_hex):
        raise TlogInvalid(f"Payload.logID must be 64 lowercase hex digits, got {log_id_hex!r}")
    kind, version, _ = _kind(body)
    return LogEntry(
        body=body,
        integrated_time=_int(payload.get("integratedTime"), "Payload.integratedTime"),
        log_index=_int(payload.get("logIndex"), "Payload.logIndex"),
        log_id=bytes.fromhex(log_id_hex),
        signed_entry_timestamp=_b64(doc.get("SignedEntryTimestamp"), "SignedEntryTimestamp"),
        kind=kind,
        version=version,
    )


def parse_bundle_entry(doc: Any) -> LogEntry:
    """One ``verificationMaterial.tlogEntries[]`` item of a sigstore bundle (protojson)."""
    if not isinstance(doc, dict):
        raise TlogInvalid("a bundle tlog entry must be an object")
    body = _b64(doc.get("canonicalizedBody"), "tlogEntries[].canonicalizedBody")
    if len(body) > MAX_BODY:
        raise TlogInvalid("the log entry body is too large", reason="LIMIT_EXCEEDED")
    log_id = _b64((doc.get("logId") or {}).get("keyId") if isinstance(doc.get("logId"), dict) else None, "tlogEntries[].logId.keyId")
    set_ = b""
    promise = doc.get("inclusionPromise")
    if isinstance(promise, dict) and promise.get("signedEntryTimestamp"):
        set_ = _b64(promise["signedEntryTimestamp"], "inclusionPromise.signedEntryTimestamp")
    p = doc.get("inclusionProof")
    checkpoint = p.get("checkpoint") if isinstance(p, dict) else None
    # a bundle's proof: base64 hashes, the checkpoint as {"envelope": …}
    proof = _inclusion_proof(p, _b64, str(checkpoint.get("envelope", "")) if isinstance(checkpoint, dict) else "")
    kind, version, _ = _kind(body)
    kv = doc.get("kindVersion") or {}
    if isinstance(kv, dict) and kv.get("kind") and (kv.get("kind"), kv.get("version")) != (kind, version):
        raise TlogInvalid(f"kindVersion {kv.get('kind')}/{kv.get('version')} differs from the body's {kind}/{version}")
    integrated = doc.get("integratedTime")
    return LogEntry(
        body=body,
        integrated_time=_int(integrated, "tlogEntries[].integratedTime") if integrated not in (None, "", "0", 0) else 0,
        log_index=_int(doc.get("logIndex"), "tlogEntries[].logIndex"),
        log_id=log_id,
        signed_entry_timestamp=set_,
        inclusion_proof=proof,
        kind=kind,
        version=version,
    )


def _hex(value: Any, what: str, size: int | None = 32) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]*", value) or len(value) % 2:
        raise TlogInvalid(f"{what} must be a hex string")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise TlogInvalid(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def parse_rekor_entry(uuid: str, doc: Any) -> LogEntry:
    """One entry as Rekor v1's API returns it (``{uuid: {body, integratedTime, logID, logIndex,
    verification: {signedEntryTimestamp, inclusionProof}}}``; hashes and IDs in hex). Untrusted:
    the UUID must end with the leaf hash of the body (as cosign checks), and the caller still runs
    :func:`verify_entry` on it."""
    if not isinstance(doc, dict):
        raise TlogInvalid(f"Rekor entry {uuid}: not an object")
    body = _b64(doc.get("body"), f"Rekor entry {uuid}: body")
    if len(body) > MAX_BODY:
        raise TlogInvalid("the log entry body is too large", reason="LIMIT_EXCEEDED")
    if not isinstance(uuid, str) or not re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{80}", uuid) or bytes.fromhex(uuid[-64:]) != leaf_hash(body):
        raise TlogInvalid(f"Rekor entry {uuid!r}: the UUID is not the leaf hash of the body it came with")
    verification = doc.get("verification")
    if not isinstance(verification, dict):
        raise TlogInvalid(f"Rekor entry {uuid}: no verification object (SET and inclusion proof)")
    p = verification.get("inclusionProof")
    checkpoint = p.get("checkpoint") if isinstance(p, dict) else None
    # Rekor's API: hex hashes, the checkpoint as a string
    proof = _inclusion_proof(p, _hex, checkpoint if isinstance(checkpoint, str) else "")
    kind, version, _ = _kind(body)
    return LogEntry(
        body=body,
        integrated_time=_int(doc.get("integratedTime"), f"Rekor entry {uuid}: integratedTime"),
        log_index=_int(doc.get("logIndex"), f"Rekor entry {uuid}: logIndex"),
        log_id=_hex(doc.get("logID"), f"Rekor entry {uuid}: logID"),
        signed_entry_timestamp=_b64(verification.get("signedEntryTimestamp"), f"Rekor entry {uuid}: signedEntryTimestamp"),
        inclusion_proof=proof,
        kind=kind,
        version=version,
    )


def canonical_set_payload(entry: LogEntry) -> bytes:
    import rfc8785

    return rfc8785.dumps(
        {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )


def _log_key(entry: LogEntry, root: TrustedRootMaterial) -> LogKey:
    key = root.rekor_key(entry.log_id)
    if key is None:
        raise TlogInvalid(
            f"the log entry was signed by log {entry.log_id.hex()}, which is not a trusted Rekor log",
            hint="add that Rekor's public key to the trust root (tlogs in trusted_root.json, or rekorPublicKey)",
        )
    return key


def verify_set(entry: LogEntry, root: TrustedRootMaterial) -> None:
    key = _log_key(entry, root)
    if not entry.signed_entry_timestamp:
        raise TlogInvalid("the log entry has no SignedEntryTimestamp (inclusion promise)")
    if entry.integrated_time and not key.valid_for.contains(entry.integrated_datetime):
        raise TlogInvalid(f"the Rekor key {entry.log_id.hex()} was not valid at the integrated time {entry.integrated_datetime.isoformat()}")
    if not keys.verify_signature(key.public_key, canonical_set_payload(entry), entry.signed_entry_timestamp):
        raise TlogInvalid(
            f"the SignedEntryTimestamp of log entry {entry.log_index} does not verify with the Rekor key {entry.log_id.hex()}",
            hint="the entry, its time or its index was altered, or it comes from another log",
        )


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: tuple[bytes, ...]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an audit path (raises when the shape is wrong)."""
    if index >= size:
        raise TlogInvalid(f"inclusion proof index {index} is not below the tree size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != 32:
            raise TlogInvalid("an inclusion proof hash is not 32 bytes")
        if sn == 0:
            raise TlogInvalid("the inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise TlogInvalid("the inclusion proof is shorter than the tree requires")
    return r


def _parse_checkpoint(text: str) -> tuple[bytes, int, bytes, list[tuple[str, bytes]]]:
    """A signed note: (signed text, tree size, root hash, [(name, hint+signature)])."""
    if text.count("\n\n") != 1:
        raise TlogInvalid("the checkpoint is not a signed note (one blank line between text and signatures)")
    head, _, sigs = text.partition("\n\n")
    lines = head.split("\n")
    if len(lines) < 3 or not lines[0]:
        raise TlogInvalid("the checkpoint needs an origin, a tree size and a root hash")
    try:
        size = int(lines[1])
        root_hash = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise TlogInvalid(f"the checkpoint's size or root hash is malformed: {exc}") from exc
    signatures = []
    for name, sig in re.findall(r"\u2014 (\S+) (\S+)\n", sigs):
        try:
            raw = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) > 4:
            signatures.append((name, raw))
    return (head + "\n").encode(), size, root_hash, signatures


def verify_inclusion(entry: LogEntry, root: TrustedRootMaterial) -> None:
    proof = entry.inclusion_proof
    if proof is None:
        raise TlogInvalid("the log entry has no inclusion proof")
    key = _log_key(entry, root)
    computed = root_from_inclusion_proof(proof.log_index, proof.tree_size, leaf_hash(entry.body), proof.hashes)
    if computed != proof.root_hash:
        raise TlogInvalid("the inclusion proof does not lead to its root hash: the entry is not in that tree")
    if not proof.checkpoint:
        raise TlogInvalid("the inclusion proof has no signed checkpoint")
    signed, size, root_hash, sigs = _parse_checkpoint(proof.checkpoint)
    if root_hash != proof.root_hash or size != proof.tree_size:
        raise TlogInvalid("the checkpoint's root hash or tree size differs from the inclusion proof's")
    for _name, raw in sigs:
        if raw[:4] == entry.log_id[:4] and keys.verify_signature(key.public_key, signed, raw[4:]):
            return
    raise TlogInvalid(f"the checkpoint carries no valid signature by the Rekor log {entry.log_id.hex()}")


def _pem_der(b64pem: Any, what: str) -> bytes:
    """DER of the first PEM block in a base64 string (a key or a certificate)."""
    pem = _b64(b64pem, what)
    try:
        if b"CERTIFICATE" in pem.split(b"\n", 1)[0]:
            return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        return serialization.load_pem_public_key(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError) as exc:
        raise TlogInvalid(f"{what} in the log entry is not a PEM key or certificate") from exc


def _hash_value(doc: Any, what: str) -> str:
    if not isinstance(doc, dict) or doc.get("algorithm") != "sha256" or not isinstance(doc.get("value"), str):
        raise TlogInvalid(f"{what} in the log entry must be a sha256 hash")
    return doc["value"].lower()


def _same_signatures(logged: list[bytes], envelope: Envelope) -> None:
    """The entry records exactly the envelope's signatures: all of them, each as often, nothing
    else. A subset is not enough: the envelope verified must be the envelope that was logged."""
    ours = sorted(s.sig for s in envelope.signatures)
    if sorted(logged) != ours:
        raise TlogInvalid(
            f"the log entry records {len(logged)} signature(s) and the envelope carries {len(ours)}, which are not the same: "
            "this envelope is not the one that was logged",
            hint="the envelope's signatures were added, removed or altered after it was logged",
        )


_HASH_NAMES = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


def _prehash_of(der: bytes, is_cert: bool) -> str:
    """The hash a Rekor v2 ``hashedrekord`` entry uses for this verifier's key type (the key's own
    scheme: ECDSA its curve's hash, RSA SHA-256, Ed25519 SHA-512)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = x509.load_der_x509_certificate(der).public_key() if is_cert else serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise TlogInvalid("the verifier recorded in the Rekor v2 entry is not a DER certificate or key") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}.get(key.curve.name, "")
    if isinstance(key, rsa.RSAPublicKey):
        return "sha256"
    return "sha512"


def _hashedrekord_v002(spec: dict[str, Any], envelope: Envelope) -> bytes:
    """Rekor v2's record of a DSSE envelope (rekor-v2 spec §6.1.4, as sigstore-python checks it):
    ``data`` = hash of PAE(payloadType, payload) under the verifier's hash, ``signature.content``
    = the envelope's one signature, ``signature.verifier`` = the certificate or key. Returns the
    verifier's DER."""
    body = spec.get("hashedRekordV002")
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict) or not isinstance(body.get("signature"), dict):
        raise TlogInvalid("the hashedrekord 0.0.2 entry has no hashedRekordV002 data and signature")
    if len(envelope.signatures) != 1:
        raise TlogInvalid("a Rekor v2 hashedrekord entry records one signature; the envelope carries several")
    sig = body["signature"]
    verifier = sig.get("verifier") if isinstance(sig.get("verifier"), dict) else {}
    if isinstance(verifier.get("x509Certificate"), dict):
        der, is_cert = _b64(verifier["x509Certificate"].get("rawBytes"), "signature.verifier.x509Certificate.rawBytes"), True
    elif isinstance(verifier.get("publicKey"), dict):
        der, is_cert = _b64(verifier["publicKey"].get("rawBytes"), "signature.verifier.publicKey.rawBytes"), False
    else:
        raise TlogInvalid("the hashedrekord 0.0.2 entry records no verifier (x509Certificate or publicKey)")
    if _b64(sig.get("content"), "signature.content") != envelope.signatures[0].sig:
        raise TlogInvalid("the Rekor v2 entry records another signature: this envelope is not the one that was logged")
    name = _HASH_NAMES.get(str(body["data"].get("algorithm")))
    expected = _prehash_of(der, is_cert)
    if name is None or name != expected:
        raise TlogInvalid(f"the Rekor v2 entry hashes with {body['data'].get('algorithm')!r}; its verifier's key type uses {expected or 'no known hash'}")
    if _b64(body["data"].get("digest"), "data.digest") != hashlib.new(name, envelope.pae).digest():
        raise TlogInvalid("the Rekor v2 entry records the hash of another payload or payload type: it is not this attestation's entry")
    return der


def check_binding(
    entry: LogEntry,
    envelope: Envelope,
    *,
    envelope_bytes: bytes | None,
    verifiers: list[bytes],
) -> None:
    """The entry must record this envelope and one of ``verifiers`` (DER of a key or certificate).

    Every kind records the envelope canonically, and all of what it records must be this
    envelope's: ``dsse`` 0.0.1 the payload hash and **exactly** the envelope's signatures (and,
    for a legacy layer, the hash of its exact bytes); ``intoto`` 0.0.2 the payload type, payload
    hash and exactly its signatures (and the exact bytes' hash); ``intoto`` 0.0.1 the payload
    hash (and the exact bytes' hash); Rekor v2 ``hashedrekord`` 0.0.2 the hash of PAE and the
    one signature. ``envelope_bytes`` are the exact bytes cosign uploaded (a legacy layer); a
    sigstore bundle keeps no original serialisation, so there, like sigstore-python, the
    envelope hash is not compared (the signatures and payload are)."""
    kind, version, doc = _kind(entry.body)
    spec = doc["spec"]
    payload_hash = hashlib.sha256(envelope.payload).hexdigest()
    found: list[bytes] = []
    if kind == "dsse" and version == "0.0.1":
        if _hash_value(spec.get("payloadHash"), "spec.payloadHash") != payload_hash:
            raise TlogInvalid("the log entry records another payload (payloadHash differs): it is not this attestation's entry")
        if envelope_bytes is not None:
            if _hash_value(spec.get("envelopeHash"), "spec.envelopeHash") != hashlib.sha256(envelope_bytes).hexdigest():
                raise TlogInvalid("the log entry records another envelope (envelopeHash differs from sha256 of the layer bytes)")
        sigs = spec.get("signatures")
        if not isinstance(sigs, list) or not sigs or len(sigs) > 16:
            raise TlogInvalid("the dsse log entry must list 1 to 16 signatures")
        logged = []
        for s in sigs:
            if not isinstance(s, dict):
                raise TlogInvalid("a dsse log entry signature is not an object")
            logged.append(_b64(s.get("signature"), "spec.signatures[].signature"))
            found.append(_pem_der(s.get("verifier"), "spec.signatures[].verifier"))
        _same_signatures(logged, envelope)
    elif kind == "intoto" and version in ("0.0.1", "0.0.2"):
        content = spec.get("content")
        if not isinstance(content, dict):
            raise TlogInvalid("the intoto log entry has no content")
        if _hash_value(content.get("payloadHash"), "spec.content.payloadHash") != payload_hash:
            raise TlogInvalid("the log entry records another payload (payloadHash differs): it is not this attestation's entry")
        if envelope_bytes is not None and _hash_value(content.get("hash"), "spec.content.hash") != hashlib.sha256(envelope_bytes).hexdigest():
            raise TlogInvalid("the log entry records another envelope (content.hash differs from sha256 of the layer bytes)")
        if version == "0.0.1":
            found.append(_pem_der(spec.get("publicKey"), "spec.publicKey"))
        else:
            env = content.get("envelope") if isinstance(content.get("envelope"), dict) else {}
            if env.get("payloadType") != envelope.payload_type:
                raise TlogInvalid(
                    f"the log entry records payloadType {env.get('payloadType')!r}, the envelope has {envelope.payload_type!r}: "
                    "it is not the envelope that was logged"
                )
            entry_sigs = env.get("signatures") or []
            if not isinstance(entry_sigs, list) or not entry_sigs or len(entry_sigs) > 16:
                raise TlogInvalid("the intoto log entry must list 1 to 16 signatures")
            logged = []
            for s in entry_sigs:
                if not isinstance(s, dict):
                    raise TlogInvalid("an intoto log entry signature is not an object")
                raw = _b64(s.get("sig"), "spec.content.envelope.signatures[].sig")
                # rekor stores intoto v0.0.2 signatures base64-encoded once more (decode that layer)
                try:
                    raw = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    pass  # some clients logged the raw signature: compared as is
                logged.append(raw)
                found.append(_pem_der(s.get("publicKey"), "spec.content.envelope.signatures[].publicKey"))
            _same_signatures(logged, envelope)
    elif kind == "hashedrekord" and version == "0.0.2":
        found.append(_hashedrekord_v002(spec, envelope))
    else:
        raise TlogInvalid(
            f"log entry kind {kind}/{version} cannot record an attestation", hint="expected dsse 0.0.1, intoto 0.0.1/0.0.2 or hashedrekord 0.0.2 (Rekor v2)"
        )
    if not any(f in verifiers for f in found):
        raise TlogInvalid("the key or certificate in the log entry is not the one that signed this envelope")


def verify_entry(
    entry: LogEntry,
    root: TrustedRootMaterial,
    envelope: Envelope,
    *,
    envelope_bytes: bytes | None,
    verifiers: list[bytes],
    require_proof: bool = False,
) -> TlogResult:
    """SET (required: it authenticates the integrated time), inclusion proof and checkpoint when
    present (required for sigstore bundles v0.2+), then the binding to this envelope and signer."""
    verify_set(entry, root)
    if entry.inclusion_proof is None and require_proof:
        raise TlogInvalid(
            "the bundle's log entry has no inclusion proof; sigstore bundles v0.2 and later must carry one",
            hint="re-create the bundle with a current sigstore client",
        )
    if entry.inclusion_proof is not None:
        verify_inclusion(entry, root)
    check_binding(entry, envelope, envelope_bytes=envelope_bytes, verifiers=verifiers)
    return TlogResult(verified=True, log_index=entry.log_index, integrated_time=entry.integrated_time, log_id=entry.log_id.hex())
