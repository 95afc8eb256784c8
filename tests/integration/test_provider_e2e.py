"""The walking skeleton end to end, on real parts: a real registry (referrers API on), the
`stella` CLI as users run it, the provider under gunicorn, and cosign for attestations we
would never write ourselves (cosign attaches without checking the subject)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.images import push_test_image
from tests.fixtures.tools import tool

STELLA = str(Path(sys.executable).parent / "stella")
SCAN = "stellaops.io/predicates/scan-result@v1"
PW = {"COSIGN_PASSWORD": "pw"}


def stella(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([STELLA, *args], capture_output=True, text=True, env={**os.environ, **PW, **(env or {})}, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"stella {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scan_predicate(scan_id: str = "scan-1") -> dict[str, Any]:
    return {
        "scanner": {"name": "stellaops-scanner", "version": "1.0"},
        "scanId": scan_id,
        "scannedAt": "2026-11-25T10:00:00Z",
        "findings": [{"id": "CVE-2026-0001", "severity": "high", "package": {"name": "openssl", "version": "3.0.1"}}],
        "summary": {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 0},
    }


@pytest.fixture(scope="module")
def world(ocireg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("e2e")
    stella("key", "generate", "--output-key-prefix", str(d / "release"))
    stella("key", "generate", "--output-key-prefix", str(d / "rogue"))
    (d / "scan.json").write_text(json.dumps(scan_predicate()))
    images = {}
    for name in ("signed", "unsigned", "tampered", "rogue", "swapped", "other"):
        ref = f"{ocireg}/e2e/{name}:v1"
        images[name] = (ref, push_test_image(ocireg, f"e2e/{name}", "v1"))
    return {"dir": d, "registry": ocireg, "images": images}


def sign(world: dict[str, Any], image: str, key: str = "release", *, extra: tuple[str, ...] = ()) -> str:
    d = world["dir"]
    return stella("attest", "sign", "--predicate", str(d / "scan.json"), "--type", SCAN, "--image", image, "--key", str(d / f"{key}.key"), *extra).stdout


def attach(world: dict[str, Any], image: str, envelope: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = world["dir"] / f"att-{abs(hash((image, envelope)))}.json"
    path.write_text(envelope)
    return stella("attest", "attach", "--image", image, "--attestation", str(path), *extra, check=False)


@pytest.fixture(scope="module")
def attested(world: dict[str, Any]) -> dict[str, Any]:
    imgs = world["images"]
    # the good one
    env = sign(world, imgs["signed"][0])
    assert attach(world, imgs["signed"][0], env, "--annotation", "org.example/team=security").returncode == 0
    # payload changed after signing (same subject, so attach accepts the shape)
    env_t = json.loads(sign(world, imgs["tampered"][0]))
    statement = json.loads(base64.b64decode(env_t["payload"]))
    statement["predicate"]["summary"]["high"] = 0
    statement["predicate"]["findings"] = []
    env_t["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert attach(world, imgs["tampered"][0], json.dumps(env_t)).returncode == 0
    # signed by a key the provider does not trust
    assert attach(world, imgs["rogue"][0], sign(world, imgs["rogue"][0], key="rogue")).returncode == 0
    # a valid attestation of another image, attached here by cosign (which does not check subjects)
    other_env = sign(world, imgs["other"][0])
    p = world["dir"] / "other.dsse.json"
    p.write_text(other_env)
    subprocess.run(
        [tool("cosign"), "attach", "attestation", "--attestation", str(p), f"{imgs['swapped'][0].rsplit(':', 1)[0]}@{imgs['swapped'][1]}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return world


@pytest.fixture(scope="module")
def provider(attested: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.fixtures.provider import start_provider

    d = attested["dir"]
    cfg = (
        "attestation:\n  authorities:\n    - name: release-key\n"
        f"      key: {{path: {d / 'release.pub'}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store: {{dsn: 'sqlite:///{d / 'store.db'}'}}\n"
    )
    p = start_provider(tmp_path_factory.mktemp("provider"), cfg)
    yield p
    p.stop()


def _value(resp: dict[str, Any], key: str) -> dict[str, Any]:
    (item,) = [i for i in resp["response"]["items"] if i["key"] == key]
    assert item["error"] == ""
    return item["value"]


def test_signed_image_is_verified_with_signer_and_summary(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, digest = attested["images"]["signed"]
    resp = provider.verify(ref)
    assert resp["_status"] == 200 and resp["kind"] == "ProviderResponse" and resp["response"]["systemError"] == ""
    v = _value(resp, ref)
    assert v["digest"] == digest and v["errors"] == []
    verified = [a for a in v["attestations"] if a["verified"]]
    assert len(verified) == 1, v  # the bundle referrer and the .att layer are one envelope
    a = verified[0]
    assert a["predicateType"] == SCAN and a["signers"][0]["authority"] == "release-key"
    assert a["predicateSummary"]["counts"]["high"] == 1 and a["createdSigned"] is True
    assert a["annotations"]["org.example/team"] == "security"


def test_unsigned_image_has_no_attestation(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, _ = attested["images"]["unsigned"]
    v = _value(provider.verify(ref), ref)
    assert v["attestations"] == [] and [e["reason"] for e in v["errors"]] == ["NO_ATTESTATION"]


def _reasons(v: dict[str, Any]) -> set[str]:
    return {e["reason"] for a in v["attestations"] for e in a["errors"]}


def test_tampered_payload_is_refused(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, _ = attested["images"]["tampered"]
    v = _value(provider.verify(ref), ref)
    assert v["attestations"] and not any(a["verified"] for a in v["attestations"])
    assert _reasons(v) == {"SIGNATURE_INVALID"}
    assert all("predicate" not in a for a in v["attestations"])  # nothing of unverified content


def test_untrusted_key_is_refused(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, _ = attested["images"]["rogue"]
    v = _value(provider.verify(ref), ref)
    assert not any(a["verified"] for a in v["attestations"]) and _reasons(v) == {"SIGNATURE_INVALID"}


def test_attestation_of_another_image_is_refused(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, digest = attested["images"]["swapped"]
    v = _value(provider.verify(ref), ref)
    assert v["attestations"] and not any(a["verified"] for a in v["attestations"])
    assert _reasons(v) == {"SUBJECT_MISMATCH"}
    assert any(digest in e["message"] for a in v["attestations"] for e in a["errors"])


def test_attach_refuses_attestation_of_another_image(attested) -> None:  # type: ignore[no-untyped-def]
    imgs = attested["images"]
    proc = attach(attested, imgs["swapped"][0], sign(attested, imgs["other"][0]))
    assert proc.returncode == 1
    assert "SUBJECT_MISMATCH" in proc.stderr and imgs["swapped"][1] in proc.stderr


def test_batch_answers_every_key_once(provider, attested) -> None:  # type: ignore[no-untyped-def]
    signed, unsigned = attested["images"]["signed"][0], attested["images"]["unsigned"][0]
    resp = provider.verify(signed, unsigned, signed, "Not A Reference")
    keys = [i["key"] for i in resp["response"]["items"]]
    assert keys == [signed, unsigned, "Not A Reference"]
    bad = resp["response"]["items"][2]
    assert bad["error"].startswith("INVALID_REFERENCE")


def test_malformed_provider_request_is_400(provider) -> None:  # type: ignore[no-untyped-def]
    status, body = provider.post("/gatekeeper/v1/verify", b'{"kind":"ProviderRequest"}')
    doc = json.loads(body)
    assert status == 400 and "apiVersion" in doc["response"]["systemError"]


def test_cached_answers_are_identical_to_fresh_ones(provider, attested) -> None:  # type: ignore[no-untyped-def]
    ref, digest = attested["images"]["signed"]
    by_digest = f"{ref.rsplit(':', 1)[0]}@{digest}"
    first = [provider.verify(ref, by_digest) for _ in range(6)]  # both workers answer from cache by the end
    values = [{i["key"]: i["value"] for i in r["response"]["items"]} for r in first]
    assert all(v == values[0] for v in values)
    assert values[0][ref]["image"] == ref and values[0][by_digest]["image"] == by_digest
    assert values[0][ref]["attestations"] == values[0][by_digest]["attestations"]
    _, metrics = provider.get("/metrics")
    assert b'stellaops_verdict_cache_total{result="hit"}' in metrics
    registry = attested["registry"].encode()
    assert b'stellaops_registry_requests_total{outcome="2xx",registry="' + registry + b'"}' in metrics


def test_second_identical_request_does_no_registry_io(attested, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """One worker, so the in-process cache is the one answering; the registry-call counter of
    the provider's own metrics must not move for the second request."""
    from tests.fixtures.provider import start_provider

    d = attested["dir"]
    cfg = (
        "attestation:\n  authorities:\n    - name: release-key\n"
        f"      key: {{path: {d / 'release.pub'}}}\n  requireTlog: false\n"
        "registries:\n  allowPrivate: true\n"
        f"store: {{dsn: 'sqlite:///{d / 'store-io.db'}'}}\n"
        "server: {workers: 1}\n"
    )
    p = start_provider(tmp_path_factory.mktemp("provider-io"), cfg)
    try:
        ref = attested["images"]["signed"][0]

        def registry_calls() -> float:
            _, body = p.get("/metrics")
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in body.decode().splitlines()
                if line.startswith("stellaops_registry_requests_total{")
            )

        first = p.verify(ref)
        after_first = registry_calls()
        second = p.verify(ref)
        assert after_first > 0, "the first request must have talked to the registry"
        assert registry_calls() == after_first
        assert first["response"]["items"] == second["response"]["items"]
    finally:
        p.stop()


def test_index_lists_every_selectable_platform_over_the_wire(provider, attested) -> None:  # type: ignore[no-untyped-def]
    """Threat "index entries that discovery skips" through the running provider: an unattested amd64 entry annotated as an attestation
    manifest, and one behind a nested index, are platforms of the verdict (with platformDetails);
    only the attested platform has a verified attestation of its own."""
    import hashlib

    from stellaops.registry import OCI_INDEX, OCI_MANIFEST
    from tests.fixtures.images import _push_single, loopback_client

    reg, repo = attested["registry"], "e2e/multi"
    client = loopback_client()
    try:
        def index(entries: list[dict[str, Any]]) -> tuple[str, int]:
            raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            client.put_manifest(reg, repo, digest, raw, OCI_INDEX)
            return digest, len(raw)

        plat = {"os": "linux", "architecture": "amd64"}
        (g, gs), (e1, e1s), (e2, e2s) = (_push_single(client, reg, repo, "linux", "amd64") for _ in range(3))
        inner, inner_size = index([{"mediaType": OCI_MANIFEST, "digest": e2, "size": e2s, "platform": plat}])
        top, _ = index([
            {"mediaType": OCI_MANIFEST, "digest": g, "size": gs, "platform": plat},
            {"mediaType": OCI_MANIFEST, "digest": e1, "size": e1s, "platform": plat,
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {"mediaType": OCI_INDEX, "digest": inner, "size": inner_size},
        ])  # fmt: skip
    finally:
        client.close()
    assert attach(attested, f"{reg}/{repo}@{g}", sign(attested, f"{reg}/{repo}@{g}")).returncode == 0
    key = f"{reg}/{repo}@{top}"
    v = _value(provider.verify(key), key)
    assert v["platforms"] == [g, e1, e2]
    assert [(d["digest"], d["platform"], d["index"]) for d in v["platformDetails"]] == [
        (g, "linux/amd64", top), (e1, "linux/amd64", top), (e2, "linux/amd64", inner)
    ]
    assert {a["digest"] for a in v["attestations"] if a["verified"]} == {g}
