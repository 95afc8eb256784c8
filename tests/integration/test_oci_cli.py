"""``stella attest attach | oci-list | download`` against real registries, compared with what
the real cosign shows (``cosign tree``, ``cosign download attestation``) for the same image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from stellaops.cli import cli
from stellaops.reference import cosign_attestation_tag, parse_reference

from tests.fixtures.images import (
    cosign_attest,
    loopback_client,
    make_envelope,
    make_key,
    push_test_image,
    run_cosign,
)

pytestmark = pytest.mark.cosign

SLSA02 = "https://slsa.dev/provenance/v0.2"
SCAN = "stellaops.io/predicates/scan-result@v1"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray stellaops.yaml or docker credentials from the machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STELLAOPS_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


@pytest.fixture(params=["ocireg", "ggcr_registry", "distribution_registry"])
def registry(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def stella(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=True)


def _ok(result: Result) -> str:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _populate(registry: str, repo: str, cosign_key: str, tmp_path: Path) -> tuple[str, str]:
    """An image carrying attestations from every writer: cosign legacy, cosign bundle, and
    `stella attest attach` in all three formats."""
    client = loopback_client()
    digest = push_test_image(registry, repo, "v1", client=client)
    ref = f"{registry}/{repo}:v1"
    cosign_attest(cosign_key, f"{registry}/{repo}@{digest}", {"buildType": "legacy"}, "slsaprovenance", str(tmp_path),
                  legacy=True)
    cosign_attest(cosign_key, f"{registry}/{repo}@{digest}", {"buildType": "bundle"}, "slsaprovenance", str(tmp_path))
    env = tmp_path / f"{repo.replace('/', '_')}.dsse.json"
    env.write_bytes(make_envelope(make_key(), f"{registry}/{repo}", digest, SCAN, {"scanner": {"name": "s", "version": "1"}}))
    _ok(stella("attest", "attach", "--image", ref, "--attestation", str(env), "--format", "bundle,legacy,dsse"))
    return ref, digest


def _cosign_tree_set(ref: str) -> set[tuple[str, str]]:
    out = run_cosign("tree", ref).stdout
    items: set[tuple[str, str]] = set()
    section = ""
    for line in out.splitlines():
        if "💾 Attestations for an image tag:" in line:
            section = "att"
        elif "artifacts via OCI referrer:" in line:
            section = "referrer"
            items.add(("referrer", line.rsplit("@", 1)[1].strip()))
        elif "🍒" in line and section == "att":
            items.add(("att", line.split("🍒")[1].strip()))
        elif "└── " in line and not line.startswith("   "):
            section = ""  # signatures, SBOMs: not attestations
    return items


def _oci_list_set(doc: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for e in doc["attestations"]:
        if e["attachedTo"] != doc["digest"]:
            continue
        if e["source"] == "cosign-tag":
            out.add(("att", e["digest"]))
        elif e["source"] in ("bundle", "referrers", "referrers-tag"):
            out.add(("referrer", e["manifestDigest"]))
    return out


def test_oci_list_shows_what_cosign_tree_shows(registry: str, cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    ref, digest = _populate(registry, "cli/tree", cosign_keypair[0], tmp_path)
    doc = json.loads(_ok(stella("attest", "oci-list", "--image", ref, "--output", "json")))
    assert doc["digest"] == digest and doc["skipped"] == []
    theirs = _cosign_tree_set(ref)
    ours = _oci_list_set(doc)
    assert ours == theirs
    # 2 .att layers (cosign + ours), 3 referrers (cosign bundle, our bundle, our DSSE referrer)
    assert sorted(k for k, _ in ours) == ["att", "att", "referrer", "referrer", "referrer"]
    for e in doc["attestations"]:
        assert set(e) >= {"source", "artifactType", "predicateType", "digest", "created", "annotations"}
        assert e["predicateType"] in (SLSA02, SCAN)


def test_oci_list_text_tree(ocireg: str, cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    ref, digest = _populate(ocireg, "cli/text", cosign_keypair[0], tmp_path)
    out = _ok(stella("attest", "oci-list", "--image", ref))
    lines = out.splitlines()
    assert lines[0] == f"📦 Supply Chain Security Related artifacts for an image: {ref}"
    name = parse_reference(ref).name
    assert lines[1] == f"└── 💾 Attestations for an image tag: {name}:{cosign_attestation_tag(digest)}"
    assert lines[2].startswith("   ├── 🍒 sha256:") and lines[3].startswith("   └── 🍒 sha256:")
    assert sum("artifacts via OCI referrer:" in line for line in lines) == 3
    assert any(f"🔗 {SCAN} artifacts via OCI referrer: {name}@sha256:" in line for line in lines)


def test_oci_list_nothing_attached(ocireg: str) -> None:
    push_test_image(ocireg, "cli/bare", "v1")
    ref = f"{ocireg}/cli/bare:v1"
    out = _ok(stella("attest", "oci-list", "--image", ref))
    assert "No attestations found for image " + ref in out
    doc = json.loads(_ok(stella("attest", "oci-list", "--image", ref, "-o", "json")))
    assert doc["attestations"] == []


def test_oci_list_multi_arch(ocireg: str, tmp_path: Path) -> None:
    client = loopback_client()
    index = push_test_image(ocireg, "cli/multi", "v1", platforms=["linux/amd64", "linux/arm64"], client=client)
    amd64 = client.get_manifest(ocireg, "cli/multi", index).manifests[0].digest
    env = tmp_path / "e.json"
    env.write_bytes(make_envelope(make_key(), f"{ocireg}/cli/multi", amd64))
    _ok(stella("attest", "attach", "--image", f"{ocireg}/cli/multi@{amd64}", "--attestation", str(env)))
    doc = json.loads(_ok(stella("attest", "oci-list", "--image", f"{ocireg}/cli/multi:v1", "-o", "json")))
    assert doc["digest"] == index and amd64 in doc["platformDigests"]
    assert {e["attachedTo"] for e in doc["attestations"]} == {amd64}
    text = _ok(stella("attest", "oci-list", "--image", f"{ocireg}/cli/multi:v1"))
    assert f"(platform manifest {amd64})" in text


def _parsed_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_download_prints_what_cosign_download_prints(registry: str, cosign_keypair: tuple[str, str],
                                                     tmp_path: Path) -> None:
    ref, _ = _populate(registry, "cli/download", cosign_keypair[0], tmp_path)
    theirs = _parsed_lines(run_cosign("download", "attestation", ref).stdout)
    ours_all = _parsed_lines(_ok(stella("attest", "download", ref)))
    # cosign does not read plain DSSE referrers; we print them last
    ours = ours_all[: len(theirs)]
    assert len(ours_all) == len(theirs) + 1
    n_bundles = sum("dsseEnvelope" in d for d in theirs)
    assert n_bundles == 2
    assert all("dsseEnvelope" in d for d in ours[:n_bundles])  # bundles first, as cosign
    assert sorted(map(json.dumps, ours[:n_bundles])) == sorted(map(json.dumps, theirs[:n_bundles]))
    # legacy order is not deterministic in cosign: compare as sets, but exact line shape
    assert sorted(map(json.dumps, ours[n_bundles:])) == sorted(map(json.dumps, theirs[n_bundles:]))
    for d in ours[n_bundles:]:
        assert list(d) == ["payloadType", "payload", "signatures"]
        assert all(list(s) == ["keyid", "sig"] for s in d["signatures"])
    # legacy lines are byte for byte what cosign prints (Go's json.Marshal of its struct)
    raw_theirs = run_cosign("download", "attestation", ref).stdout.splitlines()[n_bundles:]
    raw_ours = _ok(stella("attest", "download", ref)).splitlines()[n_bundles:len(theirs)]
    assert sorted(raw_ours) == sorted(raw_theirs)


def test_download_by_predicate_type(ocireg: str, cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    ref, _ = _populate(ocireg, "cli/download-type", cosign_keypair[0], tmp_path)
    theirs = _parsed_lines(run_cosign("download", "attestation", "--predicate-type", "slsaprovenance", ref).stdout)
    ours = _parsed_lines(_ok(stella("attest", "download", "--predicate-type", "slsaprovenance", ref)))
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, theirs))
    assert len(_parsed_lines(_ok(stella("attest", "download", "--predicate-type", SCAN, ref)))) == 3
    missing = stella("attest", "download", "--predicate-type", "https://example.com/none", ref)
    assert missing.exit_code != 0
    assert missing.exception is not None
    assert "no attestations with predicate type 'https://example.com/none' found" in str(missing.exception)


def test_download_then_attach_round_trip(ocireg: str, cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    client = loopback_client()
    digest = push_test_image(ocireg, "cli/source", "v1", client=client)
    cosign_attest(cosign_keypair[0], f"{ocireg}/cli/source@{digest}", {"x": 1}, "slsaprovenance", str(tmp_path),
                  legacy=True)
    out = tmp_path / "attestation.json"
    out.write_text(_ok(stella("attest", "download", f"{ocireg}/cli/source:v1")))
    # what download wrote attaches again, as a bundle referrer this time (cosign v3 then reads it)
    res = json.loads(_ok(stella("attest", "attach", "--image", f"{ocireg}/cli/source:v1", "--attestation", str(out),
                                "--format", "bundle", "-o", "json")))
    assert [r["format"] for r in res] == ["bundle"]
    proc = run_cosign("verify-attestation", "--key", cosign_keypair[1], "--insecure-ignore-tlog", "--type",
                      "slsaprovenance", f"{ocireg}/cli/source:v1", check=False)
    assert proc.returncode == 0, proc.stderr


def test_seed_attach_command_line(ocireg: str, tmp_path: Path) -> None:
    """The seed's `stella attest attach` example, with only the registry host replaced."""
    digest = push_test_image(ocireg, "app", "v1.0.0")
    (tmp_path / "scan.json").write_bytes(make_envelope(make_key(), f"{ocireg}/app", digest, SCAN, {"findings": []}))
    out = _ok(stella(
        "attest", "attach",
        "--image", f"{ocireg}/app:v1.0.0",
        "--attestation", "scan.json",
        "--annotation", "org.example/team=security",
        "--annotation", "org.example/policy-version=2.0",
    ))
    assert "sigstore bundle referrer" in out and "cosign .att layer" in out
    doc = json.loads(_ok(stella("attest", "oci-list", "--image", f"{ocireg}/app:v1.0.0", "--output", "json")))
    bundle = next(e for e in doc["attestations"] if e["source"] == "bundle")
    assert bundle["annotations"]["org.example/team"] == "security"
    assert bundle["annotations"]["org.example/policy-version"] == "2.0"
    assert bundle["annotations"]["dev.stellaops/predicate-type"] == SCAN
    assert bundle["created"]


def test_attach_json_output_with_tenant_and_scan_id(ggcr_registry: str, tmp_path: Path) -> None:
    digest = push_test_image(ggcr_registry, "cli/json", "v1")
    (tmp_path / "e.json").write_bytes(make_envelope(make_key(), f"{ggcr_registry}/cli/json", digest))
    res = json.loads(_ok(stella("attest", "attach", "--image", f"{ggcr_registry}/cli/json:v1", "--attestation", "e.json",
                                "--tenant", "acme", "--scan-id", "scan-7", "--format", "dsse", "--output", "json")))
    assert res[0]["format"] == "dsse" and res[0]["fallbackTag"] == "sha256-" + digest[7:]
    m = loopback_client().get_manifest(ggcr_registry, "cli/json", res[0]["manifestDigest"])
    assert m.annotations["dev.stellaops/tenant"] == "acme" and m.annotations["dev.stellaops/scan-id"] == "scan-7"


def test_attach_reads_stdin_and_several_documents(ocireg: str) -> None:
    digest = push_test_image(ocireg, "cli/stdin", "v1")
    key = make_key()
    data = make_envelope(key, f"{ocireg}/cli/stdin", digest) + b"\n" + make_envelope(key, f"{ocireg}/cli/stdin", digest) + b"\n"
    res = json.loads(_ok(stella("attest", "attach", "--image", f"{ocireg}/cli/stdin:v1", "--attestation", "-",
                                "--format", "legacy", "-o", "json", input=data)))
    assert len(res) == 2 and res[0]["layerDigest"] != res[1]["layerDigest"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--annotation", "novalue"], "is not key=value"),
        (["--format", "bundle,zip"], "unknown format"),
    ],
)
def test_attach_usage_errors(ocireg: str, tmp_path: Path, args: list[str], reason: str) -> None:
    digest = push_test_image(ocireg, "cli/usage", "v1")
    (tmp_path / "e.json").write_bytes(make_envelope(make_key(), f"{ocireg}/cli/usage", digest))
    result = stella("attest", "attach", "--image", f"{ocireg}/cli/usage:v1", "--attestation", "e.json", *args)
    assert result.exit_code != 0
    assert reason in (result.output + str(result.exception))


def _stella_exe() -> str:
    return str(Path(sys.executable).parent / "stella")


def test_attach_refusal_exit_code_and_message(ocireg: str, tmp_path: Path) -> None:
    push_test_image(ocireg, "cli/refuse", "v1")
    (tmp_path / "e.json").write_bytes(make_envelope(make_key(), f"{ocireg}/cli/refuse", "sha256:" + "9" * 64))
    proc = subprocess.run(
        [_stella_exe(), "attest", "attach", "--image", f"{ocireg}/cli/refuse:v1", "--attestation", "e.json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "DOCKER_CONFIG": str(tmp_path)},
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: SUBJECT_MISMATCH: ")
    assert "Hint:" in proc.stderr


def test_registry_not_in_allow_list_is_refused(ocireg: str, tmp_path: Path) -> None:
    push_test_image(ocireg, "cli/allow", "v1")
    (tmp_path / "stellaops.yaml").write_text("registries:\n  allow: [registry.example.com]\n")
    result = stella("attest", "oci-list", "--image", f"{ocireg}/cli/allow:v1", "--config", "stellaops.yaml")
    assert result.exit_code != 0
    assert getattr(result.exception, "reason", "") == "REGISTRY_NOT_ALLOWED"


def test_unreachable_registry_exit_code(tmp_path: Path) -> None:
    from tests.fixtures.registries import free_port

    proc = subprocess.run(
        [_stella_exe(), "attest", "oci-list", "--image", f"127.0.0.1:{free_port()}/app:v1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "DOCKER_CONFIG": str(tmp_path)},
    )
    assert proc.returncode == 3
    assert "REGISTRY_UNREACHABLE" in proc.stderr


def test_help_texts_have_examples() -> None:
    for command in ("attach", "oci-list", "download"):
        out = _ok(stella("attest", command, "--help"))
        assert "Examples:" in out and "registry.example.com/app:v1.0.0" in out


def test_oci_list_imported(ocireg: str, tmp_path: Path) -> None:
    from stellaops.store import open_store

    digest = push_test_image(ocireg, "cli/imported", "v1")
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    try:
        store.put("acme", make_envelope(make_key(), f"{ocireg}/cli/imported", digest), kind="dsse",
                  subject_digests=[digest], predicate_type=SLSA02, image=None, annotations={})
    finally:
        store.close()
    (tmp_path / "stellaops.yaml").write_text(f"store:\n  dsn: sqlite:///{db}\n")
    ref = f"{ocireg}/cli/imported:v1"
    without = json.loads(_ok(stella("attest", "oci-list", "--image", ref, "-o", "json", "--config", "stellaops.yaml")))
    assert without["attestations"] == []
    doc = json.loads(_ok(stella("attest", "oci-list", "--image", ref, "-o", "json", "--imported",
                                "--config", "stellaops.yaml")))
    assert [(e["source"], e["predicateType"]) for e in doc["attestations"]] == [("imported", SLSA02)]
    text = _ok(stella("attest", "oci-list", "--image", ref, "--imported", "--config", "stellaops.yaml"))
    assert "Imported attestations (store)" in text


def test_download_nothing_attached_and_missing_image(ocireg: str) -> None:
    push_test_image(ocireg, "cli/none", "v1")
    assert _ok(stella("attest", "download", f"{ocireg}/cli/none:v1")) == ""  # as cosign: empty, rc 0
    missing = stella("attest", "download", f"{ocireg}/cli/none:v2")
    assert missing.exit_code != 0
    assert getattr(missing.exception, "reason", "") == "MANIFEST_NOT_FOUND"
