"""`stella attest import` exit codes and output, through the real entry point (no registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stellaops.cli import main
from tests.unit.test_import_parse import IMAGE_DIGEST, OTHER_DIGEST, bundle, cosign_output, envelope


def run(tmp_path, content: bytes, *extra: str, dsn: str | None = None) -> int:  # type: ignore[no-untyped-def]
    (tmp_path / "a.json").write_bytes(content)
    (tmp_path / "c.yaml").write_text(f"store:\n  dsn: {dsn or f'sqlite:///{tmp_path}/s.db'}\n")
    with pytest.raises(SystemExit) as exc:
        main(["attest", "import", "--envelope", str(tmp_path / "a.json"), "--config", str(tmp_path / "c.yaml"), *extra])
    return int(exc.value.code or 0)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (cosign_output(bundle(), envelope()), 0),
        (b"", 1),  # cosign printed nothing: no attestation
        (b'{"hello":"world"}\n', 1),  # JSON, but not an attestation
        (b"not json\n", 2),
    ],
    ids=["imported", "empty-download", "not-an-attestation", "not-json"],
)
def test_exit_codes(tmp_path, content, code) -> None:  # type: ignore[no-untyped-def]
    assert run(tmp_path, content) == code


def test_subject_mismatch_exits_1_naming_the_reason(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(tmp_path, envelope(), "--digest", OTHER_DIGEST) == 1
    err = capsys.readouterr().err
    assert "SUBJECT_MISMATCH" in err and OTHER_DIGEST in err


def test_unwritable_store_exits_3(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "blocker").write_text("")
    assert run(tmp_path, envelope(), dsn=f"sqlite:///{tmp_path}/blocker/s.db") == 3


def test_invalid_tenant_exits_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run(tmp_path, envelope(), "--tenant", "no spaces") == 2


def test_json_output_is_the_api_report(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(tmp_path, envelope(), "--digest", IMAGE_DIGEST.split(":")[1], "--tenant", "acme", "-o", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["tenant"], doc["digest"], doc["imported"], doc["results"][0]["status"]) == ("acme", IMAGE_DIGEST, 1, "imported")


def test_stdin_is_read_with_dash(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(envelope() + b"\n")))
    (tmp_path / "c.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/s.db\n")
    with pytest.raises(SystemExit) as exc:
        main(["attest", "import", "--envelope", "-", "--config", str(tmp_path / "c.yaml")])
    assert exc.value.code == 0
    assert "1 imported" in capsys.readouterr().err


# ---------------------------------------------------------------- gh attestation download (JSON Lines)
# `gh attestation download` writes <digest>.jsonl: one sigstore bundle (v0.2 or v0.3, protojson,
# one line) per attestation. Real bundles from sigstore-conformance stand in for GitHub's.
CONFORMANCE = Path(__file__).resolve().parents[1] / "data" / "verify" / "conformance"
GH_CASES = ("happy-path-intoto-in-dsse-v3", "intoto-with-custom-trust-root", "rekor2-dsse-happy-path")


def gh_lines() -> list[bytes]:
    return [json.dumps(json.loads((CONFORMANCE / c / "bundle.sigstore.json").read_text()), separators=(",", ":")).encode()
            for c in GH_CASES]


def test_gh_attestation_download_jsonl_imports_every_bundle(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    lines = gh_lines()
    assert run(tmp_path, b"\n".join(lines) + b"\n", "-o", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["imported"] == 3 and doc["errors"] == 0
    assert [(r["line"], r["kind"], r["predicateType"]) for r in doc["results"]] == [
        (n, "bundle", "https://slsa.dev/provenance/v1") for n in (1, 2, 3)]
    # again: every line is already there
    assert run(tmp_path, b"\n".join(lines) + b"\n", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["duplicates"] == 3


def test_jsonl_with_a_line_that_is_not_json_names_it_and_imports_nothing(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b, c = gh_lines()
    assert run(tmp_path, a + b"\n" + b[: len(b) // 2] + b"\n" + c + b"\n") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.json'}:2: not JSON:" in err
    assert "1 document(s) are not valid JSON; first at line 2" in err
    assert "gh attestation download" in err  # the hint names both producers


def test_jsonl_with_a_line_that_is_no_attestation_imports_the_others(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b, c = gh_lines()
    message_signature = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                                    "verificationMaterial": {}, "messageSignature": {}}).encode()
    assert run(tmp_path, b"\n".join([a, message_signature, c]) + b"\n") == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.json'}:2: error: MALFORMED_ENVELOPE: the sigstore bundle holds a messageSignature" in err
    assert "2 imported, 0 already present, 1 refused" in err
