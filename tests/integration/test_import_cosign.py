"""The real `cosign download attestation` output imports cleanly, by CLI and by API.

cosign v3.1.3 attests an image in a real local registry (ocireg, with the referrers API) in
both forms: the default sigstore bundle referrer and the legacy `.att` tag
(`--new-bundle-format=false`), key-based and offline (`--use-signing-config=false
--tlog-upload=false`). `cosign download attestation` then prints one bundle line and one
envelope line, which `stella attest import` (exactly the seed's command line) and
`POST /api/v1/attestations/import` store, into SQLite and into a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from stellaops.candidate import KIND_BUNDLE, KIND_DSSE, SOURCE_IMPORTED
from stellaops.cli import cli
from stellaops.config import load_config
from stellaops.store import open_store
from tests.fixtures.tools import tool

pytestmark = pytest.mark.cosign

TOKEN = "acme-import-token-5f0c1e2d3b4a59687766"


@dataclass(frozen=True)
class Downloaded:
    image: str  # tag reference, as the seed writes it
    digest: str
    output: bytes  # exactly what `cosign download attestation` printed
    other_image: str  # another image in the same registry (its digest is not the subject)
    public_key: Path  # cosign.pub of the key that signed both attestations


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    env = dict(os.environ, COSIGN_PASSWORD="pw", HOME=str(cwd), COSIGN_YES="true")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, timeout=120, **kw)
    assert proc.returncode == 0, f"{args[:3]} failed: {proc.stderr.decode()[-2000:]}"
    return proc


def _push_image(registry: str, name: str, root: Path) -> str:
    layer = root / f"{name}.tar"
    content = root / name
    content.write_bytes(os.urandom(256))
    subprocess.run(["tar", "cf", str(layer), "-C", str(root), name], check=True)
    out = _run([tool("crane"), "append", "-f", str(layer), "-t", f"{registry}/demo/{name}:v1.0.0"], root)
    return out.stdout.decode().strip().rsplit("@", 1)[1]


@pytest.fixture(scope="module")
def downloaded(ocireg, tmp_path_factory) -> Downloaded:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("cosign-import")
    digest = _push_image(ocireg, "app", root)
    _push_image(ocireg, "other", root)
    image = f"{ocireg}/demo/app:v1.0.0"
    cosign = tool("cosign")
    _run([cosign, "generate-key-pair"], root)
    (root / "provenance.json").write_text(json.dumps({"buildType": "https://example.com/build@v1", "builder": {"id": "ci"}}))
    offline = ["--key", "cosign.key", "--use-signing-config=false", "--tlog-upload=false"]
    _run([cosign, "attest", *offline, "--type", "slsaprovenance", "--predicate", "provenance.json", image], root)
    _run([cosign, "attest", *offline, "--new-bundle-format=false", "--type", "slsaprovenance",
          "--predicate", "provenance.json", image], root)  # fmt: skip
    out = _run([cosign, "download", "attestation", image], root).stdout
    return Downloaded(
        image=image, digest=digest, output=out, other_image=f"{ocireg}/demo/other:v1.0.0", public_key=root / "cosign.pub"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def config_file(request, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    dsn = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    (tmp_path / "acme.token").write_text(TOKEN + "\n")
    cfg = tmp_path / "stellaops.yaml"
    cfg.write_text(
        "registries:\n  allowPrivate: true\n"
        f"store:\n  dsn: {dsn}\n"
        "importApi:\n  tokens:\n    - tenant: acme\n      tokenFile: acme.token\n"
    )
    return cfg


def _lines(output: bytes) -> list[bytes]:
    return [line for line in output.split(b"\n") if line.strip()]


def test_cosign_download_prints_a_bundle_and_a_legacy_envelope(downloaded) -> None:  # type: ignore[no-untyped-def]
    docs = [json.loads(line) for line in _lines(downloaded.output)]
    assert len(docs) == 2
    assert docs[0]["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json" and "dsseEnvelope" in docs[0]
    assert docs[1]["signatures"][0]["keyid"] == "" and docs[1]["payloadType"] == "application/vnd.in-toto+json"


def _check_stored(dsn: str, downloaded: Downloaded) -> None:
    store = open_store(dsn)
    try:
        cands = store.find_by_digest(downloaded.digest)
        assert sorted(c.kind for c in cands) == [KIND_BUNDLE, KIND_DSSE]
        assert {c.data for c in cands} == set(_lines(downloaded.output))  # the exact bytes cosign printed
        assert all(c.source == SOURCE_IMPORTED and c.annotations["dev.stellaops/tenant"] == "acme" for c in cands)
        (listed_image,) = {a.image for a in store.list_for_tenant("acme")}
        assert listed_image in (downloaded.image, None)
    finally:
        store.close()


def test_seed_cli_command_imports_the_cosign_download(downloaded, config_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "attestation.json"
    path.write_bytes(downloaded.output)
    args = ["attest", "import", "--envelope", str(path), "--image", downloaded.image,
            "--config", str(config_file), "--tenant", "acme"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.count(" imported ") == 2
    _check_stored(load_config(str(config_file)).store.dsn, downloaded)
    again = CliRunner().invoke(cli, [*args, "--output", "json"])
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["imported"], report["duplicates"], report["digest"]) == (0, 2, downloaded.digest)


def test_seed_cli_command_line_runs_as_written(downloaded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # stella attest import --envelope attestation.json --image registry.example.com/app:v1.0.0
    # (host replaced by the local registry; config from ./stellaops.yaml, as a user would have)
    (tmp_path / "attestation.json").write_bytes(downloaded.output)
    (tmp_path / "stellaops.yaml").write_text(f"registries:\n  allowPrivate: true\nstore:\n  dsn: sqlite:///{tmp_path}/s.db\n")
    stella = Path(sys.executable).with_name("stella")
    env = {k: v for k, v in os.environ.items() if k != "STELLAOPS_CONFIG"}
    proc = subprocess.run(
        [str(stella), "attest", "import", "--envelope", "attestation.json", "--image", downloaded.image],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2 imported, 0 already present, 0 refused" in proc.stderr
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        assert len(store.find_by_digest(downloaded.digest)) == 2
        assert {a.tenant for a in store.list_for_tenant("default")} == {"default"}
    finally:
        store.close()


def test_cli_refuses_the_download_for_another_image(downloaded, config_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "attestation.json"
    path.write_bytes(downloaded.output)
    result = CliRunner().invoke(
        cli, ["attest", "import", "--envelope", str(path), "--image", downloaded.other_image, "--config", str(config_file)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and getattr(result.exception, "reason", "") == "SUBJECT_MISMATCH"
    assert "SUBJECT_MISMATCH" in result.output


def _app(config_file: Path) -> Flask:
    from stellaops import importapi

    app = Flask("import-test")
    app.config["STELLAOPS_CONFIG"] = load_config(str(config_file))
    app.register_blueprint(importapi.bp)
    return app


@pytest.mark.parametrize("strip_newlines", [False, True], ids=["data-binary", "curl-d"])
def test_api_imports_the_cosign_download(downloaded, config_file, strip_newlines) -> None:  # type: ignore[no-untyped-def]
    app = _app(config_file)
    body = downloaded.output.replace(b"\n", b"") if strip_newlines else downloaded.output
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    resp = client.post(f"/api/v1/attestations/import?image={downloaded.image}", data=body, headers=headers, content_type="application/json")
    assert resp.status_code == 200, resp.get_json()
    doc = resp.get_json()
    assert (doc["imported"], doc["errors"], doc["tenant"], doc["digest"]) == (2, 0, "acme", downloaded.digest)
    assert all(r["predicateType"] == "https://slsa.dev/provenance/v0.2" for r in doc["results"])
    again = client.post("/api/v1/attestations/import", data=body, headers=headers, content_type="application/x-ndjson")
    assert again.status_code == 200 and again.get_json()["duplicates"] == 2
    app.extensions["stellaops.store"].close()
    _check_stored(load_config(str(config_file)).store.dsn, downloaded)


def test_api_refuses_the_download_for_another_image(downloaded, config_file) -> None:  # type: ignore[no-untyped-def]
    app = _app(config_file)
    resp = app.test_client().post(
        f"/api/v1/attestations/import?image={downloaded.other_image}", data=downloaded.output,
        headers={"Authorization": f"Bearer {TOKEN}"}, content_type="application/json",
    )  # fmt: skip
    assert resp.status_code == 422
    assert {r["error"]["reason"] for r in resp.get_json()["results"]} == {"SUBJECT_MISMATCH"}
    app.extensions["stellaops.store"].close()


def test_api_image_that_does_not_exist_is_400(downloaded, config_file) -> None:  # type: ignore[no-untyped-def]
    app = _app(config_file)
    registry = downloaded.image.split("/")[0]
    resp = app.test_client().post(
        f"/api/v1/attestations/import?image={registry}/demo/missing:v9", data=downloaded.output,
        headers={"Authorization": f"Bearer {TOKEN}"}, content_type="application/json",
    )  # fmt: skip
    assert resp.status_code == 400 and resp.get_json()["error"]["reason"] == "MANIFEST_NOT_FOUND"


def test_provider_verifies_imported_attestations_as_source_imported(downloaded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """cosign download attestation → stella attest import → provider verdict ``source: imported``.

    The image is copied to a repository that holds no attestations (referrers are per
    repository), so whatever the provider verifies can only come from the store."""
    from stellaops.app import create_app

    registry = downloaded.image.split("/")[0]
    bare = f"{registry}/demo/copy:v1.0.0"
    _run([tool("crane"), "copy", downloaded.image, bare], tmp_path)
    cfg = tmp_path / "stellaops.yaml"
    cfg.write_text(
        "attestation:\n  authorities:\n    - name: release-key\n"
        f"      key: {{path: {downloaded.public_key}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        "cache:\n  negativeTtlSeconds: 0\n"
        f"store:\n  dsn: sqlite:///{tmp_path}/store.db\n"
    )
    request = {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": [bare]}}

    def verdict() -> dict:  # type: ignore[type-arg]
        app = create_app(str(cfg))
        try:
            resp = app.test_client().post("/gatekeeper/v1/verify", json=request)
            assert resp.status_code == 200
            body = resp.get_json()["response"]
            assert body["systemError"] == ""
            (item,) = body["items"]
            return item["value"]
        finally:
            app.extensions["stellaops.store"].close()

    assert verdict()["attestations"] == []  # nothing in the registry for this repository
    (tmp_path / "attestation.json").write_bytes(downloaded.output)
    result = CliRunner().invoke(
        cli, ["attest", "import", "--envelope", str(tmp_path / "attestation.json"), "--image", bare, "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    value = verdict()
    assert value["digest"] == downloaded.digest
    atts = value["attestations"]
    assert len(atts) == 2
    assert all(a["source"] == "imported" and a["verified"] is True for a in atts)
    assert all(a["signers"][0]["authority"] == "release-key" for a in atts)
    assert all(a["annotations"]["dev.stellaops/tenant"] == "default" for a in atts)


def test_api_import_refreshes_the_providers_cached_verdict(downloaded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A verdict cached before an import (negative TTL 30 s by default) is dropped by the import."""
    from stellaops.app import create_app
    registry = downloaded.image.split("/")[0]
    bare = f"{registry}/demo/copy2:v1.0.0"
    _run([tool("crane"), "copy", downloaded.image, bare], tmp_path)
    (tmp_path / "acme.token").write_text(TOKEN)
    cfg = tmp_path / "stellaops.yaml"
    cfg.write_text(
        "attestation:\n  authorities:\n    - name: release-key\n"
        f"      key: {{path: {downloaded.public_key}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store:\n  dsn: sqlite:///{tmp_path}/store.db\n"
        "importApi:\n  tokens:\n    - tenant: acme\n      tokenFile: acme.token\n"
    )
    app = create_app(str(cfg))
    client = app.test_client()
    request = {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": {"keys": [bare]}}
    try:
        before = client.post("/gatekeeper/v1/verify", json=request).get_json()["response"]["items"][0]["value"]
        assert before["attestations"] == []
        resp = client.post(
            f"/api/v1/attestations/import?image={bare}", data=downloaded.output,
            headers={"Authorization": f"Bearer {TOKEN}"}, content_type="application/x-ndjson",
        )  # fmt: skip
        assert resp.status_code == 200 and resp.get_json()["imported"] == 2
        after = client.post("/gatekeeper/v1/verify", json=request).get_json()["response"]["items"][0]["value"]
        assert [a["source"] for a in after["attestations"]] == ["imported", "imported"]
    finally:
        app.extensions["stellaops.store"].close()

