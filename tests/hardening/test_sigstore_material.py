"""Issue 17 end to end: attestations pushed to a real registry (``ocireg``) and verified by the
real provider over the Gatekeeper protocol, with the offline test Sigstore, a GitHub-instance
shaped trusted root and the real timestamp-server. Named by the threat rows proposed for
``docs/threat-model.md`` §4.1 (T-F31 … T-F36 in the verification helper's report):

- T-F31 a second signature riding along in a sigstore bundle (the logged one, twice)
- T-F32 a keyless signature timestamped after its certificate expired
- T-F33 the GitHub-instance relaxations (no SCT, no log) reaching another authority
- T-F34 a GitHub workflow pin fooled (other value, missing extension)
- T-F35 a scheme guessed: RSA-PSS by the trusted PKCS#1 v1.5 key
- T-F36 a JSON Lines trusted root (``gh attestation trusted-root``) merged as the provider's bundlePath
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from stellaops import dsse
from stellaops.registry import RegistryClient
from stellaops.verify import keys

from tests.fixtures.images import loopback_client, push_test_image
from tests.fixtures.provider import ProviderProcess, start_provider
from tests.fixtures.sigstore import ISSUER, FulcioCA, TestSigstore, github_extensions
from tests.fixtures.tsa import TsaServer
from tests.hardening._support import assert_provider_response, egress_env, push_att, push_bundle_referrer, reasons, statement
from tests.unit.verify.test_github_instance import github_root
from tests.unit.verify.test_timestamp import tsa_entry

PUBLIC_ID = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
PRIVATE_ID = "https://github.com/acme/private/.github/workflows/release.yml@refs/heads/main"
NO_SIGNED_TIME = {"predicate_type": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": {}}}


@dataclass
class World:
    registry: str
    client: RegistryClient
    provider: ProviderProcess
    sigstore: TestSigstore
    github_ca: FulcioCA
    tsa: TsaServer
    rsa_key: Any
    counter: int = 0

    def image(self) -> tuple[str, str, int]:
        self.counter += 1
        repo = f"issue17/img{self.counter}"
        digest = push_test_image(self.registry, repo, "v1", client=self.client)
        return repo, digest, len(self.client.get_manifest(self.registry, repo, digest).raw)

    def verdict(self, repo: str, digest: str) -> dict[str, Any]:
        key = f"{self.registry}/{repo}@{digest}"
        resp = self.provider.verify(key)
        assert resp.pop("_status") == 200, resp
        assert_provider_response(resp)
        assert resp["response"]["systemError"] == "", resp
        [item] = resp["response"]["items"]
        assert item["error"] == "", item
        return item["value"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ocireg: str, test_sigstore: TestSigstore, tsa: TsaServer) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("issue17")
    github_ca = FulcioCA.create("fulcio.githubapp.test")
    public = test_sigstore.trusted_root()
    public["timestampAuthorities"] = [tsa_entry(tsa)]
    # T-F36: the provider's bundlePath is gh attestation trusted-root's JSON Lines (public + GitHub)
    (tmp / "trusted_root.jsonl").write_text(json.dumps(public) + "\n" + json.dumps(github_root(github_ca, tsa)) + "\n")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp / "rsa.pub").write_bytes(keys.public_key_pem(rsa_key.public_key()))
    cfg = f"""
attestation:
  requireTlog: false
  trustRoots: {{bundlePath: {tmp / 'trusted_root.jsonl'}, offline: true}}
  authorities:
    - name: rsa-release
      key: {{path: {tmp / 'rsa.pub'}}}
    - name: public-ci
      keyless: {{issuer: '{ISSUER}', subject: '{PUBLIC_ID}', githubWorkflowRef: refs/heads/main, githubWorkflowRepository: acme/app}}
    - name: private-ci
      keyless: {{issuer: '{ISSUER}', subject: '{PRIVATE_ID}', insecureIgnoreSct: true, useSignedTimestamps: true}}
registries: {{allow: ["*"], allowPrivate: true}}
store: {{dsn: 'sqlite:///{tmp / 'store.db'}'}}
cache: {{ttlSeconds: 0, negativeTtlSeconds: 0, digestTtlSeconds: 0}}
server: {{deadlineSeconds: 5}}
"""
    env_vars, trip = egress_env(tmp)
    provider = start_provider(tmp / "provider", cfg, env=env_vars)
    client = loopback_client()
    try:
        yield World(ocireg, client, provider, test_sigstore, github_ca, tsa, rsa_key)
    finally:
        provider.stop()
        client.close()
        assert not trip.exists() or not trip.read_text(), f"non-loopback connects attempted: {trip.read_text()}"


def _public(w: World, **kw: Any) -> Any:
    """A public-good-style keyless attestation (SCT, log entry) of a fresh image."""
    repo, digest, size = w.image()
    return repo, digest, size, w.sigstore.attest(statement(digest, **NO_SIGNED_TIME), identity=PUBLIC_ID, extensions=kw.pop("extensions", github_extensions()), **kw)


def test_genuine_public_attestation_verifies(world: World) -> None:
    repo, digest, size, att = _public(world)
    push_bundle_referrer(world.client, world.registry, repo, digest, size, att.bundle_json())
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is True and a["signers"][0]["authority"] == "public-ci", a


@pytest.mark.parametrize("entry_kind", ["dsse", "intoto"])
def test_t_f31_bundle_with_its_logged_signature_twice_is_refused(world: World, entry_kind: str) -> None:
    repo, digest, size, att = _public(world, entry_kind=entry_kind)
    doc = json.loads(att.bundle_json())
    doc["dsseEnvelope"]["signatures"].append(dict(doc["dsseEnvelope"]["signatures"][0]))
    push_bundle_referrer(world.client, world.registry, repo, digest, size, json.dumps(doc).encode())
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["MALFORMED_ENVELOPE"] and not a["signers"], a


def test_t_f32_keyless_timestamp_after_the_certificate_expired_is_refused(world: World) -> None:
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    repo, digest, size, att = _public(world, not_before=old, integrated_time=int((old + dt.timedelta(minutes=1)).timestamp()), entry_kind="intoto")
    push_bundle_referrer(world.client, world.registry, repo, digest, size, att.bundle_json(timestamps=(world.tsa.timestamp(att.signature),)))
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["TIMESTAMP_INVALID"] and not a.get("timestamps"), a


def _private(w: World, identity: str, *, sct: str = "none", timestamped: bool = True) -> tuple[str, str, int, bytes]:
    repo, digest, size = w.image()
    leaf = w.sigstore.issue(ca=w.github_ca, identity=identity, sct=sct, extensions=github_extensions())
    att = w.sigstore.attest(statement(digest, **NO_SIGNED_TIME), leaf=leaf)
    return repo, digest, size, att.bundle_json(with_entry=False, timestamps=(w.tsa.timestamp(att.signature),) if timestamped else ())


def test_t_f33_github_instance_attestation_verifies_for_the_opted_in_authority_only(world: World) -> None:
    repo, digest, size, bundle = _private(world, PRIVATE_ID)
    push_bundle_referrer(world.client, world.registry, repo, digest, size, bundle)
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is True and a["signers"][0]["authority"] == "private-ci" and len(a["timestamps"]) == 1, a
    assert a["tlog"] == {"verified": False, "required": False}
    # the same shape under the public authority's identity: its SCT and its log stay required
    repo, digest, size, bundle = _private(world, PUBLIC_ID)
    push_bundle_referrer(world.client, world.registry, repo, digest, size, bundle)
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["SCT_INVALID"], a
    # with a valid SCT (the public root's CT log signs it) the public authority still needs its
    # log entry: a verified timestamp does not stand in for it there
    repo, digest, size, bundle = _private(world, PUBLIC_ID, sct="valid")
    push_bundle_referrer(world.client, world.registry, repo, digest, size, bundle)
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["TLOG_MISSING"], a
    assert "useSignedTimestamps" in a["errors"][0]["hint"], a
    # the opted-in authority without a timestamp
    repo, digest, size, bundle = _private(world, PRIVATE_ID, timestamped=False)
    push_bundle_referrer(world.client, world.registry, repo, digest, size, bundle)
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["TIMESTAMP_INVALID"], a


@pytest.mark.parametrize("case", ["other-ref", "missing-extensions"])
def test_t_f34_github_workflow_pin_is_not_fooled(world: World, case: str) -> None:
    exts = github_extensions(ref="refs/heads/evil") if case == "other-ref" else ()
    repo, digest, size, att = _public(world, extensions=exts)
    push_bundle_referrer(world.client, world.registry, repo, digest, size, att.bundle_json())
    [a] = world.verdict(repo, digest)["attestations"]
    assert a["verified"] is False and reasons(a) == ["IDENTITY_MISMATCH"], a


def test_t_f35_rsa_pss_by_the_trusted_rsa_key_is_refused(world: World) -> None:
    repo, digest, _ = world.image()
    payload = statement(digest)
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)

    def envelope(sig: bytes) -> bytes:
        return json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO,
                           "signatures": [{"sig": base64.b64encode(sig).decode()}]}, separators=(",", ":")).encode()  # fmt: skip

    pss = world.rsa_key.sign(pae, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    pkcs = world.rsa_key.sign(pae, padding.PKCS1v15(), hashes.SHA256())
    push_att(world.client, world.registry, repo, digest, [envelope(pss), envelope(pkcs)])
    atts = world.verdict(repo, digest)["attestations"]
    assert sorted((a["verified"], tuple(reasons(a))) for a in atts) == [(False, ("SIGNATURE_INVALID",)), (True, ())], atts
