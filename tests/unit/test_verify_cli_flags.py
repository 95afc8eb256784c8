"""``stella attest verify`` / ``verify-blob-attestation`` flags, through the real CLI (click's
CliRunner) and the real verification code: ``--type`` is a usage error when empty, the
``slsaprovenance`` (SLSA v0.2, cosign's meaning) hint when only SLSA v1 was found (issue 21
item 7), and JSON Lines bundle files (``gh attestation download``) whose bad line is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stellaops.cli import cli, exit_code_for
from stellaops.errors import StellaError
from stellaops.predicates import SLSA_V1
from tests.hardening._support import new_key, sign_envelope, statement, write_public_key

SLSA_V1_PREDICATE = {
    "buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://example.com/builder"}},
}


def _run(args: list[str]) -> tuple[int, str, str]:
    """(exit code, reason or "", everything printed plus the error)."""
    res = CliRunner().invoke(cli, args, env={"STELLAOPS_CONFIG": ""})
    if isinstance(res.exception, StellaError):
        return exit_code_for(res.exception), res.exception.reason, res.output + str(res.exception) + " hint: " + res.exception.hint
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, "", res.output


@pytest.fixture()
def signed_blob(tmp_path: Path) -> dict[str, Any]:
    key = new_key()
    blob = tmp_path / "app.tar"
    blob.write_bytes(b"the blob\n")
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    env = tmp_path / "env.json"
    env.write_bytes(sign_envelope(statement(digest, predicate_type=SLSA_V1, predicate=SLSA_V1_PREDICATE), [key]))
    return {"blob": str(blob), "env": str(env), "pub": str(write_public_key(key, tmp_path / "cosign.pub"))}


def _blob_args(b: dict[str, Any], *extra: str) -> list[str]:
    return ["attest", "verify-blob-attestation", b["blob"], "--key", b["pub"], "--insecure-ignore-tlog", *extra]


def test_slsa_v1_verifies_with_slsaprovenance1(signed_blob: dict[str, Any]) -> None:
    # the control: the envelope is good, the type is what decides below
    rc, _, out = _run(_blob_args(signed_blob, "--signature", signed_blob["env"], "--type", "slsaprovenance1"))
    assert rc == 0, out


def test_slsaprovenance_on_slsa_v1_hints_slsaprovenance1(signed_blob: dict[str, Any]) -> None:
    rc, reason, out = _run(_blob_args(signed_blob, "--signature", signed_blob["env"], "--type", "slsaprovenance"))
    assert (rc, reason) == (1, "NO_ATTESTATION"), out
    assert "pass --type slsaprovenance1" in out and "SLSA v0.2" in out, out


def test_other_type_mismatch_keeps_the_plain_hint(signed_blob: dict[str, Any]) -> None:
    rc, reason, out = _run(_blob_args(signed_blob, "--signature", signed_blob["env"], "--type", "spdxjson"))
    assert (rc, reason) == (1, "NO_ATTESTATION"), out
    assert "slsaprovenance1" not in out and "pass --type with the attestation's predicate type" in out, out


@pytest.mark.parametrize("command", ["verify", "verify-blob-attestation"])
@pytest.mark.parametrize("value", ["", "  ", " custom"])
def test_empty_or_padded_type_is_a_usage_error(command: str, value: str, signed_blob: dict[str, Any]) -> None:
    target = ["127.0.0.1:1/app:v1"] if command == "verify" else [signed_blob["blob"], "--signature", signed_blob["env"]]
    rc, _, out = _run(["attest", command, *target, "--key", signed_blob["pub"], "--insecure-ignore-tlog", "--type", value])
    assert rc == 2, out
    assert "predicate type is empty" in out or "leading or trailing spaces" in out, out


def test_jsonl_bad_line_is_named(signed_blob: dict[str, Any], tmp_path: Path) -> None:
    good = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {}, "dsseEnvelope": {}})
    path = tmp_path / "bundles.jsonl"
    path.write_text(good + "\n\n" + "{not json\n")
    rc, reason, out = _run(_blob_args(signed_blob, "--bundle", str(path), "--type", "slsaprovenance1"))
    assert (rc, reason) == (1, "MALFORMED_ENVELOPE"), out
    assert f"{path} line 3" in out, out


def test_jsonl_line_that_is_no_sigstore_bundle_is_named(signed_blob: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "bundles.jsonl"
    path.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}\n{"base64Signature": "AA=="}\n')
    rc, reason, out = _run(_blob_args(signed_blob, "--bundle", str(path), "--type", "slsaprovenance1"))
    assert (rc, reason) == (1, "MALFORMED_ENVELOPE"), out
    assert f"{path} line 2 is not a sigstore bundle" in out, out


def test_jsonl_every_bundle_is_tried_and_none_verifying_fails(signed_blob: dict[str, Any], tmp_path: Path) -> None:
    junk = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"publicKey": {"hint": ""}},
            "dsseEnvelope": json.loads(Path(signed_blob["env"]).read_text())}  # fmt: skip
    junk["dsseEnvelope"]["signatures"][0]["sig"] = "AAAA"
    path = tmp_path / "bundles.jsonl"
    path.write_text(json.dumps(junk) + "\n" + json.dumps(junk) + "\n")
    rc, reason, out = _run(_blob_args(signed_blob, "--bundle", str(path), "--type", "slsaprovenance1"))
    assert rc == 1 and reason, out
    assert f"{path} line 1: FAIL" in out and f"{path} line 2: FAIL" in out, out
    assert "none of the 2 bundles" in out, out
