"""``stella attest sign --identity-token`` against a real private Sigstore on loopback.

Real Fulcio (ephemeral CA) + real CT log (ct_server on Trillian) + real Rekor v1, and an OIDC
issuer that serves only its discovery document and JWKS (``tests/fixtures/fulcio.py``). The
bundle it makes is verified by ``stella attest verify`` (the provider's verification code) and
by the real cosign after ``stella attest attach``; each way the signing can be refused gives
one clear line, and the token never appears in what the command prints.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fulcio import FulcioStack
from tests.fixtures.images import push_test_image
from tests.fixtures.tools import tool

# Fulcio's ephemeral CA names its country "USA" (3 letters); cryptography warns on each parse
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")

STELLA = str(Path(sys.executable).with_name("stella"))
PTYPE = "https://stellaops.io/test/keyless/v1"
EMAIL = "release-bot@stellaops.test"


def stella(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The installed ``stella`` entry point, as users run it (exit codes, stderr lines)."""
    base = {k: v for k, v in os.environ.items() if k not in ("STELLAOPS_CONFIG", "SIGSTORE_ID_TOKEN")}
    proc = subprocess.run([STELLA, *args], check=False, env={**base, **(env or {})}, cwd="/", capture_output=True, text=True, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def keyless(fulcio_stack: FulcioStack, ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An image, a predicate, a trusted_root.json and a config for this private Sigstore."""
    tmp = tmp_path_factory.mktemp("keyless-sign")
    digest = push_test_image(ocireg, "keyless/app", "v1")
    (tmp / "predicate.json").write_text(json.dumps({"scanner": "stellaops-test", "critical": 0}))
    root = fulcio_stack.write_trusted_root(tmp / "trusted_root.json")
    pems = fulcio_stack.write_pems(tmp)
    config = tmp / "stellaops.yaml"
    config.write_text(
        "attestation:\n  trustRoots:\n    sigstore:\n"
        f"      fulcioUrl: {fulcio_stack.url}\n      rekorUrl: {fulcio_stack.rekor.url}\n      ctlogUrl: {fulcio_stack.ctlog_url}\n"
        f"      trustedRootPem: {pems['trustedRootPem']}\n      rekorPublicKey: {pems['rekorPublicKey']}\n"
        f"      ctlogPublicKey: {pems['ctlogPublicKey']}\n"
        "registries:\n  allowPrivate: true\n"
    )
    return {"tmp": tmp, "image": f"{ocireg}/keyless/app", "digest": digest, "root": root, "config": config}


def _sign(k: dict[str, Any], token: str, *extra: str, out: str = "att.sigstore.json") -> tuple[int, str, str]:
    return stella(
        "attest", "sign", "--predicate", str(k["tmp"] / "predicate.json"), "--type", PTYPE,
        "--image", f"{k['image']}@{k['digest']}", "--identity-token", token,
        "--output-file", str(k["tmp"] / out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def signed(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> dict[str, Any]:
    """One keyless attestation signed through the config's endpoints, then attached."""
    token = fulcio_stack.issuer.mint(EMAIL)
    rc, out, err = _sign(keyless, token, "--config", str(keyless["config"]))
    assert rc == 0, out + err
    assert token not in out + err
    bundle = json.loads((keyless["tmp"] / "att.sigstore.json").read_text())
    rc, out, err = stella("attest", "attach", "--image", f"{keyless['image']}:v1", "--attestation", str(keyless["tmp"] / "att.sigstore.json"))
    assert rc == 0, out + err
    return {"bundle": bundle, "token": token}


def test_bundle_has_fulcio_certificate_sct_and_rekor_entry(fulcio_stack: FulcioStack, signed: dict[str, Any]) -> None:
    from cryptography import x509

    b = signed["bundle"]
    assert b["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"

    cert = x509.load_der_x509_certificate(base64.b64decode(b["verificationMaterial"]["certificate"]["rawBytes"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [EMAIL]
    issuer_v2 = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")).value.value
    assert fulcio_stack.issuer.url.encode() in issuer_v2
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"))  # embedded SCT
    [entry] = b["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    assert base64.b64decode(entry["logId"]["keyId"]).hex() == fulcio_stack.rekor.log_id
    assert b["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"


def test_stella_verify_accepts_with_keyless_identity(fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]) -> None:
    rc, out, err = stella(
        "attest", "verify", f"{keyless['image']}:v1", "--certificate-identity", EMAIL,
        "--certificate-oidc-issuer", fulcio_stack.issuer.url, "--trusted-root", str(keyless["root"]),
        "--type", PTYPE, "--output", "json",
    )  # fmt: skip
    assert rc == 0, out + err
    verdict = json.loads(out)
    assert verdict["verified"] is True, verdict
    good = [a for a in verdict["attestations"] if a.get("verified")]
    assert good, verdict
    text = json.dumps(good)
    assert EMAIL in text and fulcio_stack.issuer.url in text
    assert all(a["tlog"]["verified"] is True and a["tlog"]["logIndex"] >= 0 for a in good), good


def test_provider_verifies_bundle_with_keyless_authority(fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]) -> None:
    """The provider's verification code with the config's private-instance PEMs (no trusted_root.json)."""
    from stellaops.candidate import Candidate
    from stellaops.config import load_config
    from stellaops.trust import KeylessAuthority
    from stellaops.verify.attestation import verify_candidate

    trust = load_config(str(keyless["config"])).trust
    cand = Candidate(kind="bundle", data=json.dumps(signed["bundle"]).encode(), source="imported", attached_to="")
    good = KeylessAuthority(name="release", issuer=fulcio_stack.issuer.url, subject=EMAIL)
    result = verify_candidate(cand, keyless["digest"], _with(trust, good))
    assert result.verified, result
    [signer] = result.signers
    assert json.dumps(signer.to_json()).count(EMAIL) >= 1 and fulcio_stack.issuer.url in json.dumps(signer.to_json())
    assert result.tlog.verified and result.tlog.log_index is not None, result.tlog
    for wrong in (
        KeylessAuthority(name="other-subject", issuer=fulcio_stack.issuer.url, subject="someone-else@stellaops.test"),
        KeylessAuthority(name="other-issuer", issuer="https://accounts.google.com", subject=EMAIL),
        KeylessAuthority(name="prefix-only", issuer=fulcio_stack.issuer.url, subject_regexp="release-bot@stellaops"),
    ):
        result = verify_candidate(cand, keyless["digest"], _with(trust, wrong))
        assert not result.verified, wrong
        assert [e.reason for e in result.errors] == ["IDENTITY_MISMATCH"], (wrong, result.errors)


def _with(trust: Any, authority: Any) -> Any:
    import dataclasses

    return dataclasses.replace(trust, authorities=(authority,))


def test_stella_verify_wrong_identity_is_identity_mismatch(fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]) -> None:
    rc, out, err = stella(
        "attest", "verify", f"{keyless['image']}:v1", "--certificate-identity", "intruder@stellaops.test",
        "--certificate-oidc-issuer", fulcio_stack.issuer.url, "--trusted-root", str(keyless["root"]),
        "--type", PTYPE, "--output", "json",
    )  # fmt: skip
    assert rc != 0
    assert "IDENTITY_MISMATCH" in out, out + err


def test_cosign_verify_attestation_accepts(fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]) -> None:
    tmp = keyless["tmp"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "TUF_ROOT": str(tmp / "tuf")}
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        if var in os.environ:
            env[var] = os.environ[var]
    args = [
        tool("cosign"), "verify-attestation", "--certificate-identity", EMAIL,
        "--certificate-oidc-issuer", fulcio_stack.issuer.url, "--trusted-root", str(keyless["root"]),
        "--type", PTYPE, f"{keyless['image']}:v1",  # v3 reads the bundle referrer by default
    ]  # fmt: skip
    proc = subprocess.run(args, check=False, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Existence of the claims in the transparency log was verified offline" in proc.stderr
    assert "The code-signing certificate was verified using trusted certificate authority certificates" in proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.strip()]
    payload = json.loads(base64.b64decode(json.loads(line)["payload"]))
    assert payload["predicateType"] == PTYPE and payload["subject"][0]["digest"]["sha256"] == keyless["digest"].split(":")[1]


def test_sign_with_es256_token_and_trusted_root_flag(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    """Endpoints and trust from the flags alone (no config); token from $SIGSTORE_ID_TOKEN."""
    token = fulcio_stack.issuer.mint(EMAIL, alg="ES256")
    rc, out, err = stella(
        "attest", "sign", "--predicate", str(keyless["tmp"] / "predicate.json"), "--type", PTYPE,
        "--image", f"{keyless['image']}@{keyless['digest']}", "--fulcio-url", fulcio_stack.url,
        "--rekor-url", fulcio_stack.rekor.url, "--trusted-root", str(keyless["root"]),
        env={"SIGSTORE_ID_TOKEN": token},
    )  # fmt: skip
    assert rc == 0, out + err
    assert json.loads(out)["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert token not in out + err


# --- refusals: one clear line each, never the token ---------------------------------------------


def _refused(keyless: dict[str, Any], token: str, *extra: str) -> tuple[int, str]:
    rc, out, err = _sign(keyless, token, "--config", str(keyless["config"]), *extra, out="refused.json")
    assert rc != 0, out + err
    assert token not in out + err
    assert "Traceback" not in err
    return rc, err


def test_refuses_expired_token(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL, issued_ago=3600, lifetime=600)
    rc, err = _refused(keyless, token)
    assert rc == 2
    assert err.splitlines()[0].startswith("Error: REQUEST_INVALID: the identity token is not usable")
    assert "it has expired" in err, err


def test_refuses_token_for_another_audience(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL, audience="not-sigstore")
    rc, err = _refused(keyless, token)
    assert rc == 2
    assert err.startswith("Error: REQUEST_INVALID: the identity token is not usable: its audience (aud) is not 'sigstore'"), err


def test_fulcio_refuses_token_signed_by_key_not_in_jwks(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL, rogue=True)
    rc, err = _refused(keyless, token)
    first = err.splitlines()[0]
    assert first == (
        f"Error: UNAUTHORIZED: Fulcio at {fulcio_stack.url} refused the identity token: "
        "HTTP 400: There was an error processing the identity token"
    ), err
    assert rc == 1
    assert "failed to verify signature" in fulcio_stack.log_text("fulcio")  # refused for the signature, not something else


def test_fulcio_refuses_unverified_email(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL, email_verified=False)
    _, err = _refused(keyless, token)
    assert err.startswith(f"Error: UNAUTHORIZED: Fulcio at {fulcio_stack.url} refused the identity token"), err


def test_sct_from_an_untrusted_ct_log_is_refused(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    """A trusted root whose CT log key is not the log Fulcio used: sigstore-python's SCT check."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib

    doc = fulcio_stack.trusted_root()
    doc["ctlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(other).decode()
    doc["ctlogs"][0]["logId"]["keyId"] = base64.b64encode(hashlib.sha256(other).digest()).decode()
    bad_root = keyless["tmp"] / "wrong-ct-root.json"
    bad_root.write_text(json.dumps(doc))
    token = fulcio_stack.issuer.mint(EMAIL)
    _, err = _refused(keyless, token, "--trusted-root", str(bad_root))
    assert err.startswith("Error: SCT_INVALID: the certificate Fulcio issued has no valid SCT"), err


def test_fulcio_unreachable(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    from tests.fixtures.services import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    token = fulcio_stack.issuer.mint(EMAIL)
    rc, err = _refused(keyless, token, "--fulcio-url", dead)
    assert rc == 3 and err.startswith(f"Error: SERVICE_UNREACHABLE: Fulcio at {dead} could not be reached"), err
    _, out, verbose_err = _sign(keyless, token, "--config", str(keyless["config"]), "--fulcio-url", dead, "--verbose", out="refused.json")
    assert "Traceback" in verbose_err and token not in out + verbose_err


def test_rekor_refuses_or_is_unreachable(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL)
    # Fulcio's own URL is no Rekor: its 404 for /api/v1/log/entries is Rekor "refusing"
    _, err = _refused(keyless, token, "--rekor-url", fulcio_stack.url)
    assert err.startswith(f"Error: TLOG_INVALID: Rekor at {fulcio_stack.url} refused the entry"), err
    from tests.fixtures.services import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    _, err = _refused(keyless, fulcio_stack.issuer.mint(EMAIL), "--rekor-url", dead)
    assert err.startswith(f"Error: SERVICE_UNREACHABLE: Rekor at {dead} could not be reached"), err


def test_key_and_identity_token_together_is_a_usage_error(fulcio_stack: FulcioStack, keyless: dict[str, Any]) -> None:
    token = fulcio_stack.issuer.mint(EMAIL)
    rc, err = _refused(keyless, token, "--key", str(keyless["tmp"] / "predicate.json"))
    assert rc == 2 and "give either --key or --identity-token, not both" in err


def test_token_never_logged_while_signing(fulcio_stack: FulcioStack, keyless: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """Every log record of a whole signing (sigstore-python, requests/urllib3 at DEBUG) is free of
    the token, and so is the bundle."""
    import logging

    from stellaops import keyless_sign as ks
    from stellaops.dsse import make_statement

    token = fulcio_stack.issuer.mint(EMAIL)
    statement = make_statement(keyless["image"], keyless["digest"], PTYPE, {"n": 1})
    with caplog.at_level(logging.DEBUG):
        bundle = ks.sign_statement(
            statement, token, ks.KeylessEndpoints(fulcio_stack.url, fulcio_stack.rekor.url), keyless["root"].read_bytes()
        )
    assert caplog.records, "expected sigstore-python's debug records"
    assert token not in caplog.text
    for part in token.split("."):  # nor any of its three parts (header, claims, signature)
        assert part not in caplog.text
    assert token.split(".")[2].encode() not in bundle


def test_cosign_v2_verifies_the_legacy_att_layer(fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]) -> None:
    """cosign v2 (and Kyverno) read the legacy .att tag: the certificate and the Rekor promise
    travel in its layer annotations (cosign v2 is optional: `scripts/tools.sh cosign2`)."""
    from tests.fixtures.tools import TOOLS_BIN

    cosign2 = TOOLS_BIN / "cosign2"
    if not os.access(cosign2, os.X_OK):
        pytest.skip("cosign v2 is not built (optional): scripts/tools.sh cosign2")
    tmp = keyless["tmp"]
    env = {**os.environ, "HOME": str(tmp), "TUF_ROOT": str(tmp / "tuf2")}
    args = [
        str(cosign2), "verify-attestation", "--certificate-identity", EMAIL,
        "--certificate-oidc-issuer", fulcio_stack.issuer.url, "--trusted-root", str(keyless["root"]),
        "--type", PTYPE, f"{keyless['image']}:v1",
    ]  # fmt: skip
    proc = subprocess.run(args, check=False, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.strip()]
    assert json.loads(line)["payloadType"] == "application/vnd.in-toto+json"


def test_keyless_with_timestamp_authority(fulcio_stack: FulcioStack, keyless: dict[str, Any], tsa: Any) -> None:
    """--timestamp-server-url: sigstore-python asks the real TSA for a token over the signature;
    the bundle carries it, and it is over exactly that signature."""
    import hashlib

    from rfc3161_client import decode_timestamp_response

    token = fulcio_stack.issuer.mint(EMAIL)
    rc, out, err = _sign(keyless, token, "--config", str(keyless["config"]), "--timestamp-server-url", tsa.timestamp_url, out="tsa.json")
    assert rc == 0, out + err
    bundle = json.loads((keyless["tmp"] / "tsa.json").read_text())
    [ts] = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    resp = decode_timestamp_response(base64.b64decode(ts["signedTimestamp"]))
    sig = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    assert resp.tst_info.message_imprint.message == hashlib.sha256(sig).digest()
    # a TSA that cannot be reached fails the command (sigstore-python would only log a warning)
    from tests.fixtures.services import free_port

    dead = f"http://127.0.0.1:{free_port()}/api/v1/timestamp"
    _, err = _refused(keyless, fulcio_stack.issuer.mint(EMAIL), "--timestamp-server-url", dead)
    assert err.startswith("Error: SERVICE_UNREACHABLE: the timestamp authority did not timestamp the signature"), err


def _stripped(bundle: dict[str, Any]) -> bytes:
    """The bundle without its Rekor entry (the certificate stays): what an attestation whose
    entry was lost looks like."""
    doc = json.loads(json.dumps(bundle))
    doc["verificationMaterial"].pop("tlogEntries")
    return json.dumps(doc).encode()


def test_keyless_attestation_without_its_entry_is_found_by_the_online_lookup(
    fulcio_stack: FulcioStack, keyless: dict[str, Any], signed: dict[str, Any]
) -> None:
    """The entry's integrated time dates the certificate (expired by now in real life), so the
    lookup has to happen before the certificate check; what Rekor returns is verified in full."""
    from stellaops.candidate import Candidate
    from stellaops.config import load_config
    from stellaops.trust import KeylessAuthority, TlogLookup
    from stellaops.verify import rekor_lookup
    from stellaops.verify.attestation import verify_candidate

    rekor_lookup.CACHE.clear()
    good = KeylessAuthority(name="release", issuer=fulcio_stack.issuer.url, subject=EMAIL)
    trust = _with(load_config(str(keyless["config"])).trust, good)
    cand = Candidate(kind="bundle", data=_stripped(signed["bundle"]), source="imported", attached_to="")
    # lookup off: the time of signing is unknown
    off = verify_candidate(cand, keyless["digest"], trust)
    assert not off.verified and [e.reason for e in off.errors] == ["TLOG_MISSING"], off.errors
    # lookup on: Rekor's entry is found, verified and reported as looked up
    import dataclasses

    on = dataclasses.replace(trust, tlog_lookup=TlogLookup(rekor_url=fulcio_stack.rekor.url, timeout_seconds=5))
    result = verify_candidate(cand, keyless["digest"], on)
    assert result.verified, result.errors
    assert result.tlog.verified and result.tlog.looked_up, result.tlog
    original = signed["bundle"]["verificationMaterial"]["tlogEntries"][0]
    assert result.tlog.log_index == int(original["logIndex"])
