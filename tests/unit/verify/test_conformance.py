"""Real-world vectors: the DSSE / in-toto cases of sigstore/sigstore-conformance
(``tests/data/verify/conformance``, see SOURCE.md) give the expected verdicts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from stellaops.candidate import Candidate
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify.attestation import verify_candidate

DATA = Path(__file__).resolve().parents[2] / "data" / "verify" / "conformance"
# the identity every conformance bundle is signed with (sigstore-conformance test/client.py)
IDENTITY = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"

CASES = {
    "happy-path-intoto-in-dsse-v3": None,
    "intoto-with-custom-trust-root": None,
    "dsse-invalid-sig_fail": "SIGNATURE_INVALID",
    "dsse-mismatch-envelope_fail": "TLOG_INVALID",
    "dsse-mismatch-sig_fail": "TLOG_INVALID",
    "intoto-expired-certificate_fail": "CERTIFICATE_INVALID",
    "intoto-log-entry-mismatch_fail": "TLOG_INVALID",
    "intoto-missing-inclusion-proof_fail": "TLOG_INVALID",
    "intoto-set-outside-signing-cert-validity_fail": "CERTIFICATE_INVALID",
    # Rekor v2 (hashedrekord 0.0.2 + RFC 3161 timestamps): time, chain and log by sigstore-python
    "rekor2-dsse-happy-path": None,
    "rekor2-dsse-invalid-sig_fail": "SIGNATURE_INVALID",
    "rekor2-dsse-mismatch-envelope_fail": "TLOG_INVALID",
    "rekor2-dsse-mismatch-sig_fail": "TLOG_INVALID",
}


def _trust(case: Path, identity: str = IDENTITY) -> TrustConfig:
    root = case / "trusted_root.json"
    if not root.exists():  # the conformance suite verifies these against public-good Sigstore
        root = DATA / "public-good-trusted_root.json"
    roots = SigstoreRoots(trusted_root_json=root.read_bytes(), trusted_root_source=str(root), offline=True)
    return TrustConfig(authorities=(KeylessAuthority(name="beacon", issuer=ISSUER, subject=identity),), require_tlog=True, sigstore=roots)


def _subject_digest(bundle: bytes) -> str:
    statement = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    return "sha256:" + statement["subject"][0]["digest"]["sha256"]


@pytest.mark.parametrize("name,reason", sorted(CASES.items()))
def test_conformance_case(name: str, reason: str | None) -> None:
    case = DATA / name
    data = (case / "bundle.sigstore.json").read_bytes()
    result = verify_candidate(Candidate(kind="bundle", data=data, source="imported", attached_to=""), _subject_digest(data), _trust(case))
    if reason is None:
        assert result.verified, result.errors
        assert result.signers[0].subject == IDENTITY and result.signers[0].issuer == ISSUER
        assert result.tlog.verified and result.predicate_type.startswith("https://slsa.dev/provenance/")
        if name.startswith("rekor2-"):  # its RFC 3161 timestamp is verified by us too, and listed (issue 17)
            assert [t.authority for t in result.timestamps] == ["sigstore-tsa"], result.timestamps
    else:
        assert not result.verified
        assert [e.reason for e in result.errors] == [reason], result.errors


@pytest.mark.parametrize("name", ["happy-path-intoto-in-dsse-v3", "intoto-with-custom-trust-root", "rekor2-dsse-happy-path"])
def test_conformance_happy_path_with_another_identity_is_refused(name: str) -> None:
    case = DATA / name
    data = (case / "bundle.sigstore.json").read_bytes()
    result = verify_candidate(
        Candidate(kind="bundle", data=data, source="imported", attached_to=""), _subject_digest(data), _trust(case, IDENTITY + "-evil")
    )
    assert [e.reason for e in result.errors] == ["IDENTITY_MISMATCH"]
