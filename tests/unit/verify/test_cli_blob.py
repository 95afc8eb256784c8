"""``stella attest verify-blob-attestation`` with the offline test Sigstore and keys, and flag checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from stellaops.cli import cli, exit_code_for
from stellaops.errors import StellaError
from tests.fixtures.keys import envelope_bytes, make_private_key
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from stellaops import dsse
from stellaops.verify import keys

PTYPE = "stellaops.io/predicates/scan-result@v1"


def run(*args: str) -> tuple[int, str]:
    res: Result = CliRunner().invoke(cli, ["attest", "verify-blob-attestation", *args], env={"STELLAOPS_CONFIG": ""})
    if isinstance(res.exception, StellaError):
        return exit_code_for(res.exception), res.output + str(res.exception) + "\n" + res.exception.hint
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


@pytest.fixture()
def blob(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"artifact bytes")
    return path, "sha256:" + hashlib.sha256(b"artifact bytes").hexdigest()


@pytest.fixture()
def keyless_files(tmp_path: Path, test_sigstore: TestSigstore, blob: tuple[Path, str]) -> tuple[Path, Path]:
    _, digest = blob
    st = dsse.make_statement("artifact.bin", digest, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z", "findings": []})
    att = test_sigstore.attest(st)
    (tmp_path / "att.bundle").write_bytes(att.bundle_json())
    (tmp_path / "root.json").write_bytes(test_sigstore.trusted_root_json())
    return tmp_path / "att.bundle", tmp_path / "root.json"


def test_keyless_bundle_with_blob(blob, keyless_files) -> None:  # type: ignore[no-untyped-def]
    path, _ = blob
    bundle, root = keyless_files
    rc, out = run(str(path), "--bundle", str(bundle), "--trusted-root", str(root), "--offline",
                  "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER, "--type", PTYPE)
    assert rc == 0, out
    assert f"issuer={ISSUER} subject={IDENTITY}" in out and "Verified OK" in out


def test_keyless_bundle_with_digest_and_json(blob, keyless_files) -> None:  # type: ignore[no-untyped-def]
    _, digest = blob
    bundle, root = keyless_files
    for d in (digest, digest.split(":")[1]):
        rc, out = run("--digest", d, "--digestAlg", "sha256", "--bundle", str(bundle), "--trusted-root", str(root),
                      "--certificate-identity-regexp", r"https://github\.com/acme/.*", "--certificate-oidc-issuer", ISSUER,
                      "--type", PTYPE, "--output", "json")
        assert rc == 0, out
        doc = json.loads(out[out.index("{") : out.rindex("}") + 1])
        assert doc["verified"] and doc["attestation"]["signers"][0]["subject"] == IDENTITY


def test_keyless_bundle_for_another_blob_fails(tmp_path: Path, keyless_files) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.bin"
    other.write_bytes(b"other")
    bundle, root = keyless_files
    rc, out = run(str(other), "--bundle", str(bundle), "--trusted-root", str(root),
                  "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER, "--type", PTYPE)
    assert rc == 1 and "SUBJECT_MISMATCH" in out


def test_wrong_type_is_refused(blob, keyless_files) -> None:  # type: ignore[no-untyped-def]
    path, _ = blob
    bundle, root = keyless_files
    rc, out = run(str(path), "--bundle", str(bundle), "--trusted-root", str(root),
                  "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)  # default type: custom
    assert rc == 1 and f"invalid predicate type, expected https://cosign.sigstore.dev/attestation/v1 got {PTYPE}" in out


def test_key_signed_envelope_with_signature_flag(tmp_path: Path, blob) -> None:  # type: ignore[no-untyped-def]
    path, digest = blob
    private_key = make_private_key("p384")
    st = dsse.make_statement("artifact.bin", digest, PTYPE, {"scannedAt": "2026-11-24T10:00:00Z"})
    (tmp_path / "env.json").write_bytes(envelope_bytes(st, [private_key]))
    (tmp_path / "k.pub").write_bytes(keys.public_key_pem(private_key.public_key()))
    rc, out = run(str(path), "--signature", str(tmp_path / "env.json"), "--key", str(tmp_path / "k.pub"), "--insecure-ignore-tlog", "--type", PTYPE)
    assert rc == 0, out
    # without --insecure-ignore-tlog the missing entry is an error (offline: no public-good root)
    rc, out = run(str(path), "--signature", str(tmp_path / "env.json"), "--key", str(tmp_path / "k.pub"), "--offline", "--type", PTYPE)
    assert rc == 2 and "--trusted-root" in out


@pytest.mark.parametrize(
    "args,words",
    [
        (["--certificate-identity", "a"], "--certificate-oidc-issuer"),
        (["--certificate-oidc-issuer", "a"], "--certificate-identity"),
        (["--certificate-identity", "a", "--certificate-identity-regexp", "b", "--certificate-oidc-issuer", "c"], "not both"),
        (["--certificate-identity-regexp", "(a", "--certificate-oidc-issuer", "c"], "not valid RE2"),
        (["--certificate-identity-regexp", r"(a)\1", "--certificate-oidc-issuer", "c"], "not valid RE2"),
        ([], "no authority"),
    ],
)
def test_flag_errors_are_usage_errors(tmp_path: Path, blob, args: list[str], words: str) -> None:  # type: ignore[no-untyped-def]
    path, _ = blob
    (tmp_path / "e.json").write_text("{}")
    rc, out = run(str(path), "--signature", str(tmp_path / "e.json"), *args)
    assert rc == 2 and words in out


def test_bad_trusted_root_names_the_file(tmp_path: Path, blob) -> None:  # type: ignore[no-untyped-def]
    path, _ = blob
    (tmp_path / "e.json").write_text("{}")
    (tmp_path / "root.json").write_text('{"mediaType": "nope"}')
    rc, out = run(str(path), "--signature", str(tmp_path / "e.json"), "--trusted-root", str(tmp_path / "root.json"),
                  "--certificate-identity", "a", "--certificate-oidc-issuer", "b")
    assert rc == 2 and str(tmp_path / "root.json") in out
