"""Keyless verification against the offline test Sigstore: both carriers pass, each forgery
fails with its reason."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from stellaops.trust import KeyAuthority, KeylessAuthority
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.keys import IMAGE_DIGEST, OTHER_DIGEST, SCAN_TYPE, key_authority, make_private_key, statement
from tests.fixtures.sigstore import EMAIL, IDENTITY, ISSUER, FulcioCA, RekorLog, TestSigstore

CARRIERS = ("legacy", "bundle")


def _verify(ss: TestSigstore, att, carrier: str, *authorities, require_tlog: bool = True):  # type: ignore[no-untyped-def]
    cand = att.legacy() if carrier == "legacy" else att.bundle()
    return verify_candidate(cand, IMAGE_DIGEST, ss.trust(*authorities, require_tlog=require_tlog))


def _reasons(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.reason for e in result.errors]


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("issuer_ext", ["v1", "v2", "both"])
def test_keyless_attestation_verifies(test_sigstore: TestSigstore, carrier: str, issuer_ext: str) -> None:
    att = test_sigstore.attest(statement(), issuer_ext=issuer_ext)
    result = _verify(test_sigstore, att, carrier)
    assert result.verified, result.errors
    assert [s.to_json() for s in result.signers] == [{"kind": "keyless", "authority": "ci", "issuer": ISSUER, "subject": IDENTITY}]
    assert result.tlog.verified and result.tlog.log_index == att.entry.log_index
    assert result.tlog.integrated_time == att.entry.integrated_time
    assert result.predicate_type == SCAN_TYPE


@pytest.mark.parametrize("carrier", CARRIERS)
def test_copies_in_bundle_and_legacy_layer_share_envelope_digest(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement())
    a = verify_candidate(att.legacy(), IMAGE_DIGEST, test_sigstore.trust())
    b = verify_candidate(att.bundle(), IMAGE_DIGEST, test_sigstore.trust())
    assert a.envelope_digest == b.envelope_digest


def test_email_identity_and_regexps(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), identity=EMAIL, issuer="https://accounts.google.com")
    auth = KeylessAuthority(name="people", issuer_regexp=r"https://accounts\.google\.com", subject_regexp=r".*@acme\.example")
    result = _verify(test_sigstore, att, "legacy", auth)
    assert result.verified and result.signers[0].subject == EMAIL


def test_time_without_scanned_at_is_the_integrated_time(test_sigstore: TestSigstore) -> None:
    when = int(time.time()) - 86400
    start = dt.datetime.fromtimestamp(when - 60, dt.timezone.utc)
    att = test_sigstore.attest(statement(predicate={"x": 1}), integrated_time=when, not_before=start)
    result = _verify(test_sigstore, att, "legacy")
    expected = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.errors == () and result.created == expected and result.created_signed


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_wrong_identity(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), identity="https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main")
    result = _verify(test_sigstore, att, carrier)
    assert _reasons(result) == ["IDENTITY_MISMATCH"] and "evil" in result.errors[0].message


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_wrong_issuer(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), issuer="https://issuer.evil.example")
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["IDENTITY_MISMATCH"]


def test_rejects_wrong_issuer_in_the_v2_extension(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), issuer="https://issuer.evil.example", issuer_ext="v2")
    assert _reasons(_verify(test_sigstore, att, "legacy")) == ["IDENTITY_MISMATCH"]


def test_rejects_certificate_with_two_different_issuers(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), issuer_ext="both", v2_issuer="https://issuer.evil.example")
    assert _reasons(_verify(test_sigstore, att, "legacy")) == ["CERTIFICATE_INVALID"]


def test_rejects_regexp_that_does_not_match(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    auth = KeylessAuthority(name="ci", issuer=ISSUER, subject_regexp=r"https://github\.com/other/.*")
    assert _reasons(_verify(test_sigstore, att, "legacy", auth)) == ["IDENTITY_MISMATCH"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_substring_match_of_unanchored_regexp(test_sigstore: TestSigstore, carrier: str) -> None:
    # cosign's Go MatchString would accept main-evil for this pattern; we match the whole value
    att = test_sigstore.attest(statement(), identity=IDENTITY + "-evil")
    auth = KeylessAuthority(name="ci", issuer=ISSUER, subject_regexp=r"https://github\.com/acme/app/.*@refs/heads/main")
    result = _verify(test_sigstore, att, carrier, auth)
    assert _reasons(result) == ["IDENTITY_MISMATCH"]
    ok = test_sigstore.attest(statement())
    assert _verify(test_sigstore, ok, carrier, auth).verified


def test_issuer_substring_is_not_enough(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement(), issuer=ISSUER + ".evil.example")
    auth = KeylessAuthority(name="ci", issuer_regexp=r"https://token\.actions\.githubusercontent\.com", subject=IDENTITY)
    assert _reasons(_verify(test_sigstore, att, "legacy", auth)) == ["IDENTITY_MISMATCH"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_certificate_expired_at_integrated_time(test_sigstore: TestSigstore, carrier: str) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2)
    att = test_sigstore.attest(statement(), not_before=start, integrated_time=int(time.time()))
    result = _verify(test_sigstore, att, carrier)
    assert _reasons(result) == ["CERTIFICATE_INVALID"] and "not valid at the verified time" in result.errors[0].message


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_untrusted_ca(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), ca=FulcioCA.create("rogue"))
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["CERTIFICATE_INVALID"]


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("sct", ["none", "forged", "unknown-log"])
def test_rejects_missing_or_forged_sct(test_sigstore: TestSigstore, carrier: str, sct: str) -> None:
    att = test_sigstore.attest(statement(), sct=sct)
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["SCT_INVALID"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_forged_set(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), forge_set=True)
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["TLOG_INVALID"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_set_from_unknown_rekor_key(test_sigstore: TestSigstore, carrier: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    att = test_sigstore.attest(statement(), rekor=RekorLog(ec.generate_private_key(ec.SECP256R1())))
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["TLOG_INVALID"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_log_entry_for_another_envelope(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), entry_payload=statement(predicate={"other": True}))
    result = _verify(test_sigstore, att, carrier)
    assert _reasons(result) == ["TLOG_INVALID"] and "another" in result.errors[0].message


def test_rejects_missing_log_entry_for_keyless(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    result = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, test_sigstore.trust(require_tlog=False))
    assert _reasons(result) == ["TLOG_MISSING"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_tampered_payload(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), tamper_payload=statement(predicate={"scannedAt": "2030-01-01T00:00:00Z"}))
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["SIGNATURE_INVALID"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_subject_of_another_image(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(digest=OTHER_DIGEST))
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["SUBJECT_MISMATCH"]


@pytest.mark.parametrize("carrier", CARRIERS)
def test_rejects_payload_type_not_in_toto(test_sigstore: TestSigstore, carrier: str) -> None:
    att = test_sigstore.attest(statement(), payload_type="application/json")
    assert _reasons(_verify(test_sigstore, att, carrier)) == ["PAYLOAD_TYPE_INVALID"]


def test_rejects_duplicate_keys_in_bundle(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    raw = att.bundle_json().decode().replace('"mediaType"', '"mediaType": "x", "mediaType"', 1)
    cand = att.bundle()
    from dataclasses import replace

    result = verify_candidate(replace(cand, data=raw.encode()), IMAGE_DIGEST, test_sigstore.trust())
    assert _reasons(result) == ["MALFORMED_ENVELOPE"]


def test_untrusted_signer_when_no_keyless_authority(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    other = key_authority(make_private_key("p256"))
    result = _verify(test_sigstore, att, "legacy", other)
    assert _reasons(result) == ["UNTRUSTED_SIGNER"]


def test_keyless_and_key_signers_listed_together(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    key_auth = KeyAuthority(name="same-key", public_key=att.leaf.key.public_key(), key_id="sha256:x")
    result = _verify(test_sigstore, att, "legacy", key_auth, KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY))
    assert result.verified and {s.kind for s in result.signers} == {"key", "keyless"}


def test_bundle_without_inclusion_proof_still_needs_set_and_passes_our_checks_only_with_sigstore(test_sigstore: TestSigstore) -> None:
    # sigstore-python requires an inclusion proof in v0.3 bundles; so do we through it
    att = test_sigstore.attest(statement())
    result = verify_candidate(att.bundle(with_proof=False), IMAGE_DIGEST, test_sigstore.trust())
    assert not result.verified and _reasons(result) == ["TLOG_INVALID"]


def test_inclusion_proof_tampered(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    doc = json.loads(att.bundle_json())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["inclusionProof"]["logIndex"] = str(int(entry["inclusionProof"]["logIndex"]) - 1)
    from dataclasses import replace

    result = verify_candidate(replace(att.bundle(), data=json.dumps(doc).encode()), IMAGE_DIGEST, test_sigstore.trust())
    assert _reasons(result) == ["TLOG_INVALID"]


def test_random_corruption_never_raises_and_never_verifies_changed_content(test_sigstore: TestSigstore) -> None:
    import random

    att = test_sigstore.attest(statement())
    trust = test_sigstore.trust()
    original = json.loads(att.envelope)
    rng = random.Random(1234)
    for carrier in CARRIERS:
        base = att.legacy() if carrier == "legacy" else att.bundle()
        for _ in range(60):
            data = bytearray(base.data)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            from dataclasses import replace

            result = verify_candidate(replace(base, data=bytes(data)), IMAGE_DIGEST, trust)  # must not raise
            if result.verified:  # only a harmless change (e.g. in unused whitespace) may still verify
                assert result.predicate == json.loads(statement())["predicate"]
                assert original["payload"] in bytes(data).decode("utf-8", "replace")
            else:
                assert result.errors and result.signers == ()


def test_regexp_semantics_are_re2_whole_value() -> None:
    from stellaops.verify.keyless import compile_regexp, matches

    # alternation is anchored as a whole (a naive '^' + p + '$' would admit the second)
    assert matches("https://x.example", "", r"https://x\.example|https://y\.example")
    assert not matches("https://x.example-evil", "", r"https://x\.example|https://y\.example")
    assert not matches("evil-https://y.example", "", r"https://x\.example|https://y\.example")
    # explicit anchors change nothing
    assert matches(IDENTITY, "", r"^https://github\.com/acme/.*$")
    # a pattern that backtracks exponentially in Python's re runs in linear time in RE2
    assert compile_regexp(r"(a+)+b").fullmatch("a" * 50000) is None
    # exact values are compared exactly, not as patterns
    assert not matches("https://xexample", "https://x.example", "")


def test_invalid_re2_pattern_in_an_authority_is_identity_mismatch(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    auth = KeylessAuthority(name="ci", issuer=ISSUER, subject_regexp=r"(a)\1")
    assert _reasons(_verify(test_sigstore, att, "legacy", auth)) == ["IDENTITY_MISMATCH"]


def test_authority_without_constraints_admits_nobody(test_sigstore: TestSigstore) -> None:
    att = test_sigstore.attest(statement())
    assert _reasons(_verify(test_sigstore, att, "legacy", KeylessAuthority(name="empty"))) == ["IDENTITY_MISMATCH"]
