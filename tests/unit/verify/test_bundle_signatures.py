"""Issue 17 item 1: a sigstore bundle's DSSE envelope carries exactly one signature (the bundle
spec; sigstore-go's invalid-signature-count error, sigstore-python's refusal), and for every
log-entry kind the envelope verified is the envelope that was logged: the entry's recorded
signatures must be the envelope's, all of them and only them, not a subset. Legacy ``.att``
envelopes keep cosign's rules (several signatures allowed; the entry binds the exact bytes)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from stellaops import dsse
from stellaops.candidate import SOURCE_BUNDLE, Candidate
from stellaops.verify import tlog
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, candidate, envelope_bytes, key_authority, make_private_key, statement, trust_for
from tests.fixtures.sigstore import BUNDLE_V03, TestSigstore, dsse_entry_body, intoto_v002_entry_body, pem


def _with_envelope(bundle: bytes, mutate: Any) -> Candidate:
    doc = json.loads(bundle)
    mutate(doc["dsseEnvelope"])
    return Candidate(kind="bundle", data=json.dumps(doc).encode(), source=SOURCE_BUNDLE, attached_to="")


@pytest.mark.parametrize("entry_kind", ["dsse", "intoto"])
def test_keyless_bundle_with_the_same_signature_twice_is_refused(test_sigstore: TestSigstore, entry_kind: str) -> None:
    """Before: with an intoto 0.0.2 entry (which sigstore-python does not check) the envelope
    carrying its logged signature twice verified, because each logged signature was found in it."""
    att = test_sigstore.attest(statement(), entry_kind=entry_kind)
    assert verify_candidate(att.bundle(), IMAGE_DIGEST, test_sigstore.trust()).verified  # the genuine bundle
    cand = _with_envelope(att.bundle_json(), lambda env: env["signatures"].append(dict(env["signatures"][0])))
    res = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust())
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE", res.errors
    assert "exactly one signature" in res.errors[0].message and "2" in res.errors[0].message


def test_key_signed_bundle_with_two_signatures_is_refused() -> None:
    key, other = make_private_key("p256"), make_private_key("p256")
    env = json.loads(envelope_bytes(statement(), [key, other]))
    doc = {"mediaType": BUNDLE_V03, "verificationMaterial": {"publicKey": {"hint": ""}}, "dsseEnvelope": env}
    res = verify_candidate(candidate(json.dumps(doc).encode(), kind="bundle", source="bundle"), IMAGE_DIGEST, trust_for(key_authority(key)))
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE" and "exactly one signature" in res.errors[0].message


def test_bundle_with_no_signature_is_refused() -> None:
    key = make_private_key("p256")
    env = json.loads(envelope_bytes(statement(), [key]))
    env["signatures"] = []
    doc = {"mediaType": BUNDLE_V03, "verificationMaterial": {"publicKey": {"hint": ""}}, "dsseEnvelope": env}
    res = verify_candidate(candidate(json.dumps(doc).encode(), kind="bundle", source="bundle"), IMAGE_DIGEST, trust_for(key_authority(key)))
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE"


def test_legacy_envelope_keeps_cosigns_rules_for_several_signatures() -> None:
    """A legacy .att envelope signed by two configured keys still verifies (cosign allows it)."""
    a, b = make_private_key("p256"), make_private_key("ed25519")
    res = verify_candidate(candidate(envelope_bytes(statement(), [a, b])), IMAGE_DIGEST, trust_for(key_authority(a, "a"), key_authority(b, "b")))
    assert res.verified and {s.authority for s in res.signers} == {"a", "b"}


# --------------------------------------------------------------------------- the logged envelope


def _two_sig_envelope(test_sigstore: TestSigstore) -> tuple[dsse.Envelope, bytes, list[bytes], str]:
    leaf = test_sigstore.issue()
    payload = statement()
    env, sigs = test_sigstore.sign_envelope(payload, leaf.key)
    extra = make_private_key("p256")
    doc = json.loads(env)
    from stellaops.verify import keys

    doc["signatures"].append({"sig": base64.b64encode(keys.sign(extra, dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload))).decode()})
    data = json.dumps(doc, separators=(",", ":")).encode()
    return dsse.parse_envelope(data), data, sigs, pem(leaf.cert)


@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_entry_recording_a_subset_of_the_envelopes_signatures_is_refused(test_sigstore: TestSigstore, kind: str) -> None:
    """The entry records the certificate's signature only; the envelope carries one more. Before,
    each logged signature being on the envelope was enough (a subset)."""
    envelope, data, sigs, cert_pem = _two_sig_envelope(test_sigstore)
    make = dsse_entry_body if kind == "dsse" else (lambda e, p, s, v: intoto_v002_entry_body(e, p, dsse.PAYLOAD_TYPE_INTOTO, s, v))
    body = make(data, envelope.payload, sigs, cert_pem)  # envelope hash over these very bytes
    entry = tlog.LogEntry(body=body, integrated_time=1, log_index=0, log_id=b"\0" * 32, kind=kind, version=json.loads(body)["apiVersion"])
    der = __import__("cryptography.x509", fromlist=["x"]).load_pem_x509_certificate(cert_pem.encode())
    from stellaops.verify.keyless import cert_der

    for exact in (data, None):  # a legacy layer (exact bytes) and a bundle (none)
        with pytest.raises(tlog.TlogInvalid) as info:
            tlog.check_binding(entry, envelope, envelope_bytes=exact, verifiers=[cert_der(der)])
        assert "signature" in info.value.detail
    # the same entry listing both signatures binds
    full = make(data, envelope.payload, [s.sig for s in envelope.signatures], cert_pem)
    ok = tlog.LogEntry(body=full, integrated_time=1, log_index=0, log_id=b"\0" * 32, kind=kind, version=json.loads(full)["apiVersion"])
    tlog.check_binding(ok, envelope, envelope_bytes=data, verifiers=[cert_der(der)])


def test_intoto_entry_of_another_payload_type_is_refused(test_sigstore: TestSigstore) -> None:
    leaf = test_sigstore.issue()
    payload = statement()
    data, sigs = test_sigstore.sign_envelope(payload, leaf.key)
    envelope = dsse.parse_envelope(data)
    body = intoto_v002_entry_body(data, payload, "application/json", sigs, pem(leaf.cert))
    entry = tlog.LogEntry(body=body, integrated_time=1, log_index=0, log_id=b"\0" * 32, kind="intoto", version="0.0.2")
    from cryptography import x509
    from stellaops.verify.keyless import cert_der

    with pytest.raises(tlog.TlogInvalid) as info:
        tlog.check_binding(entry, envelope, envelope_bytes=None, verifiers=[cert_der(x509.load_pem_x509_certificate(pem(leaf.cert).encode()))])
    assert "payloadType" in info.value.detail


def test_rekor_v2_entry_binding_is_checked_by_us(test_sigstore: TestSigstore) -> None:
    """hashedrekord 0.0.2 (Rekor v2's DSSE form): data = sha256(PAE), signature = the envelope's
    one signature, verifier = the certificate. Any other value is refused by our own check."""
    from stellaops.verify import keys
    from stellaops.verify.keyless import cert_der

    leaf = test_sigstore.issue()
    payload = statement()
    data, sigs = test_sigstore.sign_envelope(payload, leaf.key)
    envelope = dsse.parse_envelope(data)

    def body(digest: bytes, sig: bytes, der: bytes) -> bytes:
        return json.dumps({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
            "signature": {"content": base64.b64encode(sig).decode(),
                          "verifier": {"keyDetails": "PKIX_ECDSA_P256_SHA_256", "x509Certificate": {"rawBytes": base64.b64encode(der).decode()}}}}}},
            separators=(",", ":")).encode()  # fmt: skip

    der = cert_der(leaf.cert)
    good = hashlib.sha256(envelope.pae).digest()

    def entry(b: bytes) -> tlog.LogEntry:
        return tlog.LogEntry(body=b, integrated_time=0, log_index=0, log_id=b"\0" * 32, kind="hashedrekord", version="0.0.2")

    tlog.check_binding(entry(body(good, sigs[0], der)), envelope, envelope_bytes=None, verifiers=[der])
    other_sig = keys.sign(leaf.key, b"other")
    for bad in (body(hashlib.sha256(b"x").digest(), sigs[0], der), body(good, other_sig, der), body(good, sigs[0], cert_der(test_sigstore.issue().cert))):
        with pytest.raises(tlog.TlogInvalid):
            tlog.check_binding(entry(bad), envelope, envelope_bytes=None, verifiers=[der])
