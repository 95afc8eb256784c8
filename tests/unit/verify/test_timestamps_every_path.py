"""Issue 17 item 2: every RFC 3161 timestamp present, on every path — a key-signed bundle, a
certificate-signed bundle (whatever its log-entry kind), a legacy ``rfc3161timestamp``
annotation — is verified against the trusted TSAs and must lie inside the signing certificate's
validity; any failure is TIMESTAMP_INVALID; verified ones are listed in ``timestamps``.

Real tokens from the real sigstore timestamp-server (``tsa`` fixture), certificates and log
entries from the offline test Sigstore."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest
from stellaops.candidate import SOURCE_BUNDLE, Candidate
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.fixtures.tsa import TsaServer
from tests.unit.verify.test_timestamp import annotation, tsa_entry

NO_SIGNED_TIME = {"predicate_type": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}


def _trust(ts: TestSigstore, tsa: TsaServer, *, require_tlog: bool = True) -> TrustConfig:
    doc = ts.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa)]
    return TrustConfig(
        authorities=(KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY),),
        require_tlog=require_tlog,
        sigstore=SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), trusted_root_source="trusted_root.json", offline=True),
    )


def _bundle(att: Any, *tokens: bytes) -> Candidate:
    return Candidate(kind="bundle", data=att.bundle_json(timestamps=tokens), source=SOURCE_BUNDLE, attached_to="")


def _expired_then_logged(ts: TestSigstore, entry_kind: str) -> Any:
    """A certificate that lived 10 minutes two hours ago, logged while it was valid."""
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    return ts.attest(statement(**NO_SIGNED_TIME), not_before=old, integrated_time=int((old + dt.timedelta(minutes=1)).timestamp()), entry_kind=entry_kind)


@pytest.mark.parametrize("entry_kind", ["intoto", "dsse"])
def test_keyless_bundle_with_a_timestamp_after_the_certificate_expired_is_refused(
    test_sigstore: TestSigstore, tsa: TsaServer, entry_kind: str
) -> None:
    """The issue's case: before, with an intoto entry, this verified with ``timestamps: null``
    (a certificate-signed bundle's timestamps were left to sigstore-python, which runs for dsse
    and Rekor v2 entries only)."""
    att = _expired_then_logged(test_sigstore, entry_kind)
    trust = _trust(test_sigstore, tsa)
    assert verify_candidate(att.bundle(), IMAGE_DIGEST, trust).verified  # the log time alone is fine
    res = verify_candidate(_bundle(att, tsa.timestamp(att.signature)), IMAGE_DIGEST, trust)
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors
    assert "validity" in res.errors[0].message
    assert not res.timestamps


@pytest.mark.parametrize("entry_kind", ["intoto", "dsse"])
def test_keyless_bundle_timestamps_are_verified_and_listed(test_sigstore: TestSigstore, tsa: TsaServer, entry_kind: str) -> None:
    att = test_sigstore.attest(statement(**NO_SIGNED_TIME), entry_kind=entry_kind)
    res = verify_candidate(_bundle(att, tsa.timestamp(att.signature), tsa.timestamp(att.signature, cert_req=True)), IMAGE_DIGEST,
                           _trust(test_sigstore, tsa))  # fmt: skip
    assert res.verified, res.errors
    assert len(res.timestamps) == 2 and res.to_json()["timestamps"][0]["time"]
    assert res.tlog.verified  # the log entry still counts


@pytest.mark.parametrize("entry_kind", ["intoto", "dsse"])
def test_keyless_bundle_with_an_untrusted_tsas_timestamp_is_refused(
    test_sigstore: TestSigstore, tsa: TsaServer, other_tsa: TsaServer, entry_kind: str
) -> None:
    att = test_sigstore.attest(statement(), entry_kind=entry_kind)
    res = verify_candidate(_bundle(att, tsa.timestamp(att.signature), other_tsa.timestamp(att.signature)), IMAGE_DIGEST, _trust(test_sigstore, tsa))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors


def test_keyless_bundle_with_a_timestamp_over_other_bytes_is_refused(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement(), entry_kind="intoto")
    res = verify_candidate(_bundle(att, tsa.timestamp(att.envelope)), IMAGE_DIGEST, _trust(test_sigstore, tsa))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors


def test_keyless_bundle_with_a_tampered_timestamp_is_refused(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    att = test_sigstore.attest(statement(), entry_kind="intoto")
    der = bytearray(tsa.timestamp(att.signature))
    der[-5] ^= 1
    res = verify_candidate(_bundle(att, bytes(der)), IMAGE_DIGEST, _trust(test_sigstore, tsa))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors


def test_legacy_keyless_timestamp_after_the_certificate_expired_is_timestamp_invalid(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """The legacy annotation path: the same rule and the same reason."""
    att = _expired_then_logged(test_sigstore, "dsse")
    cand = att.legacy()
    cand = replace(cand, cosign=replace(cand.cosign, rfc3161_timestamp=annotation(tsa.timestamp(att.envelope))))
    res = verify_candidate(cand, IMAGE_DIGEST, _trust(test_sigstore, tsa))
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors


def test_only_the_first_timestamp_inside_the_validity_is_not_enough(test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """Two timestamps: one made while the certificate was valid would pass; every timestamp
    present must lie inside the validity. Both tokens are real; the early one is made right
    away, the late one once the 10-minute certificate has been made to lie in the past is not
    possible with a real TSA, so the early one comes from a certificate still valid now and the
    late one after it expired (a short-lived certificate)."""
    import time

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    att = test_sigstore.attest(statement(**NO_SIGNED_TIME), not_before=now - dt.timedelta(minutes=10) + dt.timedelta(seconds=2), entry_kind="intoto",
                               integrated_time=int(now.timestamp()))  # fmt: skip
    early = tsa.timestamp(att.signature)
    while dt.datetime.now(dt.UTC) <= att.leaf.cert.not_valid_after_utc + dt.timedelta(seconds=1):
        time.sleep(0.2)
    late = tsa.timestamp(att.signature)
    trust = _trust(test_sigstore, tsa)
    assert verify_candidate(_bundle(att, early), IMAGE_DIGEST, trust).verified
    res = verify_candidate(_bundle(att, early, late), IMAGE_DIGEST, trust)
    assert not res.verified and res.errors[0].reason == "TIMESTAMP_INVALID", res.errors


# --------------------------------------------------------------------------- key signers: cosign --key --use-signed-timestamps


def _key_trust(signer: Any, tsa: TsaServer | None, *, stamps: bool = True) -> TrustConfig:
    from tests.fixtures.keys import key_authority, trust_for

    auth = replace(key_authority(signer), use_signed_timestamps=stamps)
    return trust_for(auth, sigstore=SigstoreRoots(tsa_chain_pem=tsa.chain_pem, offline=True) if tsa else None)


def test_key_signer_with_use_signed_timestamps_needs_a_verified_timestamp(tsa: TsaServer) -> None:
    from tests.fixtures.keys import envelope_bytes, make_private_key
    from tests.unit.verify.test_timestamp import _key_bundle, first_sig

    signer = make_private_key("p256")
    env = envelope_bytes(statement(), [signer])
    res = verify_candidate(_key_bundle(env, tsa.timestamp(first_sig(env))), IMAGE_DIGEST, _key_trust(signer, tsa))
    assert res.verified and len(res.timestamps) == 1, res.errors
    res = verify_candidate(_key_bundle(env), IMAGE_DIGEST, _key_trust(signer, tsa))
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "carries none" in res.errors[0].message
    res = verify_candidate(_key_bundle(env, tsa.timestamp(first_sig(env))), IMAGE_DIGEST, _key_trust(signer, None))
    assert res.errors[0].reason == "TIMESTAMP_INVALID" and "no timestamp authority" in res.errors[0].message
    # without the option the same untimestamped bundle verifies (timestamps are optional)
    assert verify_candidate(_key_bundle(env), IMAGE_DIGEST, _key_trust(signer, tsa, stamps=False)).verified


def test_cli_use_signed_timestamps_applies_to_key_authorities_and_config_key(tsa: TsaServer, tmp_path: Any) -> None:
    from stellaops.cli.trust_flags import apply_trust_flags, trust_flag_fragment
    from stellaops.config import parse_config
    from stellaops.verify import keys

    from tests.fixtures.keys import envelope_bytes, make_private_key
    from tests.unit.verify.test_timestamp import _key_bundle

    signer = make_private_key("p256")
    env = envelope_bytes(statement(), [signer])
    trust = apply_trust_flags(_key_trust(signer, tsa, stamps=False), trust_flag_fragment(gh_use_signed_timestamps=True, gh_insecure_ignore_sct=True))
    assert trust.key_authorities[0].use_signed_timestamps
    assert verify_candidate(_key_bundle(env), IMAGE_DIGEST, trust).errors[0].reason == "TIMESTAMP_INVALID"
    (tmp_path / "k.pub").write_bytes(keys.public_key_pem(signer.public_key()))
    cfg = parse_config(f"attestation:\n  requireTlog: false\n  authorities: [{{name: k, key: {{path: {tmp_path / 'k.pub'}, useSignedTimestamps: true}}}}]\n", env={})
    assert cfg.trust.key_authorities[0].use_signed_timestamps
    assert verify_candidate(_key_bundle(env), IMAGE_DIGEST, cfg.trust).errors[0].reason == "TIMESTAMP_INVALID"
    plain = parse_config(f"attestation:\n  requireTlog: false\n  authorities: [{{name: k, key: {{path: {tmp_path / 'k.pub'}}}}}]\n", env={})
    assert plain.trust.fingerprint != cfg.trust.fingerprint
