"""`stella attest import` exit codes and output, through the real entry point (no registry)."""

from __future__ import annotations

import json

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
