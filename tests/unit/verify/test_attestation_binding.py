"""Which signer a log entry vouches for (security review 3): every signer needs an entry that
records *that* signer — a key signer under requireTlog an entry with its key (or a certificate
holding that key), a keyless signer an entry with its certificate — and an extra entry in a
bundle never switches off sigstore-python's second check. Real entries from the offline test
Sigstore (SETs, Merkle proofs, checkpoints), real signatures, real sigstore-python.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from stellaops import dsse
from stellaops.candidate import Candidate
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify import keys, sigstore_bridge
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, key_authority, make_private_key, statement
from tests.fixtures.sigstore import (
    BUNDLE_V03,
    IDENTITY,
    ISSUER,
    LogEntryParts,
    TestSigstore,
    dsse_entry_body,
    pem,
)

CI = KeylessAuthority(name="ci", issuer=ISSUER, subject=IDENTITY)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _envelope(payload: bytes, *sigs: bytes) -> dict[str, Any]:
    return {"payload": _b64(payload), "payloadType": dsse.PAYLOAD_TYPE_INTOTO, "signatures": [{"sig": _b64(s)} for s in sigs]}


def _logged(ts: TestSigstore, payload: bytes, sigs: list[bytes], verifier_pem: str, when: int) -> LogEntryParts:
    """A valid ``dsse`` entry recording ``sigs`` over ``payload`` by ``verifier_pem``."""
    env = json.dumps(_envelope(payload, *sigs), separators=(",", ":")).encode()
    return ts.rekor.add(dsse_entry_body(env, payload, sigs, verifier_pem), when)


def _bundle(cert: Any, env: dict[str, Any], *entries: LogEntryParts) -> Candidate:
    doc = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [e.bundle_entry() for e in entries],
        },
        "dsseEnvelope": env,
    }
    return Candidate(kind="bundle", data=json.dumps(doc).encode(), source="bundle", attached_to="")


def _key_pem(private_key: Any) -> str:
    return keys.public_key_pem(private_key.public_key()).decode()


def _junk_intoto(ts: TestSigstore, key_pem: str, when: int) -> LogEntryParts:
    """A validly signed entry about nothing in particular (an `intoto` body that parses)."""
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "intoto",
            "spec": {
                "content": {"hash": {"algorithm": "sha256", "value": "00" * 32}, "payloadHash": {"algorithm": "sha256", "value": "00" * 32}},
                "publicKey": _b64(key_pem.encode()),
            },
        }
    )
    return ts.rekor.add(body, when)


# --------------------------------------------------------------------------- 1: a key signer's own entry


def _legacy(cert: Any, env: dict[str, Any], entry: LogEntryParts | None) -> Candidate:
    """The same envelope as a cosign legacy ``.att`` layer (several signatures are allowed there;
    its one entry must record the exact layer bytes and every signature)."""
    from stellaops.candidate import CosignLayerAnnotations

    return Candidate(kind="dsse", data=json.dumps(env, separators=(",", ":")).encode(), source="cosign-tag", attached_to="",
                     cosign=CosignLayerAnnotations(certificate=pem(cert), rekor_bundle=entry.cosign_bundle() if entry else ""))  # fmt: skip


def _logged_each(ts: TestSigstore, payload: bytes, signed: list[tuple[bytes, str]], when: int) -> LogEntryParts:
    """A valid ``dsse`` entry recording each (signature, verifier PEM) of a multi-signed envelope."""
    import hashlib

    env = json.dumps(_envelope(payload, *(sig for sig, _ in signed)), separators=(",", ":")).encode()
    body = rfc8785.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(env).hexdigest()},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        "signatures": [{"signature": _b64(sig), "verifier": _b64(v.encode())} for sig, v in signed]}})  # fmt: skip
    return ts.rekor.add(body, when)


def test_key_signer_require_tlog_is_not_met_by_an_entry_of_an_untrusted_certificate(test_sigstore: TestSigstore) -> None:
    """Reviewer's repro F: the key's signature was never logged; the envelope adds an attacker's
    signature and certificate (from a CA nobody trusts) and a valid entry that records only
    those. Before: verified with tlog verified+required. As a sigstore bundle that envelope is
    now refused outright (one signature per bundle, issue 17); as a legacy layer the entry is
    not the envelope's (it records a subset of its signatures) → TLOG_INVALID."""
    rk = make_private_key("p256")
    payload = statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    key_sig = keys.sign(rk, pae)
    attacker = TestSigstore().issue()
    asig = keys.sign(attacker.key, pae)
    entry = _logged(test_sigstore, payload, [asig], pem(attacker.cert), int(time.time()))
    trust = test_sigstore.trust(key_authority(rk), require_tlog=True)
    res = verify_candidate(_bundle(attacker.cert, _envelope(payload, key_sig, asig), entry), IMAGE_DIGEST, trust)
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE", res
    res = verify_candidate(_legacy(attacker.cert, _envelope(payload, key_sig, asig), entry), IMAGE_DIGEST, trust)
    assert not res.verified and res.errors[0].reason == "TLOG_INVALID", res
    assert not res.signers and not res.tlog.verified and res.tlog.required
    # the control: an entry of the whole envelope, recording the key for its signature
    own = _logged_each(test_sigstore, payload, [(key_sig, _key_pem(rk)), (asig, pem(attacker.cert))], int(time.time()))
    res = verify_candidate(_legacy(attacker.cert, _envelope(payload, key_sig, asig), own), IMAGE_DIGEST, trust)
    assert res.verified and [s.kind for s in res.signers] == ["key"] and res.tlog.log_index == own.log_index, res


def test_key_signer_without_require_tlog_keeps_its_verdict_but_not_that_entry(test_sigstore: TestSigstore) -> None:
    """requireTlog false: the key signer stands on its signature; the attacker's entry is not
    reported as this attestation's log entry."""
    rk = make_private_key("p256")
    payload = statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    attacker = TestSigstore().issue()
    asig = keys.sign(attacker.key, pae)
    entry = _logged(test_sigstore, payload, [asig], pem(attacker.cert), int(time.time()))
    cand = _legacy(attacker.cert, _envelope(payload, keys.sign(rk, pae), asig), entry)  # (a bundle: one signature only)
    res = verify_candidate(cand, IMAGE_DIGEST, test_sigstore.trust(key_authority(rk), require_tlog=False))
    assert res.verified and [s.kind for s in res.signers] == ["key"]
    assert not res.tlog.verified and res.tlog.log_index is None  # before: the attacker's entry, verified


# --------------------------------------------------------------------------- 2: keyless dated by its own entry


@pytest.mark.parametrize("extra", ["none", "junk-intoto", "junk-garbage-set"])
def test_keyless_signer_is_not_dated_by_the_key_signers_entry(test_sigstore: TestSigstore, extra: str) -> None:
    """Reviewer's repro B: the key's signature is logged (2 h ago); a certificate that expired
    since signs now, and its signature is in no log. Before (with any extra entry): both
    signers reported, the keyless one dated by the key's entry. Now only the key signer, whose
    entry records it."""
    ts = test_sigstore
    rk = make_private_key("p256")
    payload = statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    key_sig = keys.sign(rk, pae)
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    when = int(old.timestamp()) + 60
    key_entry = _logged(ts, payload, [key_sig], _key_pem(rk), when)
    leaf = ts.issue(not_before=old)
    env = _envelope(payload, key_sig, keys.sign(leaf.key, pae))
    entries = [key_entry]
    if extra != "none":
        junk = _junk_intoto(ts, _key_pem(rk), when)
        if extra == "junk-garbage-set":
            junk = dataclasses.replace(junk, set_=b"\x30\x00garbage")
        entries.append(junk)
    # a two-signature bundle is refused before any entry is read (issue 17: one signature per bundle)
    res = verify_candidate(_bundle(leaf.cert, env, *entries), IMAGE_DIGEST, ts.trust(key_authority(rk), CI, require_tlog=True))
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE", res.errors
    # as a legacy layer, the key's entry records only its own signature: not this envelope
    res = verify_candidate(_legacy(leaf.cert, env, key_entry), IMAGE_DIGEST, ts.trust(key_authority(rk), CI, require_tlog=True))
    assert not res.verified and res.errors[0].reason == "TLOG_INVALID" and res.tlog.required
    assert not any(s.kind == "keyless" for s in res.signers)
    # keyless alone: nothing dates the certificate → refused
    res = verify_candidate(_legacy(leaf.cert, env, key_entry), IMAGE_DIGEST, ts.trust(CI, require_tlog=True))
    assert not res.verified and res.errors[0].reason == "TLOG_INVALID" and res.tlog.required


# --------------------------------------------------------------------------- 3: sigstore-python always runs


@pytest.fixture()
def sigstore_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records the bundles handed to sigstore-python (the real verifier still runs)."""
    calls: list[dict[str, Any]] = []
    real = sigstore_bridge.verify_bundle

    def spy(bundle_json: bytes, *a: Any) -> None:
        calls.append(json.loads(bundle_json))
        real(bundle_json, *a)

    monkeypatch.setattr(sigstore_bridge, "verify_bundle", spy)
    return calls


@pytest.mark.parametrize("extra", ["none", "junk-intoto", "junk-garbage-set", "second-dsse"])
def test_an_extra_entry_does_not_switch_off_sigstore_python(
    test_sigstore: TestSigstore, sigstore_calls: list[dict[str, Any]], extra: str
) -> None:
    """Reviewer's point 3: a two-signature envelope (key + certificate), each logged correctly in
    its own right, is one sigstore-python refuses ("exactly one signature"). Before, one extra
    entry of a kind sigstore-python does not read turned that second check off and the bundle
    verified; now the check runs on a copy holding only the entry our checks accepted, so the
    outcome does not depend on what else is attached."""
    ts = test_sigstore
    rk = make_private_key("p256")
    payload = statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    key_sig = keys.sign(rk, pae)
    leaf = ts.issue()
    cert_sig = keys.sign(leaf.key, pae)
    now = int(time.time())
    cert_entry = _logged(ts, payload, [cert_sig], pem(leaf.cert), now)
    entries = [cert_entry]
    if extra == "second-dsse":
        entries.append(_logged(ts, payload, [key_sig], _key_pem(rk), now))
    elif extra != "none":
        junk = _junk_intoto(ts, _key_pem(rk), now)
        entries.append(dataclasses.replace(junk, set_=b"\x30\x00garbage") if extra == "junk-garbage-set" else junk)
    res = verify_candidate(_bundle(leaf.cert, _envelope(payload, key_sig, cert_sig), *entries), IMAGE_DIGEST,
                           ts.trust(key_authority(rk), CI, require_tlog=True))  # fmt: skip
    # since issue 17 our own parse refuses the two-signature bundle, whatever entries come with it
    # (before: sigstore-python was the only check that did); the one-entry copy handed to
    # sigstore-python is covered by the genuine-bundle control below
    assert not res.verified and res.errors[0].reason == "MALFORMED_ENVELOPE" and "exactly one signature" in res.errors[0].message, res
    assert sigstore_calls == []


def test_a_genuine_keyless_bundle_with_a_second_entry_is_checked_by_sigstore_python_with_one(
    test_sigstore: TestSigstore, sigstore_calls: list[dict[str, Any]]
) -> None:
    """The control: sigstore-python 4.5 refuses bundles with two entries; the copy it gets holds
    the accepted one, so a genuine bundle with an extra (junk) entry verifies, twice checked."""
    att = test_sigstore.attest(statement())
    junk = _junk_intoto(test_sigstore, pem(att.leaf.cert), att.entry.integrated_time)
    res = verify_candidate(_bundle(att.leaf.cert, json.loads(att.envelope), junk, att.entry), IMAGE_DIGEST, test_sigstore.trust())
    assert res.verified and res.tlog.verified and res.tlog.log_index == att.entry.log_index, res.errors
    assert [[int(e["logIndex"]) for e in c["verificationMaterial"]["tlogEntries"]] for c in sigstore_calls] == [[att.entry.log_index]]


# --------------------------------------------------------------------------- low: a truthful tlog result

CONFORMANCE = Path(__file__).resolve().parents[2] / "data" / "verify" / "conformance"


def test_rekor_v2_entry_is_verified_only_once_sigstore_python_passed_it() -> None:
    """Rekor v2 (no SET): the entry is sigstore-python's to verify. Before, the verdict said
    ``tlog.verified: true`` even when sigstore-python then refused the entry."""
    case = CONFORMANCE / "rekor2-dsse-mismatch-envelope_fail"
    data = (case / "bundle.sigstore.json").read_bytes()
    root = case / "trusted_root.json"
    if not root.exists():
        root = CONFORMANCE / "public-good-trusted_root.json"
    trust = TrustConfig(
        authorities=(KeylessAuthority(name="beacon", issuer="https://token.actions.githubusercontent.com", subject_regexp=".*"),),
        require_tlog=True,
        sigstore=SigstoreRoots(trusted_root_json=root.read_bytes(), trusted_root_source=str(root), offline=True),
    )
    digest = "sha256:" + json.loads(base64.b64decode(json.loads(data)["dsseEnvelope"]["payload"]))["subject"][0]["digest"]["sha256"]
    res = verify_candidate(Candidate(kind="bundle", data=data, source="imported", attached_to=""), digest, trust)
    assert not res.verified and res.errors[0].reason == "TLOG_INVALID"
    assert not res.tlog.verified and res.tlog.required


@pytest.mark.parametrize("require_tlog", [False, True])
def test_a_failed_keyless_attestation_says_the_log_was_required(test_sigstore: TestSigstore, require_tlog: bool) -> None:
    """Keyless always needs the log: ``tlog.required`` is true for a refused keyless attestation
    even with requireTlog false (before: the engine copied requireTlog into it)."""
    att = test_sigstore.attest(statement(), identity="https://evil.example/ci")
    res = verify_candidate(att.legacy(), IMAGE_DIGEST, test_sigstore.trust(require_tlog=require_tlog))
    assert res.errors[0].reason == "IDENTITY_MISMATCH" and res.tlog.required
    att = test_sigstore.attest(statement())
    res = verify_candidate(att.legacy(with_bundle=False), IMAGE_DIGEST, test_sigstore.trust(require_tlog=require_tlog))
    assert res.errors[0].reason == "TLOG_MISSING" and res.tlog.required


def test_engine_keeps_the_truthful_required_flag_of_a_failed_keyless_attestation(test_sigstore: TestSigstore, tmp_path: Path) -> None:
    """Before, the engine overwrote ``tlog.required`` of every failed attestation with
    requireTlog (false here), so a refused keyless attestation claimed it needed no log."""
    from stellaops.config import parse_config
    from stellaops.engine import Engine

    (tmp_path / "trusted_root.json").write_text(json.dumps(test_sigstore.trusted_root()))
    config = parse_config(
        "attestation:\n"
        f"  trustRoots: {{offline: true, bundlePath: {tmp_path / 'trusted_root.json'}}}\n"
        f"  authorities: [{{name: ci, keyless: {{issuer: '{ISSUER}', subject: '{IDENTITY}'}}}}]\n"
        "  requireTlog: false\n",
        env={},
    )
    engine = Engine(config, client=object())
    try:
        cand = dataclasses.replace(test_sigstore.attest(statement()).legacy(with_bundle=False), attached_to=IMAGE_DIGEST)
        [res] = engine._verify_candidates([cand], IMAGE_DIGEST)
    finally:
        engine.close()
    assert not res.verified and res.errors[0].reason == "TLOG_MISSING" and res.tlog.to_json()["required"] is True
