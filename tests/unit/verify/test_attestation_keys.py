"""verify_candidate with key authorities (no tlog required): the verdict and every forgery."""

from __future__ import annotations

import base64
import json

from stellaops import dsse
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.keys import (
    IMAGE_DIGEST,
    OTHER_DIGEST,
    SCAN_TYPE,
    candidate,
    envelope_bytes,
    key_authority,
    make_private_key,
    statement,
    trust_for,
)


def _reasons(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.reason for e in result.errors]


def test_every_key_type_verifies(any_key) -> None:  # type: ignore[no-untyped-def]
    kind, private_key = any_key
    env = envelope_bytes(statement(), [private_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(private_key, name=kind)))
    assert result.verified, result.errors
    assert result.predicate_type == SCAN_TYPE
    assert [s.to_json() for s in result.signers] == [{"kind": "key", "authority": kind, "keyId": key_authority(private_key).key_id}]
    assert result.created == "2026-11-24T10:00:00Z" and result.created_signed
    assert result.tlog.verified is False
    assert result.envelope_digest.startswith("sha256:") and result.errors == ()
    assert result.to_json()["predicate"]["scanner"]["name"] == "trivy"


def test_statement_v1_verifies(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(statement_type=dsse.STATEMENT_V1), [p256_key])
    assert verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key))).verified


def test_lists_every_authority_that_verified(p256_key) -> None:  # type: ignore[no-untyped-def]
    other = make_private_key("ed25519")
    env = envelope_bytes(statement(), [p256_key, other])
    trust = trust_for(key_authority(p256_key, "a"), key_authority(other, "b"), key_authority(make_private_key("p256"), "c"))
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust)
    assert result.verified
    assert [s.authority for s in result.signers] == ["a", "b"]


def test_rejects_signature_by_unknown_key(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [make_private_key("p256")])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert not result.verified and _reasons(result) == ["SIGNATURE_INVALID"]
    assert result.predicate is None and result.signers == () and result.predicate_summary == {}
    # the claimed (unsigned) type is reported so denials can name the cause; nothing else of the content
    assert result.predicate_type == "stellaops.io/predicates/scan-result@v1"
    assert "predicate" not in result.to_json()


def test_rejects_when_only_an_untrusted_signature_is_valid(p256_key) -> None:  # type: ignore[no-untyped-def]
    untrusted = make_private_key("p256")
    env = json.loads(envelope_bytes(statement(), [untrusted, p256_key]))
    # corrupt the trusted signer's signature; the untrusted one stays valid
    sig = bytearray(base64.b64decode(env["signatures"][1]["sig"]))
    sig[-1] ^= 1
    env["signatures"][1]["sig"] = base64.b64encode(bytes(sig)).decode()
    result = verify_candidate(candidate(json.dumps(env).encode()), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert not result.verified and _reasons(result) == ["SIGNATURE_INVALID"]


def test_rejects_payload_swapped_after_signing(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = json.loads(envelope_bytes(statement(), [p256_key]))
    env["payload"] = base64.b64encode(statement(predicate={"scannedAt": "2030-01-01T00:00:00Z", "findings": []})).decode()
    result = verify_candidate(candidate(json.dumps(env).encode()), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["SIGNATURE_INVALID"]


def test_rejects_payload_type_changed_after_signing(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key], payload_type=dsse.PAYLOAD_TYPE_INTOTO, signed_payload_type="application/json")
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["SIGNATURE_INVALID"]


def test_rejects_payload_type_not_in_toto(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key], payload_type="application/json")
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["PAYLOAD_TYPE_INVALID"]


def test_rejects_subject_of_another_image(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(digest=OTHER_DIGEST), [p256_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["SUBJECT_MISMATCH"]
    assert result.signers == () and result.predicate is None


def test_rejects_duplicate_keys_in_the_envelope(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key]).decode()
    forged = env.replace('"payloadType"', '"payloadType":"application/json","payloadType"', 1)
    result = verify_candidate(candidate(forged.encode()), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["MALFORMED_ENVELOPE"]


def test_rejects_duplicate_keys_in_the_signed_statement(p256_key) -> None:  # type: ignore[no-untyped-def]
    st = statement().decode()
    forged = st.replace('"predicateType"', '"predicateType":"https://evil.example/x","predicateType"', 1).encode()
    env = envelope_bytes(forged, [p256_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert _reasons(result) == ["MALFORMED_STATEMENT"]


def test_rejects_snake_case_predicate_type(p256_key) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(statement())
    doc["predicate_type"] = doc.pop("predicateType")
    env = envelope_bytes(json.dumps(doc).encode(), [p256_key])
    assert _reasons(verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))) == ["MALFORMED_STATEMENT"]


def test_rejects_when_no_authority_is_configured(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for())
    assert _reasons(result) == ["SIGNATURE_INVALID"] and "none configured" in result.errors[0].message


def test_require_tlog_without_entry_is_tlog_missing(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key), require_tlog=True))
    assert _reasons(result) == ["TLOG_MISSING"] and "insecure-ignore-tlog" in result.errors[0].hint


def test_garbage_never_raises(p256_key) -> None:  # type: ignore[no-untyped-def]
    trust = trust_for(key_authority(p256_key))
    for data in (b"", b"null", b"[]", b'{"payload":1}', b"\xff\xfe", b"{" * 5000, b'{"payload":"","payloadType":"x","signatures":[]}'):
        for kind in ("dsse", "bundle", "weird"):
            result = verify_candidate(candidate(data, kind=kind), IMAGE_DIGEST, trust)
            assert not result.verified and result.errors


def test_created_falls_back_to_unsigned_annotation(p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(predicate={"note": "no time"}), [p256_key])
    result = verify_candidate(candidate(env, created="2026-01-01T00:00:00Z"), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert result.verified and result.created == "2026-01-01T00:00:00Z" and not result.created_signed


def test_vex_timestamp_is_the_signed_created_time(p256_key) -> None:  # type: ignore[no-untyped-def]
    vex = {"author": "sec@example.com", "timestamp": "2026-11-20T08:00:00Z", "statements": []}
    env = envelope_bytes(statement(predicate_type="stellaops.io/predicates/vex@v1", predicate=vex), [p256_key])
    result = verify_candidate(candidate(env), IMAGE_DIGEST, trust_for(key_authority(p256_key)))
    assert result.verified and result.created == "2026-11-20T08:00:00Z" and result.created_signed
