"""Tamper corpus, end to end: forged attestations pushed to a real registry (go-containerregistry
with the referrers API), verified by the real provider (``stella serve``), answered over the
Gatekeeper protocol. Every forgery must come back ``verified: false`` with its own reason code.

Forgeries are made the way an attacker with push access would: sign with the project's signer
(the code ``stella attest sign`` runs) or with the offline test Sigstore, then edit bytes and
push with :class:`~stellaops.registry.RegistryClient`, which validates nothing it pushes.
Each forgery is tried on two carriers: cosign's legacy ``.att`` layer and a sigstore bundle
referrer (cosign v3's default).

Keyless forgeries of the certificate itself (expired, wrong CA, SAN regexp anchors, forged
SCT/SET, Rekor entry of another artifact) are unit-tested by the verification engineer in
``tests/unit/verify/test_keyless.py``; here the keyless path is exercised end to end only for
the downgrade (bundle → bare layer) and tlog-stripping cases.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stellaops import dsse
from stellaops.registry import RegistryClient
from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.fixtures.sigstore import IDENTITY, ISSUER, TestSigstore
from tests.hardening._support import (
    SCAN_TYPE,
    assert_provider_response,
    egress_env,
    key_bundle,
    new_key,
    provider_config,
    push_att,
    push_bundle_referrer,
    reasons,
    sign_envelope,
    statement,
    verdict_of,
    write_public_key,
)

OTHER_TYPE = "https://example.com/not-a-scan@v1"


@dataclass
class Env:
    registry: str
    client: RegistryClient
    provider: ProviderProcess
    trusted: Any
    untrusted: Any
    sigstore: TestSigstore
    tmp: Path
    egress_log: Path
    counter: int = 0

    def image(self) -> tuple[str, str, int]:
        """A fresh image: (repository, digest, manifest size)."""
        self.counter += 1
        repo = f"tamper/img{self.counter}"
        digest = push_test_image(self.registry, repo, "v1", client=self.client)
        size = len(self.client.get_manifest(self.registry, repo, digest).raw)
        return repo, digest, size

    def verdict(self, repo: str, digest: str) -> dict[str, Any]:
        key = f"{self.registry}/{repo}@{digest}"
        resp = self.provider.verify(key)
        assert resp["_status"] == 200, resp
        resp.pop("_status")
        assert_provider_response(resp)
        assert resp["response"]["systemError"] == "", resp
        return verdict_of(resp, key)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, ocireg: str, test_sigstore: TestSigstore) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("tamper")
    trusted, untrusted = new_key(), new_key()
    pub = write_public_key(trusted, tmp / "release.pub")
    root = tmp / "trusted_root.json"
    root.write_bytes(test_sigstore.trusted_root_json())
    cfg = provider_config(tmp, {"release-key": pub}, keyless={"ci": (ISSUER, IDENTITY)}, trusted_root=root)
    env_vars, trip = egress_env(tmp)
    provider = start_provider(tmp / "provider", cfg, env=env_vars)
    client = loopback_client()
    try:
        yield Env(ocireg, client, provider, trusted, untrusted, test_sigstore, tmp, trip)
    finally:
        provider.stop()
        client.close()
        assert not trip.exists() or not trip.read_text(), f"non-loopback connects attempted: {trip.read_text()}"


# --------------------------------------------------------------------------- forgeries
# Each returns (envelope bytes, expected reason). ``d`` is the image digest, ``o`` another.


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def forge_payload_altered(e: Env, d: str, o: str) -> tuple[bytes, str]:
    env = json.loads(sign_envelope(statement(d), [e.trusted]))
    evil = dict(json.loads(statement(d)), predicate={"scanner": {"name": "evil", "version": "1"}, "findings": []})
    env["payload"] = _b64(json.dumps(evil, separators=(",", ":")).encode())
    return json.dumps(env, separators=(",", ":")).encode(), "SIGNATURE_INVALID"


def forge_signature_altered(e: Env, d: str, o: str) -> tuple[bytes, str]:
    env = json.loads(sign_envelope(statement(d), [e.trusted]))
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[len(sig) // 2] ^= 0x01
    env["signatures"][0]["sig"] = _b64(bytes(sig))
    return json.dumps(env, separators=(",", ":")).encode(), "SIGNATURE_INVALID"


def forge_other_key(e: Env, d: str, o: str) -> tuple[bytes, str]:
    return sign_envelope(statement(d), [e.untrusted]), "SIGNATURE_INVALID"


def forge_subject_swap(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # a genuine, trusted attestation of *another* image, attached to this one
    return sign_envelope(statement(o), [e.trusted]), "SUBJECT_MISMATCH"


def forge_payload_type_json(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # validly signed, but not an in-toto payload (the PAE covers application/json)
    return sign_envelope(statement(d), [e.trusted], payload_type="application/json"), "PAYLOAD_TYPE_INVALID"


def forge_payload_type_swapped(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # signed as in-toto, payloadType edited afterwards
    env = json.loads(sign_envelope(statement(d), [e.trusted]))
    env["payloadType"] = "application/vnd.cyclonedx+json"
    return json.dumps(env, separators=(",", ":")).encode(), "PAYLOAD_TYPE_INVALID"


def forge_duplicate_statement_key(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # signed by the trusted key, but "subject" appears twice: readers that keep the first
    # see image o, readers that keep the last (cosign) see image d
    st = json.loads(statement(d))
    text = (
        '{"_type":%s,"subject":%s,"predicateType":%s,"predicate":%s,"subject":%s}'
        % tuple(json.dumps(x) for x in (st["_type"], json.loads(statement(o))["subject"], SCAN_TYPE, st["predicate"], st["subject"]))
    ).encode()
    return sign_envelope(text, [e.trusted]), "MALFORMED_STATEMENT"


def forge_duplicate_envelope_key(e: Env, d: str, o: str) -> tuple[bytes, str]:
    good = json.loads(sign_envelope(statement(d), [e.trusted]))
    evil = _b64(statement(o))
    text = '{"payloadType":"%s","payload":"%s","payload":"%s","signatures":%s}' % (
        dsse.PAYLOAD_TYPE_INTOTO, evil, good["payload"], json.dumps(good["signatures"])
    )
    return text.encode(), "MALFORMED_ENVELOPE"


def forge_only_untrusted_valid(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # a garbage signature (as if from the trusted key) plus a valid one from an untrusted key
    junk = _b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    return sign_envelope(statement(d), [e.untrusted], extra_sigs=[junk]), "SIGNATURE_INVALID"


def forge_unsigned(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # the "downgrade" to an unsigned layer: a DSSE envelope with no signatures at all
    doc = {"payloadType": dsse.PAYLOAD_TYPE_INTOTO, "payload": _b64(statement(d)), "signatures": []}
    return json.dumps(doc).encode(), "MALFORMED_ENVELOPE"


def forge_empty_signature(e: Env, d: str, o: str) -> tuple[bytes, str]:
    doc = {"payloadType": dsse.PAYLOAD_TYPE_INTOTO, "payload": _b64(statement(d)), "signatures": [{"keyid": "", "sig": ""}]}
    return json.dumps(doc).encode(), "MALFORMED_ENVELOPE"


def forge_keyid_claims_trusted(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # keyid names the trusted key; the signature is the untrusted key's (keyid must never pick a key)
    from stellaops.verify import keys

    env = json.loads(sign_envelope(statement(d), [e.untrusted]))
    env["signatures"][0]["keyid"] = keys.key_id(e.trusted.public_key())
    return json.dumps(env).encode(), "SIGNATURE_INVALID"


def forge_url_safe_payload(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # a payload whose standard base64 contains '+' or '/', re-encoded URL-safe (cosign fails late on it)
    payload = statement(d, predicate={"scanner": {"name": "t", "version": "1"}, "findings": [], "blob": "\xff\xfe\xfd" * 30})
    env = json.loads(sign_envelope(payload, [e.trusted]))
    std = env["payload"]
    assert "+" in std or "/" in std
    env["payload"] = base64.urlsafe_b64encode(payload).decode()
    return json.dumps(env).encode(), "MALFORMED_ENVELOPE"


def forge_statement_wrong_type(e: Env, d: str, o: str) -> tuple[bytes, str]:
    st = json.loads(statement(d))
    st["_type"] = "https://in-toto.io/Statement/v9"
    return sign_envelope(json.dumps(st).encode(), [e.trusted]), "MALFORMED_STATEMENT"


def forge_predicate_type_alias_field(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # the non-spec spelling predicate_type must not count (and is an unknown field)
    st = json.loads(statement(d))
    st["predicate_type"] = st.pop("predicateType")
    return sign_envelope(json.dumps(st).encode(), [e.trusted]), "MALFORMED_STATEMENT"


def forge_subject_other_alg_only(e: Env, d: str, o: str) -> tuple[bytes, str]:
    # subject names the right hex under another algorithm name
    st = json.loads(statement(d))
    st["subject"][0]["digest"] = {"sha512": d.split(":", 1)[1]}
    return sign_envelope(json.dumps(st).encode(), [e.trusted]), "SUBJECT_MISMATCH"


FORGERIES: dict[str, Callable[[Env, str, str], tuple[bytes, str]]] = {
    "payload_altered": forge_payload_altered,
    "signature_altered": forge_signature_altered,
    "signature_by_other_key": forge_other_key,
    "subject_swap": forge_subject_swap,
    "payload_type_not_intoto": forge_payload_type_json,
    "payload_type_edited_after_signing": forge_payload_type_swapped,
    "duplicate_key_in_statement": forge_duplicate_statement_key,
    "duplicate_key_in_envelope": forge_duplicate_envelope_key,
    "only_untrusted_signature_valid": forge_only_untrusted_valid,
    "unsigned_envelope": forge_unsigned,
    "empty_signature": forge_empty_signature,
    "keyid_claims_trusted_key": forge_keyid_claims_trusted,
    "url_safe_payload": forge_url_safe_payload,
    "statement_type_unknown": forge_statement_wrong_type,
    "predicate_type_misspelled_field": forge_predicate_type_alias_field,
    "subject_digest_under_other_algorithm": forge_subject_other_alg_only,
}


# What a carrier refuses before the signatures are looked at. A sigstore bundle binds ONE signature
# to its one verification material (issue 17 item 1, as cosign and sigstore-python do): an envelope
# carrying two signatures in a bundle is refused as MALFORMED_ENVELOPE before any signature is
# tried, where the .att carrier (one envelope, any number of signatures) gets SIGNATURE_INVALID.
CARRIER_EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("only_untrusted_signature_valid", "bundle"): ("MALFORMED_ENVELOPE", "exactly one signature"),
}


def _attach(e: Env, carrier: str, repo: str, digest: str, size: int, envelope: bytes, **kw: Any) -> None:
    if carrier == "att":
        push_att(e.client, e.registry, repo, digest, [envelope], **kw)
        return
    # the envelope text goes into the bundle verbatim (an ambiguous envelope stays ambiguous)
    bundle = (
        '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",'
        '"verificationMaterial":{"publicKey":{"hint":""}},"dsseEnvelope":%s}' % envelope.decode()
    ).encode()
    push_bundle_referrer(e.client, e.registry, repo, digest, size, bundle, **kw)


@pytest.mark.parametrize("carrier", ["att", "bundle"])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forgery_is_refused_with_its_reason(env: Env, forgery: str, carrier: str) -> None:
    repo, digest, size = env.image()
    _, other, _ = env.image()
    envelope, expected = FORGERIES[forgery](env, digest, other)
    expected, says = CARRIER_EXPECTED.get((forgery, carrier), (expected, ""))
    _attach(env, carrier, repo, digest, size, envelope)
    verdict = verdict_of_image(env, repo, digest)
    atts = verdict["attestations"]
    assert len(atts) == 1, verdict
    att = atts[0]
    assert att["verified"] is False, att
    assert reasons(att) == [expected], att
    assert says in " ".join(e["message"] for e in att["errors"]), att
    assert att["signers"] == [], att
    assert "predicate" not in att, "an unverified attestation must not carry its content"
    assert att["source"] == ("cosign-tag" if carrier == "att" else "bundle")


def verdict_of_image(env: Env, repo: str, digest: str) -> dict[str, Any]:
    return env.verdict(repo, digest)


@pytest.mark.parametrize("carrier", ["att", "bundle"])
def test_genuine_attestation_verifies_on_each_carrier(env: Env, carrier: str) -> None:
    """The control: the same pipeline accepts the untampered attestation (so the refusals
    above are caused by the forgery, not by the set-up)."""
    repo, digest, size = env.image()
    _attach(env, carrier, repo, digest, size, sign_envelope(statement(digest), [env.trusted]))
    att = env.verdict(repo, digest)["attestations"][0]
    assert att["verified"] is True, att
    assert att["signers"][0]["authority"] == "release-key"
    assert att["predicateType"] == SCAN_TYPE


def test_trusted_and_untrusted_signatures_name_only_the_trusted_signer(env: Env) -> None:
    repo, digest, size = env.image()
    push_att(env.client, env.registry, repo, digest, [sign_envelope(statement(digest), [env.untrusted, env.trusted])])
    att = env.verdict(repo, digest)["attestations"][0]
    assert att["verified"] is True
    assert [s["authority"] for s in att["signers"]] == ["release-key"]


@pytest.mark.parametrize("carrier", ["att", "bundle"])
def test_predicate_type_claimed_by_annotation_only_is_not_trusted(env: Env, carrier: str) -> None:
    """The annotations say scan-result; the signed statement says another type. The verdict
    reports the signed type only, so a policy asking for scan-result finds nothing verified."""
    repo, digest, size = env.image()
    envelope = sign_envelope(statement(digest, predicate_type=OTHER_TYPE, predicate={"x": 1}), [env.trusted])
    if carrier == "att":
        push_att(env.client, env.registry, repo, digest, [envelope], predicate_type=SCAN_TYPE,
                 layer_annotations=[{"dev.stellaops/predicate-type": SCAN_TYPE}])  # fmt: skip
    else:
        push_bundle_referrer(env.client, env.registry, repo, digest, size, key_bundle(envelope, env.trusted.public_key()),
                             annotated_predicate_type=SCAN_TYPE,
                             extra_annotations={"dev.stellaops/predicate-type": SCAN_TYPE})  # fmt: skip
    verdict = env.verdict(repo, digest)
    assert [a["predicateType"] for a in verdict["attestations"]] == [OTHER_TYPE], verdict
    assert not [a for a in verdict["attestations"] if a["predicateType"] == SCAN_TYPE and a["verified"]]


def test_forged_layer_next_to_genuine_one_does_not_taint_or_pass(env: Env) -> None:
    """A forged layer added beside a genuine one: the genuine one stays verified, the forged
    one is listed unverified with its reason (never merged into the genuine result)."""
    repo, digest, _ = env.image()
    good = sign_envelope(statement(digest), [env.trusted])
    bad, _ = forge_payload_altered(env, digest, digest)
    push_att(env.client, env.registry, repo, digest, [good, bad])
    atts = env.verdict(repo, digest)["attestations"]
    assert sorted((a["verified"], tuple(reasons(a))) for a in atts) == [(False, ("SIGNATURE_INVALID",)), (True, ())]


# --------------------------------------------------------------------------- keyless downgrades


def test_keyless_bundle_verifies_then_downgrade_to_bare_layer_is_refused(env: Env) -> None:
    """A keyless bundle verifies; the same envelope re-attached as a bare ``.att`` layer (its
    certificate and log entry stripped) has no signer the provider can trust."""
    repo, digest, size = env.image()
    att = env.sigstore.attest(statement(digest))
    push_bundle_referrer(env.client, env.registry, repo, digest, size, att.bundle_json())
    verdict = env.verdict(repo, digest)
    assert [(a["source"], a["verified"]) for a in verdict["attestations"]] == [("bundle", True)], verdict
    assert verdict["attestations"][0]["signers"][0]["kind"] == "keyless"

    repo2, digest2, _ = env.image()
    att2 = env.sigstore.attest(statement(digest2))
    push_att(env.client, env.registry, repo2, digest2, [att2.envelope])  # no certificate / chain / bundle annotations
    a = env.verdict(repo2, digest2)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["SIGNATURE_INVALID"], a


def test_keyless_bundle_with_log_entry_stripped_is_refused(env: Env) -> None:
    repo, digest, size = env.image()
    att = env.sigstore.attest(statement(digest))
    push_bundle_referrer(env.client, env.registry, repo, digest, size, att.bundle_json(with_entry=False))
    a = env.verdict(repo, digest)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["TLOG_MISSING"], a


def test_keyless_legacy_layer_with_certificate_but_no_log_entry_is_refused(env: Env) -> None:
    repo, digest, _ = env.image()
    att = env.sigstore.attest(statement(digest))
    from tests.fixtures.sigstore import pem

    ann = {"dev.sigstore.cosign/certificate": pem(att.leaf.cert), "dev.sigstore.cosign/chain": "".join(pem(c) for c in att.leaf.chain)}
    push_att(env.client, env.registry, repo, digest, [att.envelope], layer_annotations=[ann])
    a = env.verdict(repo, digest)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["TLOG_MISSING"], a


def test_keyless_certificate_of_another_identity_is_refused_end_to_end(env: Env) -> None:
    repo, digest, size = env.image()
    att = env.sigstore.attest(statement(digest), identity="https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main")
    push_bundle_referrer(env.client, env.registry, repo, digest, size, att.bundle_json())
    a = env.verdict(repo, digest)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["IDENTITY_MISMATCH"], a


# --------------------------------------------------------------------------- key rotation


def test_replay_after_key_rotation_is_unverified(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """Documented behaviour (docs/threat-model.md, "Key rotation"): an attestation signed by a
    key that has been removed from the configuration is unverified (SIGNATURE_INVALID), even
    though it was valid when made. There is no grace period and no revocation list: removing
    the key is the revocation."""
    old, new = new_key(), new_key()
    old_pub, new_pub = write_public_key(old, tmp_path / "old.pub"), write_public_key(new, tmp_path / "new.pub")
    client = loopback_client()
    digest = push_test_image(ocireg, "tamper/rotation", "v1", client=client)
    push_att(client, ocireg, "tamper/rotation", digest, [sign_envelope(statement(digest), [old])])
    key = f"{ocireg}/tamper/rotation@{digest}"

    before = provider_factory(provider_config(tmp_path / "a", {"release-key": old_pub}), name="before")
    a = verdict_of(before.verify(key), key)["attestations"][0]
    assert a["verified"] is True
    before.stop()

    after = provider_factory(provider_config(tmp_path / "b", {"release-key": new_pub}), name="after")
    a = verdict_of(after.verify(key), key)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["SIGNATURE_INVALID"], a
    client.close()


# --------------------------------------------------------------------------- made by the real cosign


@pytest.mark.cosign
def test_cosign_made_attestations_verify_and_their_forgeries_do_not(
    tmp_path: Path, ocireg: str, cosign_keypair: tuple[str, str], provider_factory: Callable[..., ProviderProcess]
) -> None:
    """Attestations made by the real ``cosign attest`` (legacy ``.att`` and v3 bundle), then
    forged byte by byte: payload edited in the ``.att`` layer and in the bundle; a genuine
    cosign attestation of image A attached to image B with ``cosign attach attestation``
    (which validates nothing)."""
    from stellaops.registry import OCI_MANIFEST
    from tests.fixtures.images import cosign_attest, run_cosign

    key_path, pub_path = cosign_keypair
    client = loopback_client()
    digest = push_test_image(ocireg, "tamper/cosign", "v1", client=client)
    other = push_test_image(ocireg, "tamper/cosign-other", "v1", client=client)
    image = f"{ocireg}/tamper/cosign@{digest}"
    pred = {"builder": {"id": "https://ci.example.com"}, "buildType": "https://example.com/b@v1"}
    cosign_attest(key_path, image, pred, "slsaprovenance", str(tmp_path), legacy=True)
    cosign_attest(key_path, image, pred, "slsaprovenance", str(tmp_path), legacy=False)
    cosign_attest(key_path, f"{ocireg}/tamper/cosign-other@{other}", pred, "slsaprovenance", str(tmp_path), legacy=True)

    p = provider_factory(provider_config(tmp_path, {"release-key": Path(pub_path)}))
    atts = verdict_of(p.verify(image), image)["attestations"]
    assert sorted((a["source"], a["verified"]) for a in atts) == [("bundle", True), ("cosign-tag", True)], atts

    # 1. the .att layer: edit the payload, keep cosign's signature and annotations
    tag = digest.replace(":", "-") + ".att"
    m = client.get_manifest(ocireg, "tamper/cosign", tag)
    layer = m.layers[0]
    env = json.loads(client.get_blob(ocireg, "tamper/cosign", layer.digest))
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["builder"]["id"] = "https://evil.example.com"
    env["payload"] = _b64(json.dumps(st).encode())
    forged = json.dumps(env).encode()
    doc = json.loads(m.raw)
    doc["layers"][0].update(digest=client.put_blob(ocireg, "tamper/cosign", forged), size=len(forged))
    client.put_manifest(ocireg, "tamper/cosign", tag, json.dumps(doc).encode(), OCI_MANIFEST)

    # 2. the bundle: the same edit inside a copy of cosign's bundle, pushed as a second referrer
    listing = client.list_referrers(ocireg, "tamper/cosign", digest)
    ref_desc = next(d for d in listing if d.artifact_type.startswith("application/vnd.dev.sigstore.bundle") or d.artifact_type == "application/vnd.oci.empty.v1+json")
    bm = client.get_manifest(ocireg, "tamper/cosign", ref_desc.digest)
    bundle = json.loads(client.get_blob(ocireg, "tamper/cosign", bm.layers[0].digest))
    bundle["dsseEnvelope"]["payload"] = env["payload"]
    size = len(client.get_manifest(ocireg, "tamper/cosign", digest).raw)
    push_bundle_referrer(client, ocireg, "tamper/cosign", digest, size, json.dumps(bundle).encode())

    atts = verdict_of(p.verify(image), image)["attestations"]
    outcome = sorted((a["source"], a["verified"], tuple(reasons(a))) for a in atts)
    assert outcome == [("bundle", False, ("SIGNATURE_INVALID",)), ("bundle", True, ()), ("cosign-tag", False, ("SIGNATURE_INVALID",))], atts

    # 3. subject swap with cosign's own tool: image B's genuine attestation attached to image A2
    digest2 = push_test_image(ocireg, "tamper/cosign2", "v1", client=client)
    om = client.get_manifest(ocireg, "tamper/cosign-other", other.replace(":", "-") + ".att")
    genuine_b = client.get_blob(ocireg, "tamper/cosign-other", om.layers[0].digest)
    (tmp_path / "b.dsse.json").write_bytes(genuine_b)
    image2 = f"{ocireg}/tamper/cosign2@{digest2}"
    run_cosign("attach", "attestation", "--attestation", str(tmp_path / "b.dsse.json"), image2)
    atts = verdict_of(p.verify(image2), image2)["attestations"]
    assert [(a["verified"], reasons(a)) for a in atts] == [(False, ["SUBJECT_MISMATCH"])], atts
    client.close()


def test_shared_verdict_cache_is_not_reused_across_a_trust_change(
    tmp_path: Path, ocireg: str, redis_url: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """Two providers share one Redis verdict cache. One trusts the old key and caches a
    positive verdict; the other, configured after the rotation, must not be served it (the
    cache key carries the trust-configuration fingerprint)."""
    old, new = new_key(), new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "tamper/cache", "v1", client=client)
    push_att(client, ocireg, "tamper/cache", digest, [sign_envelope(statement(digest), [old])])
    client.close()
    key = f"{ocireg}/tamper/cache@{digest}"
    cache = f"cache: {{ttlSeconds: 300, negativeTtlSeconds: 300, digestTtlSeconds: 300, redisUrl: '{redis_url}'}}\n"

    def cfg(d: Path, k: Any) -> str:
        text = provider_config(d, {"release-key": write_public_key(k, d.parent / f"{d.name}.pub")})
        return "\n".join(ln for ln in text.splitlines() if not ln.startswith("cache:")) + "\n" + cache

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = provider_factory(cfg(tmp_path / "a", old), name="old-trust")
    assert verdict_of(before.verify(key), key)["attestations"][0]["verified"] is True
    import redis

    r = redis.Redis.from_url(redis_url)
    assert r.dbsize() > 0, "the verdict was not cached in Redis: this test would prove nothing"
    r.close()
    after = provider_factory(cfg(tmp_path / "b", new), name="new-trust")
    a = verdict_of(after.verify(key), key)["attestations"][0]
    assert a["verified"] is False and reasons(a) == ["SIGNATURE_INVALID"], a


def test_negative_verdict_from_another_repository_is_not_reused(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    from stellaops.registry import OCI_MANIFEST

    key_ = new_key()
    client = loopback_client()
    digest = push_test_image(ocireg, "tamper/attested", "v1", client=client)
    push_att(client, ocireg, "tamper/attested", digest, [sign_envelope(statement(digest), [key_])])
    # the very same image (same bytes, same digest) in another repository, with no attestation
    m = client.get_manifest(ocireg, "tamper/attested", digest)
    for d in [m.config, *m.layers]:
        assert d is not None
        client.put_blob(ocireg, "tamper/unattested-copy", client.get_blob(ocireg, "tamper/attested", d.digest))
    client.put_manifest(ocireg, "tamper/unattested-copy", digest, m.raw, OCI_MANIFEST)
    client.close()
    cfg = provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}, cache_ttl=300)
    p = provider_factory(cfg)
    copy_key, real_key = f"{ocireg}/tamper/unattested-copy@{digest}", f"{ocireg}/tamper/attested@{digest}"
    assert verdict_of(p.verify(copy_key), copy_key)["attestations"] == []  # the attacker's pod asks first
    atts = verdict_of(p.verify(real_key), real_key)["attestations"]
    assert [a["verified"] for a in atts] == [True], atts


# --------------------------------------------------------------------------- multi-platform indexes


def _opa_eval(provider_url: str, query: str) -> Any:
    import os
    import subprocess

    from tests.fixtures.tools import ROOT, tool

    sources = [p for d in ("rego/lib/stellaops", "rego/transport/http") for p in sorted((ROOT / d).glob("*.rego")) if not p.name.endswith("_test.rego")]
    proc = subprocess.run(
        [tool("opa"), "eval", "--format", "json", *[a for p in sources for a in ("-d", str(p))], query],
        capture_output=True, text=True, timeout=60, env={**os.environ, "STELLAOPS_PROVIDER_URL": provider_url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout).get("result") or []
    return result[0]["expressions"][0]["value"] if result else None


def test_index_smuggling_an_unattested_platform_next_to_an_attested_one_is_not_verified(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess]
) -> None:
    """The attacker copies a vetted image's manifest and its genuine attestation (both public)
    into their repository, pushes their own image, and pushes an index listing their image
    first and the vetted one second, both linux/amd64. A runtime pulls the first match."""
    from stellaops.registry import OCI_INDEX

    key_ = new_key()
    client = loopback_client()
    vetted = push_test_image(ocireg, "tamper/smuggle", "vetted", client=client)
    push_att(client, ocireg, "tamper/smuggle", vetted, [sign_envelope(statement(vetted), [key_])])
    evil = push_test_image(ocireg, "tamper/smuggle", "evil", client=client)
    size = {d: len(client.get_manifest(ocireg, "tamper/smuggle", d).raw) for d in (vetted, evil)}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size[d],
         "platform": {"os": "linux", "architecture": "amd64"}} for d in (evil, vetted)]}).encode()  # fmt: skip
    index_digest = client.put_manifest(ocireg, "tamper/smuggle", "multi", index, OCI_INDEX)
    client.close()
    p = provider_factory(provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}))
    key = f"{ocireg}/tamper/smuggle@{index_digest}"
    # control: the vetted image alone verifies, the evil one alone does not
    assert _opa_eval(p.url, f'data.lib.stellaops.get_attestation("{ocireg}/tamper/smuggle@{vetted}", "{SCAN_TYPE}").verified') is True
    assert _opa_eval(p.url, f'data.lib.stellaops.get_attestation("{ocireg}/tamper/smuggle@{evil}", "{SCAN_TYPE}").verified') is None
    got = _opa_eval(p.url, f'data.lib.stellaops.get_attestation("{key}", "{SCAN_TYPE}")')
    assert not (isinstance(got, dict) and got.get("verified") is True), f"the smuggling index was admitted on {got and got.get('digest')}"


def test_tenant_annotation_from_a_registry_is_marked_by_its_source(env: Env) -> None:
    """Documented hazard (docs/threat-model.md §5): `dev.stellaops/tenant` is server-set only on
    imported attestations; on registry copies it is whatever the pusher wrote. The verdict
    keeps them apart by `source`, which policies must check before trusting the tenant."""
    repo, digest, _ = env.image()
    push_att(env.client, env.registry, repo, digest, [sign_envelope(statement(digest), [env.trusted])],
             layer_annotations=[{"dev.stellaops/tenant": "acme"}])  # fmt: skip
    att = env.verdict(repo, digest)["attestations"][0]
    assert att["verified"] is True and att["annotations"]["dev.stellaops/tenant"] == "acme"
    assert att["source"] == "cosign-tag", att


@pytest.mark.parametrize("attested", ["every_platform", "index_itself", "one_platform_only"])
def test_index_whose_platforms_are_all_attested_or_which_is_attested_itself_is_verified(
    tmp_path: Path, ocireg: str, provider_factory: Callable[..., ProviderProcess], attested: str
) -> None:
    """The control for index smuggling: the fix must not refuse every index (the index rule admits
    one attested on itself or on each platform, and still denies one with a bare platform)."""
    key_ = new_key()
    client = loopback_client()
    repo = f"tamper/index-{attested.replace('_', '-')}"
    index_digest = push_test_image(ocireg, repo, "multi", platforms=["linux/amd64", "linux/arm64"], client=client)
    index = client.get_manifest(ocireg, repo, index_digest)
    targets = {"every_platform": [d.digest for d in index.manifests], "index_itself": [index_digest],
               "one_platform_only": [index.manifests[0].digest]}[attested]  # fmt: skip
    for d in targets:
        push_att(client, ocireg, repo, d, [sign_envelope(statement(d), [key_])])
    client.close()
    p = provider_factory(provider_config(tmp_path, {"release-key": write_public_key(key_, tmp_path / "k.pub")}))
    key = f"{ocireg}/{repo}@{index_digest}"
    # The rule (docs/policies.md "Multi-arch images"): an index passes on its OWN attestations, or
    # on EACH platform's own. Judged per view as every shipped policy does: a view fails unless its
    # best scan-result is verified; denials() applies the rule (an empty set admits).
    lib = "data.lib.stellaops"
    verdict = f'{lib}.verdict("{key}")'
    problems = (f'{{view.digest: p | some view in {lib}.views({verdict}); '
                f'p := {{"no verified scan-result" | not {lib}.verify_attestation({lib}.attestations_in(view, "{SCAN_TYPE}")[0])}}}}')  # fmt: skip
    assert _opa_eval(p.url, f"count({lib}.views({verdict}))") == 1 + len(index.manifests)
    denied = _opa_eval(p.url, f"{lib}.denials({verdict}, {problems})")
    if attested == "one_platform_only":  # the control: the unattested platform is named, alone
        bare = index.manifests[1].digest
        assert denied and all(bare in r or index_digest in r for r in denied), denied
        assert any(f"platform <{bare}>" in r for r in denied), denied
        assert not any(index.manifests[0].digest in r for r in denied), denied
        return
    assert denied == [], denied
    # get_attestation returns ONE attestation, about the index digest itself: it cannot say "each
    # platform", so an index attested only per platform has none (the seed snippet fails closed)
    got = _opa_eval(p.url, f'{lib}.get_attestation("{key}", "{SCAN_TYPE}")')
    if attested == "index_itself":
        assert isinstance(got, dict) and got.get("verified") is True and got.get("digest") == index_digest, got
    else:
        assert got is None, got
