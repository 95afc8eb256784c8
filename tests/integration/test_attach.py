"""attach.py against real registries, checked by the real cosign (v3.1.3): what we write must be
what cosign writes and reads, in both the sigstore-bundle and the legacy ``.att`` forms."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from stellaops.attach import (
    BUNDLE_V03,
    DSSE_MEDIA_TYPE,
    AttachError,
    attach,
    parse_attestation,
    split_documents,
)
from stellaops.errors import StellaError
from stellaops.reference import cosign_attestation_tag, parse_reference, referrers_tag
from stellaops.registry import EMPTY_DIGEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, RegistryClient

from tests.fixtures.images import (
    cosign_attest,
    loopback_client,
    make_envelope,
    make_key,
    public_pem,
    push_test_image,
    run_cosign,
)

pytestmark = pytest.mark.cosign

SLSA02 = "https://slsa.dev/provenance/v0.2"
SCAN = "stellaops.io/predicates/scan-result@v1"


@pytest.fixture(params=["ocireg", "ggcr_registry", "distribution_registry"])
def registry(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    k = make_key()
    path = tmp_path_factory.mktemp("attach-key") / "key.pub"
    path.write_bytes(public_pem(k))
    return k, str(path)


def _image(registry: str, repo: str) -> tuple[RegistryClient, Any, str]:
    client = loopback_client()
    digest = push_test_image(registry, repo, "v1", client=client)
    return client, parse_reference(f"{registry}/{repo}:v1"), digest


def _verify(ref: Any, pub: str, ptype: str, *, new_bundle_format: bool) -> list[dict[str, Any]]:
    proc = run_cosign(
        "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--type", ptype,
        f"--new-bundle-format={str(new_bundle_format).lower()}", str(ref), check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_default_formats_verify_with_cosign_in_both_modes(registry: str, key: tuple[Any, str]) -> None:
    k, pub = key
    client, ref, digest = _image(registry, "attach/default")
    env = make_envelope(k, ref.name, digest, SLSA02)
    results = attach(client, ref, env, tenant="acme", scan_id="scan-42", annotations={"org.example/team": "security"})
    assert [r.format for r in results] == ["bundle", "legacy"]
    assert all(r.image == f"{ref.name}@{digest}" for r in results)
    # cosign v3 default (bundles first) and cosign's legacy mode (.att, as cosign v2 and Kyverno) both verify it
    for mode in (True, False):
        [out] = _verify(ref, pub, "slsaprovenance", new_bundle_format=mode)
        assert json.loads(base64.b64decode(out["payload"]))["subject"][0]["digest"]["sha256"] == digest[7:]
    # the seed's own predicate types, which cosign cannot attest but verifies literally
    env2 = make_envelope(k, ref.name, digest, SCAN, {"scanner": {"name": "t", "version": "1"}})
    attach(client, ref, env2)
    assert len(_verify(ref, pub, SCAN, new_bundle_format=True)) == 1
    assert len(_verify(ref, pub, SCAN, new_bundle_format=False)) == 1


def test_bundle_referrer_has_cosigns_exact_shape(ocireg: str, key: tuple[Any, str], cosign_keypair: tuple[str, str],
                                                 tmp_path: Path) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/shape")
    [ours] = attach(client, ref, make_envelope(k, ref.name, digest, SLSA02), formats=("bundle",),
                    created="2026-11-25T16:36:37Z", tenant="acme", scan_id="s-1",
                    annotations={"org.example/policy-version": "2.0"})
    cosign_attest(cosign_keypair[0], f"{ref.name}@{digest}", {"buildType": "x"}, "slsaprovenance", str(tmp_path))
    listing = client.list_referrers(ocireg, "attach/shape", digest)
    theirs_digest = next(d.digest for d in listing if d.digest != ours.manifest_digest)
    mine = client.get_manifest(ocireg, "attach/shape", ours.manifest_digest).doc
    theirs = client.get_manifest(ocireg, "attach/shape", theirs_digest).doc
    assert list(mine) == list(theirs)  # same fields, same order
    assert mine["config"] == theirs["config"] == {
        "mediaType": OCI_EMPTY, "size": 2, "digest": EMPTY_DIGEST, "artifactType": BUNDLE_V03}
    assert mine["artifactType"] == theirs["artifactType"] == BUNDLE_V03
    assert [list(layer) for layer in mine["layers"]] == [list(layer) for layer in theirs["layers"]]
    assert mine["layers"][0]["mediaType"] == BUNDLE_V03
    assert mine["subject"] == theirs["subject"] == {"mediaType": OCI_MANIFEST, "size": mine["subject"]["size"],
                                                    "digest": digest}
    assert set(theirs["annotations"]) <= set(mine["annotations"])
    assert mine["annotations"] == {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": SLSA02,
        "dev.stellaops/predicate-type": SLSA02,
        "dev.stellaops/scan-id": "s-1",
        "dev.stellaops/tenant": "acme",
        "org.example/policy-version": "2.0",
        "org.opencontainers.image.created": "2026-11-25T16:36:37Z",
    }
    bundle = json.loads(client.get_blob(ocireg, "attach/shape", mine["layers"][0]["digest"]))
    assert bundle["mediaType"] == BUNDLE_V03
    assert set(bundle) == {"mediaType", "verificationMaterial", "dsseEnvelope"}
    assert all(set(s) == {"sig"} for s in bundle["dsseEnvelope"]["signatures"])  # no keyid inside a bundle


def test_legacy_appends_to_cosigns_att_and_keeps_its_layers(
    registry: str, key: tuple[Any, str], cosign_keypair: tuple[str, str], tmp_path: Path
) -> None:
    k, pub = key
    client, ref, digest = _image(registry, "attach/legacy")
    cosign_attest(cosign_keypair[0], f"{ref.name}@{digest}", {"buildType": "cosign"}, "slsaprovenance", str(tmp_path),
                  legacy=True)
    tag = cosign_attestation_tag(digest)
    before = client.get_manifest(registry, "attach/legacy", tag)
    [res] = attach(client, ref, make_envelope(k, ref.name, digest, SLSA02), formats=("legacy",))
    after = client.get_manifest(registry, "attach/legacy", tag)
    assert res.manifest_digest == after.digest and not res.unchanged
    assert after.layers[0] == before.layers[0]  # cosign's layer untouched
    assert len(after.layers) == 2
    new = after.layers[1]
    assert new.media_type == DSSE_MEDIA_TYPE and new.digest == res.layer_digest
    assert new.annotations["dev.cosignproject.cosign/signature"] == ""
    assert new.annotations["predicateType"] == SLSA02
    config = json.loads(client.get_blob(registry, "attach/legacy", after.config.digest))  # type: ignore[union-attr]
    assert config["rootfs"]["diff_ids"] == [d.digest for d in after.layers]
    assert len(config["history"]) == 2
    assert list(config)[:4] == ["architecture", "created", "history", "os"]
    # cosign verifies both layers with their own keys; ours with ours
    assert len(_verify(ref, pub, "slsaprovenance", new_bundle_format=False)) == 1
    assert len(_verify(ref, cosign_keypair[1], "slsaprovenance", new_bundle_format=False)) == 1
    # the same envelope again: no duplicate layer
    [again] = attach(client, ref, client.get_blob(registry, "attach/legacy", new.digest), formats=("legacy",))
    assert again.unchanged
    assert len(client.get_manifest(registry, "attach/legacy", tag).layers) == 2
    # and cosign can append on top of what we wrote
    cosign_attest(cosign_keypair[0], f"{ref.name}@{digest}", {"buildType": "again"}, "slsaprovenance", str(tmp_path),
                  legacy=True)
    assert len(client.get_manifest(registry, "attach/legacy", tag).layers) == 3


def test_legacy_layer_bytes_are_the_envelope_verbatim(ocireg: str, key: tuple[Any, str]) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/verbatim")
    env = make_envelope(k, ref.name, digest, keyid="")  # v2-style bytes, with keyid
    pretty = json.dumps(json.loads(env), indent=2).encode() + b"\n"
    [res] = attach(client, ref, pretty, formats=("legacy",))
    assert client.get_blob(ocireg, "attach/verbatim", res.layer_digest) == pretty.strip()


def test_dsse_referrer_and_fallback_index(registry: str, key: tuple[Any, str]) -> None:
    k, _ = key
    client, ref, digest = _image(registry, "attach/dsse")
    results = attach(client, ref, make_envelope(k, ref.name, digest), formats=("dsse", "bundle"))
    m = client.get_manifest(registry, "attach/dsse", results[0].manifest_digest)
    assert m.doc["artifactType"] == DSSE_MEDIA_TYPE
    assert m.subject is not None and m.subject.digest == digest
    assert m.layers[0].media_type == DSSE_MEDIA_TYPE
    has_api = client.referrers_api_supported(registry, "attach/dsse", digest)
    if has_api:
        assert all(r.fallback_tag == "" for r in results)
    else:
        assert all(r.fallback_tag == referrers_tag(digest) for r in results)
        index = client.get_manifest(registry, "attach/dsse", referrers_tag(digest))
        assert index.media_type == OCI_INDEX
        entries = index.doc["manifests"]
        assert [e["digest"] for e in entries] == sorted(r.manifest_digest for r in results)
        assert all(set(e) == {"mediaType", "size", "digest", "artifactType"} for e in entries)
        assert {e["artifactType"] for e in entries} == {DSSE_MEDIA_TYPE, BUNDLE_V03}


def test_fallback_index_written_by_cosign_is_extended(ggcr_registry: str, key: tuple[Any, str],
                                                      cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    k, pub = key
    client, ref, digest = _image(ggcr_registry, "attach/cosign-index")
    cosign_attest(cosign_keypair[0], f"{ref.name}@{digest}", {"buildType": "x"}, "slsaprovenance", str(tmp_path))
    attach(client, ref, make_envelope(k, ref.name, digest, SLSA02), formats=("bundle",))
    index = client.get_manifest(ggcr_registry, "attach/cosign-index", referrers_tag(digest))
    assert len(index.manifests) == 2
    assert [m.digest for m in index.manifests] == sorted(m.digest for m in index.manifests)
    assert len(_verify(ref, pub, "slsaprovenance", new_bundle_format=True)) == 1
    assert len(_verify(ref, cosign_keypair[1], "slsaprovenance", new_bundle_format=True)) == 1


def test_attach_a_cosign_bundle(ocireg: str, cosign_keypair: tuple[str, str], tmp_path: Path) -> None:
    client, ref, digest = _image(ocireg, "attach/bundle-input")
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": ref.name, "digest": {"sha256": digest[7:]}}],
                 "predicateType": SCAN, "predicate": {"scanner": {"name": "x", "version": "1"}}}
    (tmp_path / "st.json").write_text(json.dumps(statement))
    run_cosign("attest-blob", "--yes", "--key", cosign_keypair[0], "--statement", str(tmp_path / "st.json"),
               "--bundle", str(tmp_path / "b.json"), "--use-signing-config=false", "--tlog-upload=false")
    data = (tmp_path / "b.json").read_bytes()
    results = attach(client, ref, data, formats=("bundle", "legacy"))
    stored = client.get_blob(ocireg, "attach/bundle-input", results[0].layer_digest)
    assert stored == data.strip()  # the bundle as cosign made it
    assert len(_verify(ref, cosign_keypair[1], SCAN, new_bundle_format=True)) == 1
    assert len(_verify(ref, cosign_keypair[1], SCAN, new_bundle_format=False)) == 1


# -- refusals: checked before anything is pushed -------------------------------------------------
def _nothing_pushed(client: RegistryClient, registry: str, repo: str, digest: str) -> None:
    assert len(client.list_referrers(registry, repo, digest)) == 0
    with pytest.raises(StellaError) as info:
        client.get_manifest(registry, repo, cosign_attestation_tag(digest))
    assert info.value.reason == "MANIFEST_NOT_FOUND"


def _payload(env: bytes, mutate: Any) -> bytes:
    doc = json.loads(env)
    st = json.loads(base64.b64decode(doc["payload"]))
    doc["payload"] = base64.b64encode(mutate(st)).decode()
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("forge", "reason", "words"),
    [
        (lambda k, n, d: make_envelope(k, n, "sha256:" + "0" * 64), "SUBJECT_MISMATCH", "not the image digest"),
        (lambda k, n, d: make_envelope(k, n, d, payload_type="application/json"), "PAYLOAD_TYPE_INVALID", "application/json"),
        (lambda k, n, d: b"not json", "MALFORMED_ENVELOPE", "not valid JSON"),
        (lambda k, n, d: b"", "MALFORMED_ENVELOPE", "empty"),
        (lambda k, n, d: b"[]", "MALFORMED_ENVELOPE", "JSON object"),
        (lambda k, n, d: make_envelope(k, n, d)[:-1] + b',"payload":"e30="}', "MALFORMED_ENVELOPE", "more than once"),
        (lambda k, n, d: json.dumps({**json.loads(make_envelope(k, n, d)), "signatures": []}).encode(),
         "MALFORMED_ENVELOPE", "at least one signature"),
        (lambda k, n, d: _payload(make_envelope(k, n, d), lambda st: json.dumps({**st, "extra": 1}).encode()),
         "MALFORMED_STATEMENT", "unknown statement field"),
        (lambda k, n, d: _payload(make_envelope(k, n, d), lambda st: json.dumps({**st, "_type": "x"}).encode()),
         "MALFORMED_STATEMENT", "_type"),
        (lambda k, n, d: json.dumps({"mediaType": BUNDLE_V03, "verificationMaterial": {},
                                     "messageSignature": {}}).encode(), "MALFORMED_ENVELOPE", "message signature"),
        (lambda k, n, d: json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
                                     "verificationMaterial": {},
                                     "dsseEnvelope": json.loads(make_envelope(k, n, d))}).encode(),
         "REQUEST_INVALID", "only v0.3"),
        (lambda k, n, d: json.dumps({"mediaType": BUNDLE_V03, "verificationMaterial": {},
                                     "dsseEnvelope": json.loads(make_envelope(k, n, d, keyid="abc"))}).encode(),
         "REQUEST_INVALID", "keyid"),
    ],
)
def test_refuses_bad_attestation_before_pushing(ocireg: str, key: tuple[Any, str], forge: Any, reason: str,
                                                words: str) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/refused")
    with pytest.raises(StellaError) as info:
        attach(client, ref, forge(k, ref.name, digest))
    assert info.value.reason == reason
    assert words in info.value.detail
    _nothing_pushed(client, ocireg, "attach/refused", digest)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"formats": ("bundle", "cosign")}, "unknown format"),
        ({"formats": ()}, "unknown format"),
        ({"annotations": {"dev.sigstore.bundle.predicateType": "x"}}, "set by attach itself"),
        ({"annotations": {"org.opencontainers.image.created": "x"}}, "set by attach itself"),
        ({"annotations": {"bad key": "x"}}, "not valid"),
        ({"created": "yesterday"}, "RFC 3339"),
    ],
)
def test_refuses_bad_options(ocireg: str, key: tuple[Any, str], kwargs: dict[str, Any], words: str) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/options")
    with pytest.raises(AttachError) as info:
        attach(client, ref, make_envelope(k, ref.name, digest), **kwargs)
    assert words in info.value.detail
    _nothing_pushed(client, ocireg, "attach/options", digest)


def test_attach_to_missing_image_is_manifest_not_found(ocireg: str, key: tuple[Any, str]) -> None:
    ref = parse_reference(f"{ocireg}/attach/absent:v1")
    with pytest.raises(StellaError) as info:
        attach(loopback_client(), ref, make_envelope(key[0], ref.name, "sha256:" + "1" * 64))
    assert info.value.reason == "MANIFEST_NOT_FOUND"


def test_parse_attestation_keeps_bundle_certificate_for_legacy() -> None:
    k = make_key()
    digest = "sha256:" + "2" * 64
    env = json.loads(make_envelope(k, "r/app", digest))
    der = b"\x30\x03\x02\x01\x01"
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(der).decode()},
            "tlogEntries": [{"logIndex": "7", "logId": {"keyId": base64.b64encode(b"\x01\x02").decode()},
                             "integratedTime": "1700000000", "canonicalizedBody": "Ym9keQ==",
                             "inclusionPromise": {"signedEntryTimestamp": "U0VU"}}],
        },
        "dsseEnvelope": env,
    }
    parsed = parse_attestation(json.dumps(bundle).encode(), digest)
    assert parsed.cosign_annotations["dev.sigstore.cosign/certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert parsed.cosign_annotations["dev.sigstore.cosign/chain"] == ""
    rekor = json.loads(parsed.cosign_annotations["dev.sigstore.cosign/bundle"])
    assert rekor == {"SignedEntryTimestamp": "U0VU", "Payload": {"body": "Ym9keQ==", "integratedTime": 1700000000,
                                                                  "logIndex": 7, "logID": "0102"}}
    # the legacy layer is the envelope as cosign v3 serialises it (what Rekor hashed)
    assert json.loads(parsed.envelope_bytes) == {"payload": env["payload"], "payloadType": env["payloadType"],
                                                 "signatures": [{"sig": env["signatures"][0]["sig"]}]}
    assert list(json.loads(parsed.envelope_bytes)) == ["payload", "payloadType", "signatures"]


def test_split_documents() -> None:
    assert split_documents(b'{"a":1}\n{"b": [1, 2]}\n\n') == [b'{"a":1}', b'{"b": [1, 2]}']
    assert split_documents(b"  \n") == []
    with pytest.raises(AttachError):
        split_documents(b'{"a":1}\n{oops')


def test_cosign_v2_verifies_what_we_attach(ocireg: str, key: tuple[Any, str], tmp_path: Path) -> None:
    """cosign v2 (v2.6.4) verifies the legacy .att layer. Measured here: when any bundle
    referrer exists it switches to bundle mode by itself and then, offline, needs
    ``--trusted-root`` (any trusted root: with --key and --insecure-ignore-tlog an empty one
    does). docs/discovery.md says so. cosign v2 is optional (`scripts/tools.sh cosign2`)."""
    import os
    import subprocess

    from tests.fixtures.tools import TOOLS_BIN

    cosign2 = TOOLS_BIN / "cosign2"
    if not os.access(cosign2, os.X_OK):
        pytest.skip("cosign v2 is not built (optional): scripts/tools.sh cosign2")
    k, pub = key
    empty_root = tmp_path / "trusted_root.json"
    empty_root.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}))

    def verify(ref: Any, ptype: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cosign2), "verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--type", ptype, *extra,
             str(ref)],
            capture_output=True, text=True, timeout=180, env={**os.environ, "TUF_ROOT": str(tmp_path / "tuf")},
        )

    def predicate_type(proc: subprocess.CompletedProcess[str]) -> str:
        [line] = [x for x in proc.stdout.splitlines() if x.strip()]
        return str(json.loads(base64.b64decode(json.loads(line)["payload"]))["predicateType"])

    # --format legacy: what cosign v2 reads. Without --trusted-root cosign v2 reaches for the
    # public TUF repository (DNS and HTTPS to the internet) before falling back, so the tests
    # always hand it the empty local root: no traffic leaves loopback.
    client, ref, digest = _image(ocireg, "attach/cosign2-legacy")
    attach(client, ref, make_envelope(k, ref.name, digest, SLSA02), formats=("legacy",))
    attach(client, ref, make_envelope(k, ref.name, digest, SCAN, {"scanner": {"name": "t", "version": "1"}}),
           formats=("legacy",))
    for ptype, want in (("slsaprovenance", SLSA02), (SCAN, SCAN)):
        proc = verify(ref, ptype, "--trusted-root", str(empty_root))
        assert proc.returncode == 0, proc.stderr
        assert predicate_type(proc) == want
    # default bundle,legacy: v2 sees the bundle and wants a trusted root when offline
    client, ref, digest = _image(ocireg, "attach/cosign2-default")
    attach(client, ref, make_envelope(k, ref.name, digest, SLSA02))
    proc = verify(ref, "slsaprovenance")
    assert proc.returncode != 0 and "trusted root is required" in proc.stderr
    proc = verify(ref, "slsaprovenance", "--trusted-root", str(empty_root))
    assert proc.returncode == 0, proc.stderr
    assert predicate_type(proc) == SLSA02


def test_legacy_refuses_to_rewrite_a_corrupt_att_manifest(ocireg: str, key: tuple[Any, str]) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/corrupt-att")
    bad_config = client.put_blob(ocireg, "attach/corrupt-att", b"{not json")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 9,
                                      "digest": bad_config}, "layers": []}).encode()
    tag = cosign_attestation_tag(digest)
    client.put_manifest(ocireg, "attach/corrupt-att", tag, manifest, OCI_MANIFEST)
    with pytest.raises(StellaError) as info:
        attach(client, ref, make_envelope(k, ref.name, digest), formats=("legacy",))
    assert info.value.reason == "REGISTRY_ERROR"
    assert "not valid JSON" in info.value.detail
    assert client.get_manifest(ocireg, "attach/corrupt-att", tag).raw == manifest  # untouched


@pytest.mark.parametrize(
    "vm",
    [[], {"certificate": "x"}, {"tlogEntries": ["x"]}, {"tlogEntries": [{"inclusionPromise": "x"}]},
     {"x509CertificateChain": {"certificates": [{}]}}, {"timestampVerificationData": []},
     {"timestampVerificationData": {"rfc3161Timestamps": "x"}},
     {"timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": "not base64!"}]}},
     {"timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": ""}]}}],
)
def test_malformed_bundle_material_is_refused_precisely(vm: Any) -> None:
    k = make_key()
    digest = "sha256:" + "3" * 64
    bundle = {"mediaType": BUNDLE_V03, "verificationMaterial": vm, "dsseEnvelope": json.loads(make_envelope(k, "r/a", digest))}
    with pytest.raises(StellaError) as info:
        parse_attestation(json.dumps(bundle).encode(), digest)
    assert info.value.reason == "MALFORMED_ENVELOPE"


def test_non_utf8_file_is_refused() -> None:
    with pytest.raises(AttachError) as info:
        split_documents(b"\xff\xfe{}")
    assert info.value.reason == "MALFORMED_ENVELOPE"


@pytest.mark.parametrize("fmt", ["bundle", "dsse"])
def test_reattaching_the_same_envelope_adds_no_second_referrer(registry: str, key: tuple[Any, str], fmt: str) -> None:
    """Issue 21 item 6: the referrer forms are idempotent as the .att form is."""
    k, _ = key
    repo = f"attach/again-{fmt}"
    client, ref, digest = _image(registry, repo)
    env = make_envelope(k, ref.name, digest, SLSA02)
    [first] = attach(client, ref, env, formats=(fmt,), tenant="acme", created="2026-01-01T00:00:00Z")
    assert not first.unchanged
    # the same envelope again, a second later (another created time): nothing new is pushed
    [again] = attach(client, ref, env, formats=(fmt,), tenant="acme", created="2026-01-01T00:00:01Z")
    assert again.unchanged
    assert (again.manifest_digest, again.layer_digest, again.location) == (first.manifest_digest, first.layer_digest, first.location)
    assert again.fallback_tag == first.fallback_tag
    listing = [d.digest for d in client.list_referrers(registry, repo, digest)]
    assert listing == [first.manifest_digest]
    # other annotations are a different referrer (an explicit metadata change), not "already there"
    [other] = attach(client, ref, env, formats=(fmt,), tenant="other-tenant")
    assert not other.unchanged and other.manifest_digest != first.manifest_digest
    assert sorted(d.digest for d in client.list_referrers(registry, repo, digest)) == sorted(
        [first.manifest_digest, other.manifest_digest])


def test_reattaching_default_formats_reports_everything_already_there(ocireg: str, key: tuple[Any, str]) -> None:
    k, _ = key
    client, ref, digest = _image(ocireg, "attach/again-default")
    env = make_envelope(k, ref.name, digest, SLSA02)
    assert [r.unchanged for r in attach(client, ref, env)] == [False, False]
    assert [r.unchanged for r in attach(client, ref, env)] == [True, True]
    assert len(client.list_referrers(ocireg, "attach/again-default", digest)) == 1
