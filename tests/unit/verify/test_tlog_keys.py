"""Key signers with a Rekor entry (requireTlog on): legacy SET annotation and bundle tlogEntries."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from stellaops.candidate import Candidate, CosignLayerAnnotations
from stellaops.verify import keys
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.keys import IMAGE_DIGEST, envelope_bytes, key_authority, make_private_key, statement
from tests.fixtures.sigstore import RekorLog, TestSigstore, dsse_entry_body


def _logged(ss: TestSigstore, private_key: keys.PrivateKey, *, verifier_key: keys.PrivateKey | None = None, rekor: RekorLog | None = None):  # type: ignore[no-untyped-def]
    payload = statement()
    env = envelope_bytes(payload, [private_key])
    sigs = [base64.b64decode(s["sig"]) for s in json.loads(env)["signatures"]]
    pub_pem = keys.public_key_pem((verifier_key or private_key).public_key()).decode()  # type: ignore[arg-type]
    parts = (rekor or ss.rekor).add(dsse_entry_body(env, payload, sigs, pub_pem), int(time.time()))
    return env, parts


@pytest.mark.parametrize("kind", ["p256", "ed25519", "rsa2048"])
def test_key_signed_legacy_layer_with_set_verifies(test_sigstore: TestSigstore, kind: str) -> None:
    private_key = make_private_key(kind)
    env, parts = _logged(test_sigstore, private_key)
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=parts.cosign_bundle()))
    trust = test_sigstore.trust(key_authority(private_key), require_tlog=True)
    result = verify_candidate(cand, IMAGE_DIGEST, trust)
    assert result.verified, result.errors
    assert result.tlog.verified and result.tlog.log_index == parts.log_index and result.tlog.integrated_time == parts.integrated_time


def test_key_signed_bundle_with_tlog_entry_verifies(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env, parts = _logged(test_sigstore, p256_key)
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "anything"}, "tlogEntries": [parts.bundle_entry()]},
        "dsseEnvelope": json.loads(env),
    }
    cand = Candidate(kind="bundle", data=json.dumps(bundle).encode(), source="bundle", attached_to="")
    result = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert result.verified and result.tlog.verified, result.errors


def test_rejects_entry_recording_another_key(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env, parts = _logged(test_sigstore, p256_key, verifier_key=make_private_key("p256"))
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=parts.cosign_bundle()))
    result = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert [e.reason for e in result.errors] == ["TLOG_INVALID"] and "key or certificate" in result.errors[0].message


def test_rejects_layer_bytes_other_than_logged(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env, parts = _logged(test_sigstore, p256_key)
    reserialised = json.dumps(json.loads(env), indent=1).encode()  # same envelope, other bytes
    cand = Candidate(kind="dsse", data=reserialised, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=parts.cosign_bundle()))
    result = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert [e.reason for e in result.errors] == ["TLOG_INVALID"] and "envelopeHash" in result.errors[0].message


def test_rejects_set_by_unknown_log_but_ignores_it_without_require_tlog(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env, parts = _logged(test_sigstore, p256_key, rekor=RekorLog(ec.generate_private_key(ec.SECP256R1())))
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=parts.cosign_bundle()))
    strict = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert [e.reason for e in strict.errors] == ["TLOG_INVALID"]
    lax = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=False))
    assert lax.verified and lax.tlog.verified is False


def test_rejects_altered_log_index(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env, parts = _logged(test_sigstore, p256_key)
    doc = json.loads(parts.cosign_bundle())
    doc["Payload"]["logIndex"] += 1
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=json.dumps(doc)))
    result = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert [e.reason for e in result.errors] == ["TLOG_INVALID"]


@pytest.mark.parametrize("annotation", ["not json", "{}", '{"Payload": {"body": "!!"}}', '{"Payload": {"body": "e30=", "logID": "zz"}}'])
def test_malformed_rekor_annotation_is_tlog_invalid(test_sigstore: TestSigstore, p256_key, annotation: str) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key])
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="", cosign=CosignLayerAnnotations(rekor_bundle=annotation))
    result = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=True))
    assert [e.reason for e in result.errors] == ["TLOG_INVALID"]


def test_inclusion_proofs_for_every_position_of_small_trees() -> None:
    from stellaops.verify.tlog import TlogInvalid, leaf_hash, root_from_inclusion_proof
    from tests.fixtures.sigstore import _mth, _path

    for size in range(1, 18):
        leaves = [leaf_hash(b"%d" % i) for i in range(size)]
        root = _mth(leaves)
        for index in range(size):
            proof = tuple(_path(index, leaves))
            assert root_from_inclusion_proof(index, size, leaves[index], proof) == root
            if proof:  # a proof for another leaf, or a shortened one, does not reach the root
                other = (index + 1) % size
                try:
                    assert root_from_inclusion_proof(index, size, leaves[other], proof) != root
                except TlogInvalid:
                    pass
                with pytest.raises(TlogInvalid):
                    root_from_inclusion_proof(index, size, leaves[index], proof[:-1])
        with pytest.raises(TlogInvalid):
            root_from_inclusion_proof(size, size, leaves[0], ())


def test_tlog_required_flag_in_the_verdict(test_sigstore: TestSigstore, p256_key) -> None:  # type: ignore[no-untyped-def]
    env = envelope_bytes(statement(), [p256_key])
    cand = Candidate(kind="dsse", data=env, source="cosign-tag", attached_to="")
    lax = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(p256_key), require_tlog=False))
    assert lax.verified and lax.tlog.to_json() == {"verified": False, "required": False}
    keyless = verify_candidate(test_sigstore.attest(statement()).legacy(), IMAGE_DIGEST, test_sigstore.trust(require_tlog=False))
    assert keyless.verified and keyless.tlog.to_json()["required"] is True and keyless.tlog.verified
