"""``stella attest verify IMAGE`` against a real loopback registry: cosign-made attestations
(bundle referrers and the legacy .att tag) and keyless ones from the offline test Sigstore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stellaops import dsse
from stellaops.reference import parse_reference
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign

OFFLINE_ATTEST = ["--use-signing-config=false", "--tlog-upload=false"]


def cosign(tmp: Path, *args: str) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "COSIGN_PASSWORD": "pw", "TUF_ROOT": str(tmp / "tuf")}
    proc = subprocess.run([tool("cosign"), *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"cosign {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


STELLA = str(Path(sys.executable).with_name("stella"))


def stella(*args: str) -> tuple[int, str, str]:
    """The installed ``stella`` entry point (errors and exit codes as users see them)."""
    env = {k: v for k, v in os.environ.items() if k != "STELLAOPS_CONFIG"}
    proc = subprocess.run([STELLA, *args], env=env, cwd="/", capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def cosign_image(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("verify-cli")
    digest = push_test_image(ocireg, "verify/app", "v1")
    image = f"{ocireg}/verify/app"
    cosign(tmp, "generate-key-pair")
    (tmp / "slsa.json").write_text(json.dumps({"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": "b"}}}))
    (tmp / "vuln.json").write_text(json.dumps({"scanner": {"uri": "s"}}))
    cosign(tmp, "attest", "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate", "slsa.json", *OFFLINE_ATTEST, f"{image}@{digest}")
    cosign(tmp, "attest", "--key", "cosign.key", "--type", "vuln", "--predicate", "vuln.json", *OFFLINE_ATTEST, "--new-bundle-format=false", f"{image}@{digest}")
    return f"{image}:v1", tmp


def test_verify_cosign_bundle_attestation_with_key(cosign_image: tuple[str, Path]) -> None:
    image, tmp = cosign_image
    rc, out, err = stella("attest", "verify", image, "--key", str(tmp / "cosign.pub"), "--insecure-ignore-tlog", "--type", "slsaprovenance1")
    assert rc == 0, out + err
    assert "OK  https://slsa.dev/provenance/v1" in out and "keyId=sha256:" in out
    assert err.startswith(f"Verification for {image} --")


def test_verify_cosign_legacy_attestation_with_key_json(cosign_image: tuple[str, Path]) -> None:
    image, tmp = cosign_image
    rc, out, err = stella(
        "attest", "verify", image, "--key", str(tmp / "cosign.pub"), "--insecure-ignore-tlog", "--type", "vuln", "--output", "json"
    )
    assert rc == 0, out + err
    doc = json.loads(out)
    assert doc["verified"] is True and doc["predicateType"] == "https://cosign.sigstore.dev/attestation/vuln/v1"
    assert {a["predicateType"] for a in doc["attestations"] if a["verified"]} >= {"https://cosign.sigstore.dev/attestation/vuln/v1"}


def test_verify_fails_for_type_not_attached(cosign_image: tuple[str, Path]) -> None:
    image, tmp = cosign_image
    rc, out, err = stella("attest", "verify", image, "--key", str(tmp / "cosign.pub"), "--insecure-ignore-tlog", "--type", "openvex")
    assert rc == 1 and "none of the attestations matched the predicate type: https://openvex.dev/ns" in err


def test_verify_fails_with_another_key(cosign_image: tuple[str, Path], tmp_path: Path) -> None:
    image, _ = cosign_image
    cosign(tmp_path, "generate-key-pair")
    rc, _out, err = stella("attest", "verify", image, "--key", str(tmp_path / "cosign.pub"), "--insecure-ignore-tlog", "--type", "slsaprovenance1")
    assert rc == 1 and "SIGNATURE_INVALID" in err


def test_verify_without_tlog_flag_needs_an_entry(cosign_image: tuple[str, Path], test_sigstore: TestSigstore, tmp_path: Path) -> None:
    image, tmp = cosign_image
    root = tmp_path / "trusted_root.json"
    root.write_bytes(test_sigstore.trusted_root_json())
    rc, _out, err = stella("attest", "verify", image, "--key", str(tmp / "cosign.pub"), "--trusted-root", str(root), "--type", "slsaprovenance1")
    assert rc == 1 and "TLOG_MISSING" in err


@pytest.fixture(scope="module")
def keyless_image(ocireg: str, test_sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    from stellaops.attach import attach

    tmp = tmp_path_factory.mktemp("verify-keyless")
    digest = push_test_image(ocireg, "verify/keyless", "v1")
    st = dsse.make_statement(f"{ocireg}/verify/keyless", digest, "stellaops.io/predicates/scan-result@v1", {"scannedAt": "2026-11-24T10:00:00Z", "findings": []})
    att = test_sigstore.attest(st)
    root = tmp / "trusted_root.json"
    root.write_bytes(test_sigstore.trusted_root_json())
    with loopback_client() as client:
        attach(client, parse_reference(f"{ocireg}/verify/keyless:v1"), att.bundle_json(), formats=("bundle", "legacy"))
    return f"{ocireg}/verify/keyless:v1", root


def test_verify_keyless_shows_issuer_and_subject(keyless_image: tuple[str, Path]) -> None:
    image, root = keyless_image
    rc, out, err = stella(
        "attest", "verify", image, "--trusted-root", str(root), "--offline",
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
        "--type", "stellaops.io/predicates/scan-result@v1",
    )
    assert rc == 0, out + err
    assert f"issuer={ISSUER} subject={IDENTITY}" in out and "logIndex=" in out
    # both the bundle referrer and the legacy layer verified (same envelope, listed once)
    assert out.count("OK  stellaops.io/predicates/scan-result@v1") == 1


def test_verify_keyless_regexp_is_whole_value(keyless_image: tuple[str, Path]) -> None:
    image, root = keyless_image
    rc, _out, err = stella(
        "attest", "verify", image, "--trusted-root", str(root), "--offline",
        "--certificate-identity-regexp", "github.com/acme/app", "--certificate-oidc-issuer", ISSUER,
        "--type", "stellaops.io/predicates/scan-result@v1",
    )
    assert rc == 1 and "IDENTITY_MISMATCH" in err
    rc, out, err = stella(
        "attest", "verify", image, "--trusted-root", str(root), "--offline",
        "--certificate-identity-regexp", r"https://github\.com/acme/app/.*", "--certificate-oidc-issuer-regexp", r"https://token\.actions\..*",
        "--type", "stellaops.io/predicates/scan-result@v1", "--output", "json",
    )
    assert rc == 0, out + err
    signer = json.loads(out)["attestations"][0]["signers"][0]
    assert signer == {"kind": "keyless", "authority": "certificate-identity", "issuer": ISSUER, "subject": IDENTITY}


def test_verify_keyless_offline_without_trust_root_is_a_usage_error(keyless_image: tuple[str, Path]) -> None:
    image, _root = keyless_image
    rc, _out, err = stella("attest", "verify", image, "--offline", "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)
    assert rc == 2 and "--trusted-root" in err


def test_verify_with_authorities_from_the_config(keyless_image: tuple[str, Path], cosign_image: tuple[str, Path], tmp_path: Path) -> None:
    image, root = keyless_image
    _, keydir = cosign_image
    config = tmp_path / "stellaops.yaml"
    config.write_text(
        "attestation:\n"
        "  trustRoots:\n"
        "    offline: true\n"
        f"    bundlePath: {root}\n"
        "  authorities:\n"
        "    - name: release-key\n"
        f"      key: {{path: {keydir / 'cosign.pub'}}}\n"
        "    - name: ci\n"
        f"      keyless: {{issuer: '{ISSUER}', subjectRegExp: 'https://github\\.com/acme/.*'}}\n"
        "  requireTlog: true\n"
    )
    rc, out, err = stella("attest", "verify", image, "--config", str(config), "--type", "stellaops.io/predicates/scan-result@v1")
    assert rc == 0, out + err
    assert f"keyless ci: issuer={ISSUER} subject={IDENTITY}" in out
    # the cosign image's key-signed attestations have no log entry: requireTlog refuses them
    rc, out, err = stella("attest", "verify", cosign_image[0], "--config", str(config), "--type", "slsaprovenance1")
    assert rc == 1 and "TLOG_MISSING" in out + err
