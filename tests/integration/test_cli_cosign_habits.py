"""Issue 21 items 7 and 9: flags as cosign users type them, and exit codes for bad input.

Through the real entry point (``stellaops.cli.main``) against real loopback registries."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from stellaops.cli import main
from stellaops.reference import parse_reference

from tests.fixtures.images import loopback_client, make_envelope, make_key, push_test_image

SLSA02 = "https://slsa.dev/provenance/v0.2"
SCAN = "stellaops.io/predicates/scan-result@v1"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def image(ocireg: str) -> tuple[str, str, Any]:
    """A pushed image (tag reference, its digest) and an envelope about it signed with a fresh key."""
    client = loopback_client()
    repo = f"habits/app{os.urandom(3).hex()}"
    digest = push_test_image(ocireg, repo, "v1", client=client)
    ref = f"{ocireg}/{repo}:v1"
    return ref, digest, make_envelope(make_key(), parse_reference(ref).name, digest, SLSA02)


# ------------------------------------------------------------------ the image as an argument


def test_image_is_positional_on_attach_and_oci_list_and_import(
    capsys: pytest.CaptureFixture[str], image: tuple[str, str, bytes], tmp_path: Path
) -> None:
    ref, digest, env = image
    (tmp_path / "att.json").write_bytes(env)
    rc, out, err = run(capsys, "attest", "attach", ref, "--attestation", str(tmp_path / "att.json"), "-o", "json")
    assert rc == 0, err
    assert {r["format"] for r in json.loads(out)} == {"bundle", "legacy"}
    rc, out, err = run(capsys, "attest", "oci-list", ref, "-o", "json")
    assert rc == 0, err
    assert json.loads(out)["digest"] == digest and len(json.loads(out)["attestations"]) == 2
    (tmp_path / "c.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/s.db\n")
    rc, out, err = run(capsys, "attest", "import", ref, "--envelope", str(tmp_path / "att.json"),
                       "--config", str(tmp_path / "c.yaml"), "-o", "json")
    assert rc == 0, err
    assert json.loads(out)["digest"] == digest and json.loads(out)["imported"] == 1


def test_image_flag_keeps_working_and_agreeing_twice_is_fine(
    capsys: pytest.CaptureFixture[str], image: tuple[str, str, bytes]
) -> None:
    ref, digest, _ = image
    for args in (("--image", ref), (ref, "--image", ref)):
        rc, out, err = run(capsys, "attest", "oci-list", *args, "-o", "json")
        assert rc == 0, err
        assert json.loads(out)["digest"] == digest


REQUIRED = {"oci-list": [], "attach": ["--attestation", "a.json"], "sign": ["--predicate", "p.json", "--key", "k"],
            "import": ["--envelope", "a.json"]}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_two_different_images_or_none_are_usage_errors(capsys: pytest.CaptureFixture[str], command: str) -> None:
    rc, _, err = run(capsys, "attest", command, "reg.example/a:1", "--image", "reg.example/b:1", *REQUIRED[command])
    assert rc == 2 and "the image is given twice" in err
    if command != "import":  # import without an image stores under the statements' own subjects
        rc, _, err = run(capsys, "attest", command, *REQUIRED[command])
        assert rc == 2 and "Missing argument 'IMAGE'" in err


def test_sign_takes_the_image_positionally(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           image: tuple[str, str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    ref, digest, _ = image
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "key", "generate")[0] == 0
    (tmp_path / "p.json").write_text('{"buildType": "x"}')
    rc, out, err = run(capsys, "attest", "sign", ref, "--predicate", "p.json", "--type", "slsaprovenance", "--key", "cosign.key")
    assert rc == 0, err
    statement = json.loads(base64.b64decode(json.loads(out)["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]


# ------------------------------------------------------------------ -v, -d


def test_short_v_shows_the_traceback_as_verbose_does(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["attest", "sign", "reg.example/a@sha256:" + "a" * 64, "--predicate", str(tmp_path / "missing.json"),
            "--type", "slsaprovenance", "--key", str(tmp_path / "k")]
    rc, _, plain = run(capsys, *args)
    assert rc == 2 and "Traceback" not in plain and "cannot read predicate file" in plain
    for flag in ("-v", "--verbose"):
        rc, _, err = run(capsys, *args, flag)
        assert rc == 2 and "Traceback (most recent call last)" in err, flag
    # and in a bundle of short flags
    rc, _, err = run(capsys, "attest", "oci-list", "127.0.0.1:1/nothing:v1", "-vo", "json")
    assert rc == 3 and "Traceback (most recent call last)" in err


def test_debug_traces_each_registry_request(capsys: pytest.CaptureFixture[str], image: tuple[str, str, bytes],
                                            ocireg: str) -> None:
    ref, digest, _ = image
    repo = parse_reference(ref).repository
    for args in (("attest", "oci-list", ref, "-d"), ("-d", "attest", "oci-list", ref), ("attest", "--debug", "oci-list", ref)):
        rc, out, err = run(capsys, *args)
        assert rc == 0, err
        lines = [line for line in err.splitlines() if line.startswith("stella: ")]
        assert f"stella: GET http://{ocireg}/v2/{repo}/manifests/v1 -> 200" in lines or \
            f"stella: HEAD http://{ocireg}/v2/{repo}/manifests/v1 -> 200" in lines, err
        assert f"stella: GET http://{ocireg}/v2/{repo}/referrers/{digest} -> 200" in lines, err
        assert "Supply Chain Security Related artifacts" in out and "stella: " not in out  # stdout untouched
    # without the flag, no trace
    rc, _, err = run(capsys, "attest", "oci-list", ref)
    assert rc == 0 and "stella: GET" not in err


# ------------------------------------------------------------------ --type '' and bad input


@pytest.mark.parametrize("args", [
    ["attest", "sign", "reg.example/a@sha256:" + "a" * 64, "--predicate", "p.json", "--key", "k", "--type", ""],
    ["attest", "sign", "reg.example/a@sha256:" + "a" * 64, "--predicate", "p.json", "--key", "k", "--type", " "],
    ["attest", "download", "reg.example/a:1", "--predicate-type", ""],
], ids=["sign-empty", "sign-blank", "download-empty"])
def test_empty_type_is_a_usage_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    rc, _, err = run(capsys, *args)
    assert rc == 2 and "predicate type is empty" in err


@pytest.mark.parametrize(("predicate", "ptype", "words"), [
    ("not json", "slsaprovenance", "the predicate is not JSON"),
    ('{"a": 1}', SCAN, "predicate is invalid at (top level): 'scanner' is a required property"),
    ("[1, 2]", "slsaprovenance", "must be a JSON object"),
], ids=["not-json", "schema-invalid", "not-an-object"])
def test_sign_bad_predicate_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    predicate: str, ptype: str, words: str) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "key", "generate")[0] == 0
    (tmp_path / "p.json").write_text(predicate)
    rc, out, err = run(capsys, "attest", "sign", "reg.example/a@sha256:" + "a" * 64, "--predicate", "p.json",
                       "--type", ptype, "--key", "cosign.key")
    assert (rc, out) == (2, "")
    assert "PREDICATE_INVALID" in err and words in err and "p.json" in err


def test_import_not_json_exits_2_naming_every_bad_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        image: tuple[str, str, bytes]) -> None:
    _, _, env = image
    (tmp_path / "in.jsonl").write_bytes(env + b"\n{not json\n" + env + b"\n[oops\n")
    (tmp_path / "c.yaml").write_text(f"store:\n  dsn: sqlite:///{tmp_path}/s.db\n")
    rc, out, err = run(capsys, "attest", "import", "--envelope", str(tmp_path / "in.jsonl"), "--config", str(tmp_path / "c.yaml"))
    assert rc == 2
    assert f"{tmp_path / 'in.jsonl'}:2: not JSON:" in err and f"{tmp_path / 'in.jsonl'}:4: not JSON:" in err


def test_the_trace_ends_with_the_command(capsys: pytest.CaptureFixture[str], image: tuple[str, str, bytes]) -> None:
    """In-process callers (tests, scripts calling main) are not left with the trace on."""
    ref, _, _ = image
    assert run(capsys, "attest", "oci-list", ref, "-d")[0] == 0
    from tests.fixtures.images import loopback_client

    client = loopback_client()
    client.resolve(parse_reference(ref))
    client.close()
    assert "stella: " not in capsys.readouterr().err


@pytest.mark.parametrize(("content", "code", "words"), [
    (b"not json\n", 2, "is not JSON"),
    (b'{"hello": "world"}\n', 1, "MALFORMED_ENVELOPE"),
], ids=["not-json", "json-but-no-attestation"])
def test_attach_exit_codes_agree_with_import(capsys: pytest.CaptureFixture[str], image: tuple[str, str, bytes],
                                             tmp_path: Path, content: bytes, code: int, words: str) -> None:
    ref, _, _ = image
    (tmp_path / "a.json").write_bytes(content)
    rc, out, err = run(capsys, "attest", "attach", ref, "--attestation", str(tmp_path / "a.json"))
    assert (rc, out) == (code, "") and words in err, err
