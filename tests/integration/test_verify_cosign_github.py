"""Issue 17 against the real cosign v3.1.3 (``verify-blob-attestation --bundle --trusted-root``):
cosign and our engine agree on the one-signature rule of bundles, on
``--certificate-github-workflow-*``, on GitHub's own Sigstore instance (``--insecure-ignore-sct
--insecure-ignore-tlog --use-signed-timestamps`` with a GitHub-shaped trusted root), on a
timestamp made after the certificate expired (cosign with ``--use-signed-timestamps``; we refuse
it always) and on RSA-PSS by a PKCS#1 v1.5 key. Everything offline: the test Sigstore, the real
timestamp-server on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from stellaops import dsse
from stellaops.candidate import Candidate
from stellaops.cli.trust_flags import apply_trust_flags, trust_flag_fragment
from stellaops.trust import KeylessAuthority, SigstoreRoots, TrustConfig
from stellaops.verify import keys
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import key_authority, make_private_key
from tests.fixtures.sigstore import BUNDLE_V03, IDENTITY, ISSUER, FulcioCA, TestSigstore, github_extensions
from tests.fixtures.tools import tool
from tests.fixtures.tsa import TsaServer
from tests.integration.test_verify_cosign_keyless import BLOB, DIGEST, PTYPE, _statement
from tests.unit.verify.test_github_instance import github_root
from tests.unit.verify.test_timestamp import tsa_entry

pytestmark = pytest.mark.cosign
ID = ("--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER)


def cosign(tmp: Path, bundle: bytes, root: bytes | None, *args: str) -> tuple[bool, str]:
    (tmp / "blob").write_bytes(BLOB)
    (tmp / "att.bundle").write_bytes(bundle)
    extra: list[str] = []
    if root is not None:
        (tmp / "root.json").write_bytes(root)
        extra = ["--trusted-root", "root.json"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "TUF_ROOT": str(tmp / "tuf")}
    proc = subprocess.run(
        [tool("cosign"), "verify-blob-attestation", "--bundle", "att.bundle", *extra, *args, "--type", PTYPE, "blob"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode == 0, proc.stderr


def ours(bundle: bytes, trust: TrustConfig) -> Any:
    return verify_candidate(Candidate(kind="bundle", data=bundle, source="imported", attached_to=""), DIGEST, trust)


def cli_trust(root: bytes, *, ignore_tlog: bool = False, **flags: Any) -> TrustConfig:
    """The TrustConfig `stella attest verify-blob-attestation --certificate-identity …
    --certificate-oidc-issuer … --trusted-root FILE [--insecure-ignore-tlog] [flags]` builds."""
    trust = TrustConfig(
        authorities=(KeylessAuthority(name="certificate-identity", issuer=ISSUER, subject=IDENTITY),),
        require_tlog=not ignore_tlog,
        sigstore=SigstoreRoots(trusted_root_json=root, trusted_root_source="root.json", offline=True),
        fingerprint="cli",
        keyless_timestamp_without_tlog=ignore_tlog,
    )
    return apply_trust_flags(trust, trust_flag_fragment(**flags))


@pytest.mark.parametrize("entry_kind", ["dsse", "intoto"])
def test_a_bundle_with_its_signature_twice_is_refused_by_both(tmp_path: Path, test_sigstore: TestSigstore, entry_kind: str) -> None:
    att = test_sigstore.attest(_statement(), entry_kind=entry_kind)
    root = test_sigstore.trusted_root_json()
    assert cosign(tmp_path, att.bundle_json(), root, *ID)[0] and ours(att.bundle_json(), cli_trust(root)).verified
    doc = json.loads(att.bundle_json())
    doc["dsseEnvelope"]["signatures"].append(dict(doc["dsseEnvelope"]["signatures"][0]))
    bundle = json.dumps(doc).encode()
    ok, err = cosign(tmp_path, bundle, root, *ID)
    assert not ok and "exactly one signature" in err
    res = ours(bundle, cli_trust(root))
    assert res.errors[0].reason == "MALFORMED_ENVELOPE" and "exactly one signature" in res.errors[0].message


PIN_FLAGS = {
    "--certificate-github-workflow-trigger": ("gh_workflow_trigger", "push"),
    "--certificate-github-workflow-sha": ("gh_workflow_sha", "0123456789abcdef0123456789abcdef01234567"),
    "--certificate-github-workflow-name": ("gh_workflow_name", "release"),
    "--certificate-github-workflow-repository": ("gh_workflow_repository", "acme/app"),
    "--certificate-github-workflow-ref": ("gh_workflow_ref", "refs/heads/main"),
}


@pytest.mark.parametrize("flag", sorted(PIN_FLAGS))
@pytest.mark.parametrize("case", ["match", "other-value", "only-successor", "missing"])
def test_github_workflow_pins_agree_with_cosign(tmp_path: Path, test_sigstore: TestSigstore, flag: str, case: str) -> None:
    param, value = PIN_FLAGS[flag]
    exts = {"match": github_extensions(), "other-value": github_extensions(), "only-successor": github_extensions(deprecated=False), "missing": ()}[case]
    wanted = value + "-other" if case == "other-value" else value
    bundle = test_sigstore.attest(_statement(), extensions=exts).bundle_json()
    root = test_sigstore.trusted_root_json()
    theirs, err = cosign(tmp_path, bundle, root, *ID, flag, wanted)
    res = ours(bundle, cli_trust(root, **{param: wanted}))
    assert theirs == (case == "match"), err
    assert res.verified == (case == "match"), res.errors
    if case != "match":
        assert res.errors[0].reason == "IDENTITY_MISMATCH"


def _github_bundle(ts: TestSigstore, ca: FulcioCA, tsa: TsaServer, **issue: Any) -> bytes:
    leaf = ts.issue(ca=ca, sct="none", extensions=github_extensions(), **issue)
    att = ts.attest(_statement(), leaf=leaf)
    return att.bundle_json(with_entry=False, timestamps=(tsa.timestamp(att.signature),))


def test_github_instance_recipe_agrees_with_cosign(tmp_path: Path, test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """docs/verification.md §4b: the GitHub-instance recipe, flag for flag."""
    ca = FulcioCA.create("fulcio.githubapp.test")
    root = json.dumps(github_root(ca, tsa)).encode()
    bundle = _github_bundle(test_sigstore, ca, tsa)
    recipe = ("--insecure-ignore-sct", "--insecure-ignore-tlog", "--use-signed-timestamps")
    assert cosign(tmp_path, bundle, root, *ID, *recipe)[0]
    res = ours(bundle, cli_trust(root, ignore_tlog=True, gh_insecure_ignore_sct=True, gh_use_signed_timestamps=True))
    assert res.verified and len(res.timestamps) == 1, res.errors
    # without --insecure-ignore-sct: both refuse
    ok, err = cosign(tmp_path, bundle, root, *ID, "--insecure-ignore-tlog", "--use-signed-timestamps")
    assert not ok and "SCT" in err
    assert ours(bundle, cli_trust(root, ignore_tlog=True, gh_use_signed_timestamps=True)).errors[0].reason == "SCT_INVALID"
    # the timestamp of a certificate that had expired: both refuse
    late = _github_bundle(test_sigstore, ca, tsa, not_before=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2))
    assert not cosign(tmp_path, late, root, *ID, *recipe)[0]
    res = ours(late, cli_trust(root, ignore_tlog=True, gh_insecure_ignore_sct=True, gh_use_signed_timestamps=True))
    assert res.errors[0].reason == "TIMESTAMP_INVALID"


def test_a_timestamp_after_expiry_next_to_a_good_log_entry(tmp_path: Path, test_sigstore: TestSigstore, tsa: TsaServer) -> None:
    """The issue's case: logged while valid, timestamped after expiry. cosign refuses it with
    --use-signed-timestamps (and ignores the timestamp without it); we always refuse it."""
    doc = test_sigstore.trusted_root()
    doc["timestampAuthorities"] = [tsa_entry(tsa)]
    root = json.dumps(doc).encode()
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    att = test_sigstore.attest(_statement(), not_before=old, integrated_time=int((old + dt.timedelta(minutes=1)).timestamp()), entry_kind="intoto")
    bundle = att.bundle_json(timestamps=(tsa.timestamp(att.signature),))
    assert not cosign(tmp_path, bundle, root, *ID, "--use-signed-timestamps")[0]
    assert cosign(tmp_path, bundle, root, *ID)[0]  # cosign without the flag: the timestamp is not looked at
    assert ours(bundle, cli_trust(root)).errors[0].reason == "TIMESTAMP_INVALID"


def test_rsa_pss_by_a_pkcs1_key_is_refused_by_both(tmp_path: Path) -> None:
    key = make_private_key("rsa2048")
    (tmp_path / "rsa.pub").write_bytes(keys.public_key_pem(key.public_key()))
    payload = _statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)

    def bundle(sig: bytes) -> bytes:
        env = {"payload": base64.b64encode(payload).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO, "signatures": [{"sig": base64.b64encode(sig).decode()}]}
        return json.dumps({"mediaType": BUNDLE_V03, "verificationMaterial": {"publicKey": {"hint": ""}}, "dsseEnvelope": env}).encode()

    trust = TrustConfig(authorities=(key_authority(key),), require_tlog=False)
    flags = ("--key", "rsa.pub", "--insecure-ignore-tlog")
    good = bundle(key.sign(pae, padding.PKCS1v15(), hashes.SHA256()))  # type: ignore[union-attr]
    assert cosign(tmp_path, good, None, *flags)[0] and ours(good, trust).verified
    pss = bundle(key.sign(pae, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()))  # type: ignore[union-attr]
    assert not cosign(tmp_path, pss, None, *flags)[0]
    assert ours(pss, trust).errors[0].reason == "SIGNATURE_INVALID"
