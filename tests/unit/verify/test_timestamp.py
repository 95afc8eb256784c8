"""RFC 3161 timestamps on cosign legacy ``.att`` layers, with real tokens from the real
sigstore timestamp-authority (``tsa`` fixture) and certificates from the offline test Sigstore.

Each forgery is named by what it forges and asserts its reason code."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from stellaops.candidate import CosignLayerAnnotations
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify import timestamp
from stellaops.verify.attestation import verify_candidate
from stellaops.verify.trustroot import TimeRange

from tests.fixtures.keys import (
    IMAGE_DIGEST,
    candidate,
    envelope_bytes,
    key_authority,
    make_private_key,
    statement,
    trust_for,
)
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.fixtures.tsa import TsaServer


def annotation(der: bytes) -> str:
    """cosign's dev.sigstore.cosign/rfc3161timestamp value."""
    return json.dumps({"SignedRFC3161Timestamp": base64.b64encode(der).decode()})


def first_sig(envelope: bytes, index: int = 0) -> bytes:
    return base64.b64decode(json.loads(envelope)["signatures"][index]["sig"])


def tsa_roots(tsa: TsaServer) -> SigstoreRoots:
    """A private TSA given as a PEM chain (tsaCertChain / --timestamp-certificate-chain)."""
    return SigstoreRoots(tsa_chain_pem=tsa.chain_pem, offline=True)


def tsa_entry(tsa: TsaServer, start: str = "2020-01-01T00:00:00Z", end: str | None = None) -> dict[str, Any]:
    """A trusted_root.json ``timestampAuthorities`` entry for ``tsa``."""
    valid: dict[str, str] = {"start": start}
    if end:
        valid["end"] = end
    return {
        "subject": {"organization": "local", "commonName": "Test TSA"},
        "uri": tsa.url,
        "certChain": {"certificates": [{"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()} for c in tsa.chain]},
        "validFor": valid,
    }


@pytest.fixture(scope="module")
def signer() -> Any:
    return make_private_key("p256")


@pytest.fixture(scope="module")
def env(signer: Any) -> bytes:
    return envelope_bytes(statement(), [signer])


def _verify(env: bytes, ann: str, trust: TrustConfig) -> Any:
    return verify_candidate(candidate(env, cosign=CosignLayerAnnotations(rfc3161_timestamp=ann)), IMAGE_DIGEST, trust)


# --------------------------------------------------------------------------- key signers


def test_timestamp_over_envelope_bytes_verifies_and_is_reported(tsa: TsaServer, signer: Any, env: bytes) -> None:
    """cosign v2 timestamps the whole envelope (and cosign verify-attestation checks that)."""
    res = _verify(env, annotation(tsa.timestamp(env)), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.verified, res.errors
    (stamp,) = res.timestamps
    assert stamp.authority == "Test TSA Timestamping"
    when = dt.datetime.strptime(stamp.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 600
    assert res.to_json()["timestamps"] == [{"authority": "Test TSA Timestamping", "time": stamp.time}]


def test_timestamp_over_signature_verifies(tsa: TsaServer, signer: Any, env: bytes) -> None:
    """cosign v3.1 (sigstore-go) timestamps the raw DSSE signature bytes."""
    der = tsa.timestamp(first_sig(env))
    res = _verify(env, annotation(der), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.verified and len(res.timestamps) == 1, res.errors
    ca = tsa.authority()
    stamp = timestamp.verify(der, envelope=env, signatures=[first_sig(env)], authorities=[ca])
    assert stamp.covers == "signature"


def test_token_with_embedded_certificates_and_sha512_verifies(tsa: TsaServer, signer: Any, env: bytes) -> None:
    der = tsa.timestamp(env, cert_req=True, hash_name="sha512")
    res = _verify(env, annotation(der), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.verified and res.timestamps, res.errors


def test_timestamp_authorities_from_trusted_root_verify(tsa: TsaServer, test_sigstore: TestSigstore, signer: Any, env: bytes) -> None:
    doc = test_sigstore.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa)]
    roots = SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), trusted_root_source="trusted_root.json", offline=True)
    res = _verify(env, annotation(tsa.timestamp(env)), trust_for(key_authority(signer), sigstore=roots))
    assert res.verified and res.timestamps, res.errors


def test_rejects_tampered_token(tsa: TsaServer, signer: Any, env: bytes) -> None:
    der = bytearray(tsa.timestamp(env))
    der[-5] ^= 0x01  # inside the CMS signature at the end of the token
    res = _verify(env, annotation(bytes(der)), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID"
    assert "does not verify against any configured timestamp authority" in res.errors[0].message


def test_rejects_token_over_other_bytes(tsa: TsaServer, signer: Any, env: bytes) -> None:
    res = _verify(env, annotation(tsa.timestamp(b"some other artifact")), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID"
    assert "covers neither the envelope" in res.errors[0].message


def test_rejects_token_for_the_payload_instead_of_the_envelope(tsa: TsaServer, signer: Any, env: bytes) -> None:
    payload = base64.b64decode(json.loads(env)["payload"])
    res = _verify(env, annotation(tsa.timestamp(payload)), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_rejects_token_over_a_signature_that_did_not_verify(tsa: TsaServer, signer: Any) -> None:
    """Two signatures, only the first by a configured key: a token over the other proves nothing."""
    env2 = envelope_bytes(statement(), [signer, make_private_key("p256")])
    res = _verify(env2, annotation(tsa.timestamp(first_sig(env2, 1))), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_rejects_token_from_untrusted_tsa(tsa: TsaServer, other_tsa: TsaServer, signer: Any, env: bytes) -> None:
    for cert_req in (False, True):
        res = _verify(env, annotation(other_tsa.timestamp(env, cert_req=cert_req)), trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
        assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", cert_req


def test_rejects_tsa_outside_its_validity_window(tsa: TsaServer, test_sigstore: TestSigstore, signer: Any, env: bytes) -> None:
    doc = test_sigstore.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa, start="2020-01-01T00:00:00Z", end="2021-01-01T00:00:00Z")]
    roots = SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), trusted_root_source="trusted_root.json", offline=True)
    res = _verify(env, annotation(tsa.timestamp(env)), trust_for(key_authority(signer), sigstore=roots))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID"
    assert "trusted only for" in res.errors[0].message
    # and the same with the window directly on the authority
    with pytest.raises(timestamp.TimestampInvalid, match="trusted only for"):
        late = TimeRange(start=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        timestamp.verify(tsa.timestamp(env), envelope=env, signatures=[], authorities=[tsa.authority(late)])


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"SignedRFC3161Timestamp": 5}',
        '{"SignedRFC3161Timestamp": "%%%"}',
        '{"SignedRFC3161Timestamp": "AAAA", "Extra": 1}',
        '{"SignedRFC3161Timestamp": "AAAA", "SignedRFC3161Timestamp": "AAAA"}',
        json.dumps({"SignedRFC3161Timestamp": base64.b64encode(b"\x30\x03\x02\x01\x00").decode()}),
    ],
)
def test_rejects_malformed_annotation(tsa: TsaServer, signer: Any, env: bytes, value: str) -> None:
    res = _verify(env, value, trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID"


def test_timestamp_ignored_when_no_tsa_is_configured(signer: Any, env: bytes) -> None:
    """As cosign without --timestamp-certificate-chain / --use-signed-timestamps: not read at all."""
    res = _verify(env, "not even json", trust_for(key_authority(signer)))
    assert res.verified and res.timestamps == () and "timestamps" not in res.to_json()


def test_signature_failure_is_reported_before_the_timestamp(tsa: TsaServer, env: bytes) -> None:
    res = _verify(env, annotation(tsa.timestamp(env)), trust_for(key_authority(make_private_key("p256")), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "SIGNATURE_INVALID"


# --------------------------------------------------------------------------- keyless signers


def _keyless(
    test_sigstore: TestSigstore, tsa: TsaServer, *, require_tlog: bool = False, with_tsa: bool = True, stamp_opt_in: bool = True
) -> TrustConfig:
    """Keyless trust with this TSA; ``stamp_opt_in`` is attestation.keylessTimestampWithoutTlog
    (what ``stella attest verify --insecure-ignore-tlog`` sets), needed for a timestamp to replace
    the log entry."""
    doc = test_sigstore.trusted_root()
    if with_tsa:
        doc["timestampAuthorities"] = [tsa_entry(tsa)]
    roots = SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), trusted_root_source="trusted_root.json", offline=True)
    return TrustConfig(
        authorities=(KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY),),
        require_tlog=require_tlog,
        sigstore=roots,
        keyless_timestamp_without_tlog=stamp_opt_in and not require_tlog,
    )


def _keyless_candidate(att: Any, ann: str, *, with_bundle: bool = False) -> Any:
    c = att.legacy(with_bundle=with_bundle)
    return replace(c, cosign=replace(c.cosign, rfc3161_timestamp=ann))


def test_keyless_certificate_expired_now_verifies_at_the_timestamp_time(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # a 10-minute certificate whose life ends ~2 s from now: timestamp it, then let it expire
    unsigned_time = statement(predicate_type="https://example.com/custom/v1", predicate={"k": "v"})  # no scannedAt
    att = test_sigstore.attest(unsigned_time, not_before=now - dt.timedelta(minutes=10) + dt.timedelta(seconds=2))
    der = tsa.timestamp(att.envelope)
    while dt.datetime.now(dt.UTC) <= att.leaf.cert.not_valid_after_utc:
        time.sleep(0.2)
    assert att.leaf.cert.not_valid_after_utc < dt.datetime.now(dt.UTC)  # expired now
    res = verify_candidate(_keyless_candidate(att, annotation(der)), IMAGE_DIGEST, _keyless(test_sigstore, tsa))
    assert res.verified, res.errors
    assert res.signers[0].kind == "keyless" and res.signers[0].subject == IDENTITY
    assert res.timestamps and res.tlog.to_json() == {"verified": False, "required": False}
    assert res.created == res.timestamps[0].time and res.created_signed


def test_keyless_rejects_certificate_not_valid_at_the_timestamp_time(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    att = test_sigstore.attest(statement(), not_before=old)  # lived 10 minutes, 2 hours ago
    res = verify_candidate(_keyless_candidate(att, annotation(tsa.timestamp(first_sig(att.envelope)))), IMAGE_DIGEST, _keyless(test_sigstore, tsa))
    # issue 17: a timestamp outside the certificate's validity is TIMESTAMP_INVALID on every path
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID"
    assert "outside the signing certificate's validity" in res.errors[0].message


def test_keyless_rejects_token_from_untrusted_tsa(test_sigstore: TestSigstore, tsa: TsaServer, other_tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    res = verify_candidate(_keyless_candidate(att, annotation(other_tsa.timestamp(att.envelope))), IMAGE_DIGEST, _keyless(test_sigstore, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_keyless_rejects_tampered_token(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    der = bytearray(tsa.timestamp(att.envelope))
    der[-5] ^= 0x01
    res = verify_candidate(_keyless_candidate(att, annotation(bytes(der))), IMAGE_DIGEST, _keyless(test_sigstore, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_keyless_rejects_token_over_other_bytes(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    res = verify_candidate(_keyless_candidate(att, annotation(tsa.timestamp(b"x" + att.envelope))), IMAGE_DIGEST, _keyless(test_sigstore, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_keyless_rejects_tsa_outside_its_validity_window(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    doc = test_sigstore.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa, start="2020-01-01T00:00:00Z", end="2021-01-01T00:00:00Z")]
    trust = replace(_keyless(test_sigstore, tsa), sigstore=SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), offline=True))
    res = verify_candidate(_keyless_candidate(att, annotation(tsa.timestamp(att.envelope))), IMAGE_DIGEST, trust)
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_keyless_timestamp_does_not_replace_the_log_when_require_tlog(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    cand = _keyless_candidate(att, annotation(tsa.timestamp(att.envelope)))
    res = verify_candidate(cand, IMAGE_DIGEST, _keyless(test_sigstore, tsa, require_tlog=True))
    assert res.errors[0].reason == "TLOG_MISSING"


def test_keyless_timestamp_does_not_replace_the_log_without_the_opt_in(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """requireTlog: false relaxes key signers only: a keyless attestation that was never logged
    stays TLOG_MISSING, even with a valid timestamp from a configured TSA, unless
    keylessTimestampWithoutTlog is set (the same attestation then verifies)."""
    att = test_sigstore.attest(statement())
    cand = _keyless_candidate(att, annotation(tsa.timestamp(att.envelope)))
    res = verify_candidate(cand, IMAGE_DIGEST, _keyless(test_sigstore, tsa, stamp_opt_in=False))
    assert not res.verified and res.errors[0].reason == "TLOG_MISSING", res.errors
    assert "keylessTimestampWithoutTlog" in res.errors[0].hint
    assert verify_candidate(cand, IMAGE_DIGEST, _keyless(test_sigstore, tsa)).verified


def test_provider_config_require_tlog_false_with_tsa_still_needs_the_log_for_keyless(
    test_sigstore: TestSigstore, tsa: TsaServer, tmp_path: Any
) -> None:
    """The provider's own configuration path (parse_config): requireTlog: false and a TSA in the
    trusted root do not make a keyless attestation that was never logged acceptable; only the
    explicit attestation.keylessTimestampWithoutTlog: true does."""
    from stellaops.config import describe, parse_config
    from stellaops.errors import ConfigError

    doc = test_sigstore.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa)]
    (tmp_path / "trusted_root.json").write_text(json.dumps(doc))
    base = (
        "attestation:\n"
        f"  trustRoots: {{offline: true, bundlePath: {tmp_path / 'trusted_root.json'}}}\n"
        f"  authorities: [{{name: ci, keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}'}}}}]\n"
    )
    att = test_sigstore.attest(statement())
    cand = _keyless_candidate(att, annotation(tsa.timestamp(att.envelope)))  # timestamped, never logged
    relaxed = parse_config(base + "  requireTlog: false\n", env={})
    res = verify_candidate(cand, IMAGE_DIGEST, relaxed.trust)
    assert not res.verified and res.errors[0].reason == "TLOG_MISSING", res.errors
    opted = parse_config(base + "  requireTlog: false\n  keylessTimestampWithoutTlog: true\n", env={})
    res = verify_candidate(cand, IMAGE_DIGEST, opted.trust)
    assert res.verified and res.timestamps and res.tlog.to_json() == {"verified": False, "required": False}, res.errors
    assert opted.trust.fingerprint != relaxed.trust.fingerprint  # cached verdicts of one are never served for the other
    assert describe(opted)["keylessTimestampWithoutTlog"] is True and describe(relaxed)["keylessTimestampWithoutTlog"] is False
    with pytest.raises(ConfigError) as info:  # contradicts requireTlog: true
        parse_config(base + "  requireTlog: true\n  keylessTimestampWithoutTlog: true\n", env={})
    assert "attestation.keylessTimestampWithoutTlog" in str(info.value) and "requireTlog: false" in info.value.hint


def test_keyless_timestamp_ignored_without_tsa_so_the_log_is_needed(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    res = verify_candidate(_keyless_candidate(att, annotation(tsa.timestamp(att.envelope))), IMAGE_DIGEST, _keyless(test_sigstore, tsa, with_tsa=False))
    assert res.errors[0].reason == "TLOG_MISSING"


def test_keyless_with_log_entry_and_timestamp_reports_both(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement())
    cand = _keyless_candidate(att, annotation(tsa.timestamp(first_sig(att.envelope))), with_bundle=True)
    res = verify_candidate(cand, IMAGE_DIGEST, _keyless(test_sigstore, tsa, require_tlog=True))
    assert res.verified, res.errors
    assert res.tlog.verified and res.tlog.required and len(res.timestamps) == 1


def test_keyless_with_log_rejects_certificate_not_valid_at_the_timestamp_time(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """Log time inside the certificate's life, timestamp (now) outside it: cosign checks both."""
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    att = test_sigstore.attest(statement(), not_before=old, integrated_time=int((old + dt.timedelta(minutes=1)).timestamp()))
    cand = _keyless_candidate(att, annotation(tsa.timestamp(att.envelope)), with_bundle=True)
    res = verify_candidate(cand, IMAGE_DIGEST, _keyless(test_sigstore, tsa, require_tlog=True))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"
    # without the timestamp, the same attestation verifies on its log time
    assert verify_candidate(att.legacy(), IMAGE_DIGEST, _keyless(test_sigstore, tsa, require_tlog=True)).verified


# --------------------------------------------------------------------------- key-signed sigstore bundles


def _key_bundle(env: bytes, *tokens: bytes) -> Any:
    doc: dict[str, Any] = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": json.loads(env),
    }
    if tokens:
        doc["verificationMaterial"]["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(t).decode()} for t in tokens]
        }
    return candidate(json.dumps(doc).encode(), kind="bundle", source="bundle")


def test_key_bundle_timestamps_over_the_signature_verify(tsa: TsaServer, signer: Any, env: bytes) -> None:
    """What cosign v3 attest --key --timestamp-server-url (new bundle format) and stella attest sign write."""
    cand = _key_bundle(env, tsa.timestamp(first_sig(env)), tsa.timestamp(first_sig(env), cert_req=True))
    res = verify_candidate(cand, IMAGE_DIGEST, trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.verified and len(res.timestamps) == 2, res.errors


def test_key_bundle_rejects_a_timestamp_over_the_envelope_json(tsa: TsaServer, signer: Any, env: bytes) -> None:
    """A bundle keeps no exact envelope bytes: only the signature form binds its token."""
    res = verify_candidate(_key_bundle(env, tsa.timestamp(env)), IMAGE_DIGEST, trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_key_bundle_rejects_one_bad_timestamp_among_good_ones(tsa: TsaServer, other_tsa: TsaServer, signer: Any, env: bytes) -> None:
    cand = _key_bundle(env, tsa.timestamp(first_sig(env)), other_tsa.timestamp(first_sig(env)))
    res = verify_candidate(cand, IMAGE_DIGEST, trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_key_bundle_rejects_a_non_base64_timestamp(tsa: TsaServer, signer: Any, env: bytes) -> None:
    doc = json.loads(_key_bundle(env, b"x").data)
    doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"] = "%%%"
    cand = candidate(json.dumps(doc).encode(), kind="bundle", source="bundle")
    res = verify_candidate(cand, IMAGE_DIGEST, trust_for(key_authority(signer), sigstore=tsa_roots(tsa)))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_key_bundle_timestamps_ignored_without_tsa(tsa: TsaServer, signer: Any, env: bytes) -> None:
    res = verify_candidate(_key_bundle(env, b"junk"), IMAGE_DIGEST, trust_for(key_authority(signer)))
    assert res.verified and not res.timestamps


@pytest.mark.parametrize("who", ["untrusted-ca", "other-identity"])
def test_timestamp_over_an_untrusted_certificates_signature_is_refused(tsa: TsaServer, test_sigstore: TestSigstore, who: str) -> None:
    """Review 3, point 6: an envelope signed by a configured key and by a certificate that fails
    its checks (a CA nobody trusts, an identity no authority names), with a timestamp over the
    certificate's signature. Before: that signature counted as verified, so the timestamp dated
    the key-signed attestation (``created_signed``, ``timestamps``). Now a certificate's
    signatures count only after chain, SCT and identity pass: the timestamp covers no trusted
    signature → TIMESTAMP_INVALID (refused, like any timestamp that does not verify)."""
    from stellaops import dsse
    from stellaops.verify import keys

    from tests.fixtures.sigstore import pem

    rk = make_private_key("p256")
    payload = statement(predicate_type="https://slsa.dev/provenance/v1", predicate={"buildDefinition": {}})  # no signed time of its own
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    other = TestSigstore().issue() if who == "untrusted-ca" else test_sigstore.issue(identity="https://evil.example/ci")
    osig = keys.sign(other.key, pae)
    sigs = [{"sig": base64.b64encode(s).decode()} for s in (keys.sign(rk, pae), osig)]
    env = json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO, "signatures": sigs},
                     separators=(",", ":")).encode()  # fmt: skip
    cand = candidate(env, cosign=CosignLayerAnnotations(rfc3161_timestamp=annotation(tsa.timestamp(osig)), certificate=pem(other.cert),
                                                        chain="".join(pem(c) for c in other.chain)))  # fmt: skip
    roots = replace(test_sigstore.roots(), tsa_chain_pem=tsa.chain_pem)
    keyless = KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY)
    res = verify_candidate(cand, IMAGE_DIGEST, trust_for(key_authority(rk), keyless, sigstore=roots))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res
    assert not res.timestamps and not res.created_signed
