"""Blob-level interop with the real cosign: key files both ways, attestations both ways."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from stellaops import dsse
from stellaops.candidate import Candidate
from stellaops.cli import cli
from stellaops.verify import keys
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.keys import key_authority, make_private_key, trust_for
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign

PTYPE = "https://stellaops.io/test/v1"
OFFLINE_ATTEST = ["--use-signing-config=false", "--tlog-upload=false"]


def cosign(tmp: Path, *args: str, password: str = "pw", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "COSIGN_PASSWORD": password, "TUF_ROOT": str(tmp / "tuf")}
    proc = subprocess.run([tool("cosign"), *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"cosign {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture()
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"the artifact\n")
    (tmp_path / "pred.json").write_text(json.dumps({"scannedAt": "2026-11-24T10:00:00Z", "findings": []}))
    return path


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _import(tmp: Path, kind: str) -> tuple[keys.PrivateKey, Path]:
    """A key of ``kind`` imported into cosign (``cosign import-key-pair``)."""
    private_key = make_private_key(kind)
    pem = tmp / f"{kind}.pem"
    pem.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cosign(tmp, "import-key-pair", "--key", str(pem), "--output-key-prefix", kind)
    return private_key, tmp / f"{kind}.key"


def test_cosign_generated_key_loads_and_signs(tmp_path: Path) -> None:
    cosign(tmp_path, "generate-key-pair")
    private_key = keys.load_private_key((tmp_path / "cosign.key").read_bytes(), b"pw")
    public_key = keys.load_public_key((tmp_path / "cosign.pub").read_bytes())
    assert keys.key_id(private_key.public_key()) == keys.key_id(public_key)  # type: ignore[arg-type]
    assert keys.verify_signature(public_key, b"m", keys.sign(private_key, b"m"))


def test_our_key_pair_works_for_cosign_sign_blob_and_attest_blob(tmp_path: Path, blob: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["key", "generate", "--output-key-prefix", "ours"], env={"COSIGN_PASSWORD": "pw"})
    assert res.exit_code == 0, res.output
    assert oct((tmp_path / "ours.key").stat().st_mode & 0o777) == "0o600"
    cosign(tmp_path, "sign-blob", "--key", "ours.key", *OFFLINE_ATTEST, "--bundle", "sig.bundle", str(blob))
    cosign(tmp_path, "verify-blob", "--key", "ours.pub", "--insecure-ignore-tlog", "--bundle", "sig.bundle", str(blob))
    cosign(tmp_path, "attest-blob", "--key", "ours.key", "--predicate", "pred.json", "--type", PTYPE, *OFFLINE_ATTEST, "--bundle", "att.bundle", str(blob))
    cosign(tmp_path, "verify-blob-attestation", "--key", "ours.pub", "--insecure-ignore-tlog", "--bundle", "att.bundle", "--type", PTYPE, str(blob))
    # and a wrong password is refused by cosign, as by us
    assert cosign(tmp_path, "sign-blob", "--key", "ours.key", *OFFLINE_ATTEST, "--bundle", "x", str(blob), password="nope", check=False).returncode != 0


def test_key_generate_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cosign.key").write_text("keep me")
    res = CliRunner().invoke(cli, ["key", "generate"], env={"COSIGN_PASSWORD": "pw"})
    assert res.exit_code != 0 and (tmp_path / "cosign.key").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["p256", "p384", "p521", "rsa2048", "rsa4096", "ed25519"])
@pytest.mark.parametrize("fmt", ["bundle", "legacy"])
def test_cosign_attest_blob_output_verifies(tmp_path: Path, blob: Path, kind: str, fmt: str) -> None:
    private_key, key_file = _import(tmp_path, kind)
    # cosign.key written by cosign import-key-pair loads with our loader too
    assert keys.key_id(keys.load_private_key(key_file.read_bytes(), b"pw").public_key()) == keys.key_id(private_key.public_key())  # type: ignore[arg-type]
    args = ["attest-blob", "--key", str(key_file), "--predicate", "pred.json", "--type", PTYPE, *OFFLINE_ATTEST]
    if fmt == "bundle":
        cosign(tmp_path, *args, "--bundle", "out.json", str(blob))
        cand = Candidate(kind="bundle", data=(tmp_path / "out.json").read_bytes(), source="imported", attached_to="")
    else:
        cosign(tmp_path, *args, "--new-bundle-format=false", "--output-signature", "out.json", str(blob))
        cand = Candidate(kind="dsse", data=(tmp_path / "out.json").read_bytes(), source="imported", attached_to="")
    trust = trust_for(key_authority(private_key, name=kind))
    result = verify_candidate(cand, _digest(blob), trust)
    assert result.verified, result.errors
    assert result.predicate_type == PTYPE and result.signers[0].authority == kind
    # a different key does not verify it
    assert verify_candidate(cand, _digest(blob), trust_for(key_authority(make_private_key(kind)))).errors[0].reason == "SIGNATURE_INVALID"
    # nor does it verify for another artifact
    assert verify_candidate(cand, "sha256:" + "0" * 64, trust).errors[0].reason == "SUBJECT_MISMATCH"
    # the CLI agrees
    pub = tmp_path / f"{kind}.pub"
    flag = "--bundle" if fmt == "bundle" else "--signature"
    res = CliRunner().invoke(
        cli, ["attest", "verify-blob-attestation", str(blob), flag, str(tmp_path / "out.json"), "--key", str(pub), "--insecure-ignore-tlog", "--type", PTYPE]
    )
    assert res.exit_code == 0, res.output


def _our_envelope(private_key: keys.PrivateKey, digest: str, **kw: bool) -> bytes:
    st = dsse.make_statement("artifact.bin", digest, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z"}, statement_type=dsse.STATEMENT_V01)
    sig = keys.sign(private_key, dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, st), **kw)
    return dsse.Envelope(dsse.PAYLOAD_TYPE_INTOTO, st, (dsse.Signature(sig=sig),)).to_bytes()


@pytest.mark.parametrize("kind", ["p256", "rsa2048", "rsa3072"])
def test_our_envelope_verifies_with_cosign(tmp_path: Path, blob: Path, kind: str) -> None:
    private_key, _ = _import(tmp_path, kind)
    (tmp_path / "env.json").write_bytes(_our_envelope(private_key, _digest(blob)))
    cosign(
        tmp_path, "verify-blob-attestation", "--key", f"{kind}.pub", "--insecure-ignore-tlog", "--signature", "env.json", "--type", PTYPE, str(blob)
    )
    # cosign refuses it for another blob: the test can fail
    other = tmp_path / "other.bin"
    other.write_bytes(b"other")
    proc = cosign(
        tmp_path, "verify-blob-attestation", "--key", f"{kind}.pub", "--insecure-ignore-tlog", "--signature", "env.json", "--type", PTYPE, str(other), check=False
    )
    assert proc.returncode != 0


def test_our_pure_ed25519_envelope_verifies_with_cosign(tmp_path: Path, blob: Path) -> None:
    # cosign's verifier is pure Ed25519 (it cannot verify its own Ed25519ph); DSSE-pure signatures interoperate
    private_key, _ = _import(tmp_path, "ed25519")
    (tmp_path / "env.json").write_bytes(_our_envelope(private_key, _digest(blob), ed25519_prehash=False))
    cosign(tmp_path, "verify-blob-attestation", "--key", "ed25519.pub", "--insecure-ignore-tlog", "--signature", "env.json", "--type", PTYPE, str(blob))


def test_cosign_legacy_blob_bundle_verifies(tmp_path: Path, blob: Path) -> None:
    # cosign attest-blob --new-bundle-format=false --bundle writes {"base64Signature", "cert"?, "rekorBundle"?}
    from stellaops.cli.verify import blob_candidate

    private_key, key_file = _import(tmp_path, "p256")
    cosign(tmp_path, "attest-blob", "--key", str(key_file), "--predicate", "pred.json", "--type", PTYPE, *OFFLINE_ATTEST,
           "--new-bundle-format=false", "--bundle", "legacy.json", str(blob))
    assert "base64Signature" in json.loads((tmp_path / "legacy.json").read_text())
    cand = blob_candidate(str(tmp_path / "legacy.json"), None)
    result = verify_candidate(cand, _digest(blob), trust_for(key_authority(private_key)))
    assert result.verified, result.errors
    res = CliRunner().invoke(
        cli, ["attest", "verify-blob-attestation", str(blob), "--bundle", str(tmp_path / "legacy.json"), "--key", str(tmp_path / "p256.pub"),
              "--insecure-ignore-tlog", "--type", PTYPE]
    )
    assert res.exit_code == 0, res.output
