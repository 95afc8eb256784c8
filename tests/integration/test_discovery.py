"""discovery.py: every source, on registries with and without the referrers API, with
attestations written by the real cosign and by us; what it skips, and what it fetches."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from stellaops.attach import attach
from stellaops.candidate import (
    KIND_BUNDLE,
    KIND_DSSE,
    SOURCE_BUNDLE,
    SOURCE_COSIGN_TAG,
    SOURCE_IMPORTED,
    SOURCE_REFERRERS,
    SOURCE_REFERRERS_TAG,
    Candidate,
)
from stellaops.discovery import discover, discover_all, refusal
from stellaops.errors import StellaError, StoreError
from stellaops.reference import cosign_attestation_tag, parse_reference, referrers_tag
from stellaops.registry import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryLimits,
    RegistryPolicy,
    sha256_digest,
)

from tests.fixtures.images import cosign_attest, loopback_client, make_envelope, make_key, push_test_image, run_cosign
from tests.fixtures.registries import Exchange, TamperingProxy

SLSA02 = "https://slsa.dev/provenance/v0.2"
DSSE = "application/vnd.dsse.envelope.v1+json"


@pytest.fixture(params=["ocireg", "ggcr_registry", "distribution_registry"])
def registry(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def _image(registry: str, repo: str, **kw: Any) -> tuple[RegistryClient, Any, str]:
    client = loopback_client()
    digest = push_test_image(registry, repo, "v1", client=client, **kw)
    return client, parse_reference(f"{registry}/{repo}:v1"), digest


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _push_artifact(client: RegistryClient, ref: Any, subject_digest: str, artifact_type: str, layer: bytes,
                   layer_type: str, *, annotations: dict[str, str] | None = None, config_type: str = "",
                   extra_layers: int = 0, subject_override: str | None = None) -> str:
    """Push an arbitrary OCI 1.1 artifact referring to ``subject_digest`` (what other tools write)."""
    reg, repo = ref.registry, ref.repository
    client.put_blob(reg, repo, EMPTY_JSON)
    layer_digest = client.put_blob(reg, repo, layer)
    subject = client.get_manifest(reg, repo, subject_digest)
    config: dict[str, Any] = {"mediaType": OCI_EMPTY, "size": 2, "digest": EMPTY_DIGEST}
    if config_type:
        config["artifactType"] = config_type
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
        "layers": [{"mediaType": layer_type, "size": len(layer), "digest": layer_digest}] * (1 + extra_layers),
        "subject": {"mediaType": subject.media_type, "size": len(subject.raw),
                    "digest": subject_override or subject_digest},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    raw = _compact(doc)
    digest = sha256_digest(raw)
    client.put_manifest(reg, repo, digest, raw, OCI_MANIFEST)
    if not client.referrers_api_supported(reg, repo, subject_digest):
        tag = referrers_tag(subject_digest)
        try:
            entries = client.get_manifest(reg, repo, tag).doc["manifests"]
        except StellaError:
            entries = []
        entries.append({"mediaType": OCI_MANIFEST, "size": len(raw), "digest": digest, "artifactType": artifact_type})
        client.put_manifest(reg, repo, tag, _compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
                            OCI_INDEX)
    return digest


def test_finds_cosign_legacy_and_bundle_attestations(registry: str, cosign_keypair: tuple[str, str],
                                                     tmp_path: Path) -> None:
    client, ref, digest = _image(registry, "disc/cosign")
    pinned = f"{ref.name}@{digest}"
    cosign_attest(cosign_keypair[0], pinned, {"buildType": "legacy"}, "slsaprovenance", str(tmp_path), legacy=True)
    cosign_attest(cosign_keypair[0], pinned, {"buildType": "bundle"}, "slsaprovenance", str(tmp_path))
    found = discover_all(client, ref, digest)
    assert not found.problems
    by_source = {c.source: c for c in found.candidates}
    assert set(by_source) == {SOURCE_COSIGN_TAG, SOURCE_BUNDLE}
    legacy = by_source[SOURCE_COSIGN_TAG]
    att = client.get_manifest(registry, "disc/cosign", cosign_attestation_tag(digest))
    assert legacy.kind == KIND_DSSE and legacy.attached_to == digest
    assert legacy.data == client.get_blob(registry, "disc/cosign", att.layers[0].digest)  # verbatim
    assert legacy.location == f"{ref.name}:{cosign_attestation_tag(digest)}@{att.layers[0].digest}"
    assert legacy.annotations["predicateType"] == SLSA02
    bundle = by_source[SOURCE_BUNDLE]
    assert bundle.kind == KIND_BUNDLE and bundle.attached_to == digest
    assert json.loads(bundle.data)["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle.annotations["dev.sigstore.bundle.predicateType"] == SLSA02
    assert bundle.created  # org.opencontainers.image.created, as cosign writes it
    api = client.referrers_api_supported(ref.registry, ref.repository, digest)
    assert found.referrer_sources[digest] == ("api" if api else "tag")


def test_finds_every_format_we_write(registry: str) -> None:
    key = make_key()
    client, ref, digest = _image(registry, "disc/ours")
    env = make_envelope(key, ref.name, digest)
    results = attach(client, ref, env, formats=("bundle", "legacy", "dsse"), tenant="acme")
    found = discover(client, ref, digest)
    sources = sorted(c.source for c in found)
    api = client.referrers_api_supported(ref.registry, ref.repository, digest)
    assert sources == sorted([SOURCE_BUNDLE, SOURCE_COSIGN_TAG, SOURCE_REFERRERS if api else SOURCE_REFERRERS_TAG])
    dsse_ref = next(c for c in found if c.source in (SOURCE_REFERRERS, SOURCE_REFERRERS_TAG))
    assert dsse_ref.data == env and dsse_ref.artifact_type == DSSE
    assert dsse_ref.annotations["dev.stellaops/tenant"] == "acme"
    assert dsse_ref.location == results[2].location
    # One candidate per place: the same envelope is found twice as DSSE (referrer + .att) and once in a bundle.
    assert len(found) == 3


def test_cosign_annotations_are_carried(ocireg: str) -> None:
    key = make_key()
    client, ref, digest = _image(ocireg, "disc/annotations")
    env = make_envelope(key, ref.name, digest)
    layer_digest = client.put_blob(ocireg, "disc/annotations", env)
    config = _compact({"architecture": "", "created": "0001-01-01T00:00:00Z", "history": [{"created": "0001-01-01T00:00:00Z"}],
                       "os": "", "rootfs": {"type": "layers", "diff_ids": [layer_digest]}, "config": {}})
    config_digest = client.put_blob(ocireg, "disc/annotations", config)
    ann = {"dev.cosignproject.cosign/signature": "", "predicateType": SLSA02,
           "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
           "dev.sigstore.cosign/chain": "chain-pem", "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"x"}',
           "dev.sigstore.cosign/rfc3161timestamp": '{"SignedRFC3161Timestamp":"y"}'}
    manifest = _compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                                    "digest": config_digest},
                         "layers": [{"mediaType": DSSE, "size": len(env), "digest": layer_digest, "annotations": ann}]})
    client.put_manifest(ocireg, "disc/annotations", cosign_attestation_tag(digest), manifest, OCI_MANIFEST)
    [cand] = discover(client, ref, digest)
    assert cand.cosign.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert cand.cosign.chain == "chain-pem"
    assert cand.cosign.rekor_bundle == '{"SignedEntryTimestamp":"x"}'
    assert cand.cosign.rfc3161_timestamp == '{"SignedRFC3161Timestamp":"y"}'


def _many_unrelated(upstream: str, repo: str) -> tuple[Any, str]:
    key = make_key()
    client, ref, digest = _image(upstream, repo)
    for i in range(60):
        _push_artifact(client, ref, digest, "application/vnd.example.sbom.v1+json", b'{"n":%d}' % i,
                       "application/vnd.example.sbom.v1+json", config_type="application/vnd.example.sbom.v1+json")
    attach(client, ref, make_envelope(key, ref.name, digest), formats=("bundle",))
    return ref, digest


def _fetches(proxy: TamperingProxy) -> tuple[list[str], list[str]]:
    manifests = [p for m, p in proxy.seen if m == "GET" and "/manifests/sha256:" in p]
    blobs = [p for m, p in proxy.seen if m == "GET" and "/blobs/" in p]
    return manifests, blobs


def test_unrelated_referrers_cost_one_listing(ggcr_registry: str) -> None:
    # The fallback index (like a conformant referrers API) carries each artifactType: unrelated
    # referrers are skipped from the listing alone.
    ref, digest = _many_unrelated(ggcr_registry, "disc/many")
    proxy = TamperingProxy(ggcr_registry)
    try:
        via_proxy = parse_reference(f"{proxy.address}/disc/many:v1")
        found = discover_all(RegistryClient(policy=RegistryPolicy(allow_private=True)), via_proxy, digest)
        manifests, blobs = _fetches(proxy)
    finally:
        proxy.close()
    assert [c.source for c in found.candidates] == [SOURCE_BUNDLE]
    assert found.skipped_unrelated == 60
    # the image itself (is it an index?) and the one bundle referrer; no unrelated manifest; one blob
    assert len(manifests) == 2
    assert len(blobs) == 1


def test_registry_reporting_config_type_costs_manifests_but_no_blobs(tampering_proxy: TamperingProxy) -> None:
    # go-containerregistry's referrers API reports the *config* media type as artifactType, so each
    # referrer is ambiguous and its manifest is read; still no unrelated blob is fetched.
    ref, digest = _many_unrelated(tampering_proxy.upstream, "disc/many-api")
    via_proxy = parse_reference(f"{tampering_proxy.address}/disc/many-api:v1")
    found = discover_all(RegistryClient(policy=RegistryPolicy(allow_private=True)), via_proxy, digest)
    manifests, blobs = _fetches(tampering_proxy)
    assert [c.source for c in found.candidates] == [SOURCE_BUNDLE]
    assert found.skipped_unrelated == 60
    assert len(manifests) == 62
    assert len(blobs) == 1


def test_server_reported_artifact_types_are_trusted_for_skipping(tampering_proxy: TamperingProxy) -> None:
    # A registry that reports artifactType (as the OCI spec asks): rewrite the quirky listing.
    ref, digest = _many_unrelated(tampering_proxy.upstream, "disc/many-fixed")
    upstream = loopback_client()

    def conformant(ex: Exchange) -> Any:
        if "/referrers/" not in ex.path:
            return None
        status, headers, body = ex.forward()
        doc = json.loads(body)
        for d in doc["manifests"]:
            d["artifactType"] = upstream.get_manifest(ref.registry, ref.repository, d["digest"]).doc["artifactType"]
        return status, headers, json.dumps(doc).encode()

    tampering_proxy.rules.append(conformant)
    via_proxy = parse_reference(f"{tampering_proxy.address}/disc/many-fixed:v1")
    found = discover_all(RegistryClient(policy=RegistryPolicy(allow_private=True)), via_proxy, digest)
    manifests, blobs = _fetches(tampering_proxy)
    assert [c.source for c in found.candidates] == [SOURCE_BUNDLE]
    assert len(manifests) == 2 and len(blobs) == 1


def test_ambiguous_artifact_type_is_classified_from_the_manifest(registry: str) -> None:
    key = make_key()
    client, ref, digest = _image(registry, "disc/ambiguous")
    env = make_envelope(key, ref.name, digest)
    # no artifactType anywhere but the layer: only the manifest says what it is
    _push_artifact(client, ref, digest, "", env, DSSE)
    # an empty-config artifact whose layers are something else
    _push_artifact(client, ref, digest, "", b"other", "application/octet-stream")
    found = discover_all(client, ref, digest)
    assert [c.data for c in found.candidates] == [env]
    assert found.skipped_unrelated == 1


def test_cosign_signature_bundles_are_not_attestations(ocireg: str, cosign_keypair: tuple[str, str]) -> None:
    client, ref, digest = _image(ocireg, "disc/signed")
    run_cosign("sign", "--yes", "--key", cosign_keypair[0], "--use-signing-config=false", "--tlog-upload=false",
               f"{ref.name}@{digest}")
    assert discover(client, ref, digest) == []
    with_sigs = discover_all(client, ref, digest, signature_bundles=True)
    assert [c.source for c in with_sigs.candidates] == [SOURCE_BUNDLE]


def test_multi_arch_index_and_platform_attestations(registry: str) -> None:
    key = make_key()
    client, ref, index_digest = _image(registry, "disc/multi", platforms=["linux/amd64", "linux/arm64"])
    index = client.get_manifest(ref.registry, ref.repository, index_digest)
    amd64, arm64 = (m.digest for m in index.manifests)
    attach(client, ref, make_envelope(key, ref.name, index_digest), formats=("bundle",))
    attach(client, ref.with_digest(amd64), make_envelope(key, ref.name, amd64), formats=("legacy",))
    attach(client, ref.with_digest(arm64), make_envelope(key, ref.name, arm64), formats=("dsse",))
    found = discover_all(client, ref, index_digest)
    assert found.targets == [index_digest, amd64, arm64]
    attached = {(c.source.replace("referrers-tag", "referrers"), c.attached_to) for c in found.candidates}
    assert attached == {(SOURCE_BUNDLE, index_digest), (SOURCE_COSIGN_TAG, amd64), (SOURCE_REFERRERS, arm64)}
    # a platform manifest on its own sees only its own attestations
    assert {c.attached_to for c in discover(client, ref.with_digest(amd64), amd64)} == {amd64}
    assert discover_all(client, ref, index_digest, platforms=False).targets == [index_digest]


class _MemoryStore:
    def __init__(self, items: dict[str, list[Candidate]], error: StellaError | None = None) -> None:
        self.items = items
        self.error = error
        self.asked: list[str] = []

    def find_by_digest(self, digest: str, *, per_tenant: int, max_bytes: int | None = None) -> Any:
        from stellaops.store import StoreFind

        self.asked.append(digest)
        if self.error:
            raise self.error
        return StoreFind(candidates=list(self.items.get(digest, [])))


def test_store_candidates_are_merged(ocireg: str) -> None:
    key = make_key()
    client, ref, digest = _image(ocireg, "disc/store")
    attach(client, ref, make_envelope(key, ref.name, digest), formats=("legacy",))
    imported = Candidate(kind=KIND_DSSE, data=make_envelope(key, ref.name, digest), source=SOURCE_IMPORTED,
                         attached_to=digest, location="store:1")
    store = _MemoryStore({digest: [imported, imported]})
    found = discover(client, ref, digest, store=store)
    assert [c.source for c in found] == [SOURCE_COSIGN_TAG, SOURCE_IMPORTED]
    assert store.asked == [digest]


def test_store_failure_propagates_as_transient(ocireg: str) -> None:
    client, ref, digest = _image(ocireg, "disc/store-down")
    with pytest.raises(StoreError) as info:
        discover(client, ref, digest, store=_MemoryStore({}, StoreError("database is down")))
    assert info.value.transient


def test_broken_referrers_are_skipped_and_reported(registry: str) -> None:
    key = make_key()
    client, ref, digest = _image(registry, "disc/broken")
    env = make_envelope(key, ref.name, digest)
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    two_layers = _push_artifact(client, ref, digest, bundle_type, b"{}", bundle_type, extra_layers=1)
    no_dsse = _push_artifact(client, ref, digest, DSSE, b"{}", "application/octet-stream")
    big = _push_artifact(client, ref, digest, DSSE, env, DSSE)
    attach(client, ref, make_envelope(key, ref.name, digest), formats=("bundle",))
    small = RegistryClient(policy=RegistryPolicy(allow_private=True), limits=RegistryLimits(blob_bytes=len(env) - 1))
    found = discover_all(small, ref, digest)
    problems = {p.location.split("@")[1]: p.reason for p in found.problems}
    assert problems[two_layers] == "REGISTRY_ERROR"
    assert problems[no_dsse] == "REGISTRY_ERROR"
    # over a limit: not a problem but a cut (T-L24: the pipeline refuses the key, refusal())
    cuts = {c.location.split("@")[1]: c for c in found.cuts}
    assert problems[big] == "LIMIT_EXCEEDED" and cuts[big].limit == "limits.blobBytes" and cuts[big].size == len(env), found.cuts
    refused = refusal(found.cuts, digest)
    assert refused is not None and refused.reason == "LIMIT_EXCEEDED" and not refused.transient
    assert "limits.blobBytes" in refused.detail and "not read" in refused.detail, refused.detail
    # bundles are bigger than the envelope: the good bundle is skipped too, for size
    assert all(c.source != SOURCE_REFERRERS for c in found.candidates)
    assert len(discover_all(client, ref, digest).candidates) == 2  # with normal limits: big + bundle


def test_fallback_tag_entry_for_another_subject_is_skipped(ggcr_registry: str) -> None:
    key = make_key()
    client, ref, digest = _image(ggcr_registry, "disc/foreign")
    other = push_test_image(ggcr_registry, "disc/foreign", "other", client=client)
    # a referrer of `other`, listed (wrongly) in `digest`'s fallback index
    foreign = _push_artifact(client, ref, digest, DSSE, make_envelope(key, ref.name, other), DSSE,
                             subject_override=other)
    found = discover_all(client, ref, digest)
    assert found.candidates == []
    assert [p.location.split("@")[1] for p in found.problems] == [foreign]
    assert "expected " + digest in found.problems[0].message


def test_duplicate_listing_entries_give_one_candidate(tampering_proxy: TamperingProxy) -> None:
    key = make_key()
    client, ref, digest = _image(tampering_proxy.upstream, "disc/dupes")
    attach(client, ref, make_envelope(key, ref.name, digest), formats=("dsse",))

    def doubled(ex: Exchange) -> Any:
        if "/referrers/" not in ex.path:
            return None
        status, headers, body = ex.forward()
        doc = json.loads(body)
        doc["manifests"] = doc["manifests"] * 2
        return status, headers, json.dumps(doc).encode()

    tampering_proxy.rules.append(doubled)
    via = parse_reference(f"{tampering_proxy.address}/disc/dupes:v1")
    assert len(discover(RegistryClient(policy=RegistryPolicy(allow_private=True)), via, digest)) == 1


def test_transient_failure_fetching_a_referrer_fails_discovery(tampering_proxy: TamperingProxy) -> None:
    key = make_key()
    client, ref, digest = _image(tampering_proxy.upstream, "disc/flaky")
    [res] = attach(client, ref, make_envelope(key, ref.name, digest), formats=("bundle",))
    tampering_proxy.rules.append(lambda ex: (503, {}, b"") if res.layer_digest in ex.path else None)
    via = parse_reference(f"{tampering_proxy.address}/disc/flaky:v1")
    fast = RegistryClient(policy=RegistryPolicy(allow_private=True),
                          limits=RegistryLimits(retries=1, backoff_seconds=0.01))
    with pytest.raises(StellaError) as info:
        discover(fast, via, digest)
    assert info.value.reason == "REGISTRY_UNREACHABLE"


def test_malformed_referrers_listing_fails_discovery(tampering_proxy: TamperingProxy) -> None:
    client, ref, digest = _image(tampering_proxy.upstream, "disc/badlist")
    tampering_proxy.rules.append(
        lambda ex: (200, {"Content-Type": OCI_INDEX}, b'{"manifests": [{"digest": 5}]}') if "/referrers/" in ex.path else None
    )
    via = parse_reference(f"{tampering_proxy.address}/disc/badlist:v1")
    with pytest.raises(StellaError) as info:
        discover(RegistryClient(policy=RegistryPolicy(allow_private=True)), via, digest)
    assert info.value.reason == "REGISTRY_ERROR"


def test_no_attestations_is_an_empty_list(registry: str) -> None:
    client, ref, digest = _image(registry, "disc/empty")
    found = discover_all(client, ref, digest)
    assert found.candidates == [] and found.problems == []


def test_layer_digest_is_the_envelope_hash(ocireg: str) -> None:
    key = make_key()
    client, ref, digest = _image(ocireg, "disc/hash")
    env = make_envelope(key, ref.name, digest)
    attach(client, ref, env, formats=("legacy",))
    [cand] = discover(client, ref, digest)
    assert cand.location.endswith("@sha256:" + hashlib.sha256(env).hexdigest())
    assert base64.b64decode(json.loads(cand.data)["payload"])


def test_deadline_reaches_the_parallel_fetches(tampering_proxy: TamperingProxy) -> None:
    import threading
    import time

    from stellaops.registry import deadline_scope

    key = make_key()
    client, ref, digest = _image(tampering_proxy.upstream, "disc/deadline")
    for _ in range(3):
        attach(client, ref, make_envelope(key, ref.name, digest), formats=("dsse",))
    referrers = {d.digest for d in client.list_referrers(ref.registry, ref.repository, digest)}
    release = threading.Event()

    def slow(ex: Exchange) -> Any:
        if any(d in ex.path for d in referrers):
            release.wait(10)
        return None

    tampering_proxy.rules.append(slow)
    via = parse_reference(f"{tampering_proxy.address}/disc/deadline:v1")
    start = time.monotonic()
    try:
        with deadline_scope(time.monotonic() + 0.5), pytest.raises(StellaError) as info:
            discover(RegistryClient(policy=RegistryPolicy(allow_private=True)), via, digest)
    finally:
        release.set()
    assert info.value.reason == "DEADLINE_EXCEEDED"
    assert time.monotonic() - start < 10  # the workers obeyed the caller's deadline


def test_media_type_hint_saves_the_index_check(tampering_proxy: TamperingProxy) -> None:
    key = make_key()
    client, ref, digest = _image(tampering_proxy.upstream, "disc/hint")
    attach(client, ref, make_envelope(key, ref.name, digest), formats=("legacy",))
    via = parse_reference(f"{tampering_proxy.address}/disc/hint:v1")
    remote = RegistryClient(policy=RegistryPolicy(allow_private=True))
    assert len(discover(remote, via, digest, media_type=OCI_MANIFEST)) == 1
    assert ("GET", f"/v2/disc/hint/manifests/{digest}") not in tampering_proxy.seen
    assert len(discover(remote, via, digest)) == 1
    assert ("GET", f"/v2/disc/hint/manifests/{digest}") in tampering_proxy.seen
    # an index hint still looks at the platforms
    index = push_test_image(tampering_proxy.upstream, "disc/hint", "multi", platforms=["linux/amd64"])
    assert discover_all(remote, via, index, media_type=OCI_INDEX).targets[1:] != []
