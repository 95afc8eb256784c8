"""trustroot: trusted_root.json parsing errors name the file; private-instance PEM files work."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from stellaops.errors import ConfigError
from stellaops.trust import SigstoreRoots, TrustConfig
from stellaops.verify import trustroot
from stellaops.verify.attestation import verify_candidate
from tests.fixtures.keys import IMAGE_DIGEST, statement
from tests.fixtures.sigstore import TestSigstore, pem, spki_der


def test_loads_the_test_sigstore_root(test_sigstore: TestSigstore) -> None:
    material = trustroot.load_trusted_root(test_sigstore.trusted_root_json(), "root.json")
    assert len(material.fulcio) == 1 and len(material.fulcio[0].certificates) == 2
    assert material.rekor[0].log_id == test_sigstore.rekor.log_id
    assert material.ctlogs and material.source == "root.json"


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda d: d.update(mediaType="application/json"), "mediaType"),
        (lambda d: d["tlogs"][0]["publicKey"].update(rawBytes="!!"), "tlogs[0].publicKey.rawBytes"),
        (lambda d: d["tlogs"][0]["publicKey"].update(rawBytes="AAAA"), "tlogs[0].publicKey.rawBytes is not a DER public key"),
        (lambda d: d["certificateAuthorities"][0]["certChain"].update(certificates=[]), "certificateAuthorities[0].certChain"),
        (lambda d: d["certificateAuthorities"][0].update(validFor={"start": "yesterday"}), "validFor.start"),
        (lambda d: (d.update(certificateAuthorities=[], tlogs=[])), "neither"),
    ],
)
def test_invalid_documents_name_the_file_and_field(test_sigstore: TestSigstore, mutate, words: str) -> None:  # type: ignore[no-untyped-def]
    doc = test_sigstore.trusted_root()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        trustroot.load_trusted_root(json.dumps(doc).encode(), "/etc/stellaops/trust-bundle.json")
    assert err.value.reason == "CONFIG_INVALID"
    assert "/etc/stellaops/trust-bundle.json" in err.value.detail and words in err.value.detail


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"\xff"])
def test_garbage_is_a_config_error(data: bytes) -> None:
    with pytest.raises(ConfigError):
        trustroot.load_trusted_root(data, "x.json")


def test_private_instance_pem_files_verify_keyless(test_sigstore: TestSigstore) -> None:
    def pub(key) -> bytes:  # type: ignore[no-untyped-def]
        return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    roots = SigstoreRoots(
        fulcio_roots_pem=(pem(test_sigstore.ca.root) + pem(test_sigstore.ca.inter)).encode(),
        rekor_public_key_pem=pub(test_sigstore.rekor.key),
        ctlog_public_key_pem=pub(test_sigstore.ct_key),
        offline=True,
    )
    material = trustroot.from_roots(roots)
    assert material.fulcio[0].certificates[-1] == test_sigstore.ca.root  # root last
    assert spki_der(material.rekor[0].public_key) == spki_der(test_sigstore.rekor.key.public_key())
    trust = TrustConfig(authorities=test_sigstore.trust().authorities, require_tlog=True, sigstore=roots)
    att = test_sigstore.attest(statement())
    for cand in (att.legacy(), att.bundle()):
        result = verify_candidate(cand, IMAGE_DIGEST, trust)
        assert result.verified, result.errors


def test_private_instance_with_another_fulcio_root_refuses(test_sigstore: TestSigstore) -> None:
    other = TestSigstore()
    roots = SigstoreRoots(fulcio_roots_pem=pem(other.ca.root).encode(), offline=True,
                          rekor_public_key_pem=test_sigstore.rekor.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
                          ctlog_public_key_pem=test_sigstore.ct_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    trust = TrustConfig(authorities=test_sigstore.trust().authorities, require_tlog=True, sigstore=roots)
    result = verify_candidate(test_sigstore.attest(statement()).legacy(), IMAGE_DIGEST, trust)
    assert [e.reason for e in result.errors] == ["CERTIFICATE_INVALID"]


def test_ca_valid_for_window_is_enforced(test_sigstore: TestSigstore) -> None:
    doc = test_sigstore.trusted_root()
    doc["certificateAuthorities"][0]["validFor"] = {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}
    trust = TrustConfig(
        authorities=test_sigstore.trust().authorities,
        sigstore=SigstoreRoots(trusted_root_json=json.dumps(doc).encode(), offline=True),
    )
    result = verify_candidate(test_sigstore.attest(statement()).legacy(), IMAGE_DIGEST, trust)
    assert [e.reason for e in result.errors] == ["CERTIFICATE_INVALID"] and "no Fulcio certificate authority" in result.errors[0].message


def test_keyless_without_trust_roots_is_refused(test_sigstore: TestSigstore) -> None:
    trust = TrustConfig(authorities=test_sigstore.trust().authorities, sigstore=None)
    result = verify_candidate(test_sigstore.attest(statement()).legacy(), IMAGE_DIGEST, trust)
    assert [e.reason for e in result.errors] == ["CERTIFICATE_INVALID"]
