"""The real cosign and our engine agree on keyless bundles from the offline test Sigstore:
both accept the genuine ones, both refuse each forgery — except the unanchored regexp, which
cosign accepts as a substring match and we refuse (docs/verification.md §5)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from stellaops import dsse
from stellaops.candidate import Candidate
from stellaops.trust import KeylessAuthority
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.sigstore import IDENTITY, ISSUER, FulcioCA, TestSigstore
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign
PTYPE = "https://stellaops.io/test/v1"
BLOB = b"keyless artifact\n"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def _statement(digest: str = DIGEST) -> bytes:
    return dsse.make_statement("artifact", digest, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z"}, statement_type=dsse.STATEMENT_V01)


def _cosign_accepts(tmp: Path, bundle: bytes, root: bytes, *identity: str) -> bool:
    (tmp / "blob").write_bytes(BLOB)
    (tmp / "att.bundle").write_bytes(bundle)
    (tmp / "root.json").write_bytes(root)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "TUF_ROOT": str(tmp / "tuf")}
    args = identity or ("--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)
    proc = subprocess.run(
        [tool("cosign"), "verify-blob-attestation", "--bundle", "att.bundle", "--trusted-root", "root.json", *args, "--type", PTYPE, "blob"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
    )
    return proc.returncode == 0


def _ours(ss: TestSigstore, bundle: bytes, authority: KeylessAuthority | None = None) -> Any:
    cand = Candidate(kind="bundle", data=bundle, source="imported", attached_to="")
    return verify_candidate(cand, DIGEST, ss.trust(*([authority] if authority else [])))


def _expired() -> dict[str, Any]:
    return {"not_before": dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2), "integrated_time": int(time.time())}


CASES: list[tuple[str, dict[str, Any] | None, str | None]] = [
    ("genuine", {}, None),
    ("genuine-v2-issuer", {"issuer_ext": "v2"}, None),
    ("wrong-identity", {"identity": "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"}, "IDENTITY_MISMATCH"),
    ("wrong-issuer", {"issuer": "https://issuer.evil.example"}, "IDENTITY_MISMATCH"),
    ("expired-at-integrated-time", None, "CERTIFICATE_INVALID"),
    ("untrusted-ca", {"ca": "rogue"}, "CERTIFICATE_INVALID"),
    ("missing-sct", {"sct": "none"}, "SCT_INVALID"),
    ("forged-sct", {"sct": "forged"}, "SCT_INVALID"),
    ("forged-set", {"forge_set": True}, "TLOG_INVALID"),
    ("entry-for-another-envelope", {"entry_payload": b'{"other":1}'}, "TLOG_INVALID"),
    ("tampered-payload", {"tamper_payload": b'{"tampered":1}'}, "SIGNATURE_INVALID"),
    ("subject-of-another-blob", {"subject": "sha256:" + "0" * 64}, "SUBJECT_MISMATCH"),
]


@pytest.mark.parametrize("name,knobs,reason", CASES, ids=[c[0] for c in CASES])
def test_cosign_and_we_agree(tmp_path: Path, test_sigstore: TestSigstore, name: str, knobs: dict[str, Any] | None, reason: str | None) -> None:
    knobs = dict(_expired() if knobs is None else knobs)
    if knobs.get("ca") == "rogue":
        knobs["ca"] = FulcioCA.create("rogue")
    subject = knobs.pop("subject", DIGEST)
    bundle = test_sigstore.attest(_statement(subject), **knobs).bundle_json()
    ours = _ours(test_sigstore, bundle)
    theirs = _cosign_accepts(tmp_path, bundle, test_sigstore.trusted_root_json())
    assert ours.verified == (reason is None), ours.errors
    assert theirs == (reason is None), f"cosign {'accepted' if theirs else 'refused'} {name}"
    if reason:
        assert [e.reason for e in ours.errors] == [reason]


def test_unanchored_regexp_cosign_accepts_substring_we_refuse(tmp_path: Path, test_sigstore: TestSigstore) -> None:
    pattern = r"https://github\.com/acme/app/.*@refs/heads/main"
    bundle = test_sigstore.attest(_statement(), identity=IDENTITY + "-evil").bundle_json()
    assert _cosign_accepts(tmp_path, bundle, test_sigstore.trusted_root_json(), "--certificate-identity-regexp", pattern, "--certificate-oidc-issuer", ISSUER)
    ours = _ours(test_sigstore, bundle, KeylessAuthority(name="ci", issuer=ISSUER, subject_regexp=pattern))
    assert [e.reason for e in ours.errors] == ["IDENTITY_MISMATCH"]
