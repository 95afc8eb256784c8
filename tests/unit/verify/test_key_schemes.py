"""No scheme guessing (issue 17 item 6): each key type verifies exactly the signature scheme its
format implies and refuses every other scheme made with the same private key.

An ``rsaEncryption`` SPKI (what ``cosign.pub`` holds for RSA) means RSASSA-PKCS1-v1_5 with
SHA-256 in cosign and sigstore (``PKIX_RSA_PKCS1V15_*_SHA256``); cosign refuses an RSA-PSS
signature by that key, and so do we. ECDSA hashes with the curve's own hash. Ed25519 accepts its
two domain-separated variants (pure and Ed25519ph, ``keys.SCHEMES``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from stellaops import dsse
from stellaops.verify import keys
from stellaops.verify.attestation import verify_candidate

from tests.fixtures.keys import IMAGE_DIGEST, candidate, key_authority, make_private_key, statement, trust_for

MSG = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"

Signer = Callable[[Any, bytes], bytes]


def _ecdsa(h: type[hashes.HashAlgorithm]) -> Signer:
    return lambda k, m: k.sign(m, ec.ECDSA(h()))


def _ecdsa_p1363(h: type[hashes.HashAlgorithm]) -> Signer:
    def sign(k: Any, m: bytes) -> bytes:  # r || s, the form JOSE and WebCrypto use
        r, s = decode_dss_signature(k.sign(m, ec.ECDSA(h())))
        n = (k.curve.key_size + 7) // 8
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")

    return sign


def _pkcs1(h: type[hashes.HashAlgorithm]) -> Signer:
    return lambda k, m: k.sign(m, padding.PKCS1v15(), h())


def _pss(salt: Any, h: type[hashes.HashAlgorithm] = hashes.SHA256) -> Signer:
    return lambda k, m: k.sign(m, padding.PSS(mgf=padding.MGF1(h()), salt_length=salt), h())


_ED_PURE: Signer = lambda k, m: k.sign(m)  # noqa: E731
_ED_PH: Signer = lambda k, m: keys.sign(k, m)  # noqa: E731 - cosign's Ed25519ph

# key type -> (schemes that verify, schemes made with the same key that must be refused)
PINS: dict[str, tuple[dict[str, Signer], dict[str, Signer]]] = {
    "p256": (
        {"ecdsa-sha256": _ecdsa(hashes.SHA256)},
        {"ecdsa-sha384": _ecdsa(hashes.SHA384), "ecdsa-sha512": _ecdsa(hashes.SHA512), "ecdsa-sha256-p1363": _ecdsa_p1363(hashes.SHA256)},
    ),
    "p384": (
        {"ecdsa-sha384": _ecdsa(hashes.SHA384)},
        {"ecdsa-sha256": _ecdsa(hashes.SHA256), "ecdsa-sha512": _ecdsa(hashes.SHA512), "ecdsa-sha384-p1363": _ecdsa_p1363(hashes.SHA384)},
    ),
    "p521": (
        {"ecdsa-sha512": _ecdsa(hashes.SHA512)},
        {"ecdsa-sha256": _ecdsa(hashes.SHA256), "ecdsa-sha384": _ecdsa(hashes.SHA384)},
    ),
    "rsa2048": (
        {"pkcs1v15-sha256": _pkcs1(hashes.SHA256)},
        {
            "pss-sha256-salt32": _pss(32),
            "pss-sha256-salt-max": _pss(padding.PSS.MAX_LENGTH),
            "pss-sha256-salt0": _pss(0),
            "pss-sha512": _pss(64, hashes.SHA512),
            "pkcs1v15-sha384": _pkcs1(hashes.SHA384),
            "pkcs1v15-sha512": _pkcs1(hashes.SHA512),
        },
    ),
    "rsa4096": (
        {"pkcs1v15-sha256": _pkcs1(hashes.SHA256)},
        {"pss-sha256-salt32": _pss(32), "pkcs1v15-sha512": _pkcs1(hashes.SHA512)},
    ),
    "ed25519": ({"ed25519-pure": _ED_PURE, "ed25519ph": _ED_PH}, {}),
}

CASES = [(kind, name, ok) for kind, (good, bad) in PINS.items() for ok, group in ((True, good), (False, bad)) for name in group]


@pytest.fixture(scope="module")
def private_keys() -> dict[str, Any]:
    return {kind: make_private_key(kind) for kind in PINS}


@pytest.mark.parametrize("kind,scheme,accepted", CASES, ids=[f"{k}-{s}" for k, s, _ in CASES])
def test_each_key_type_verifies_exactly_its_scheme(private_keys: dict[str, Any], kind: str, scheme: str, accepted: bool) -> None:
    key = private_keys[kind]
    good, bad = PINS[kind]
    sig = {**good, **bad}[scheme](key, MSG)
    assert keys.verify_signature(key.public_key(), MSG, sig) is accepted


def test_every_supported_key_type_is_pinned() -> None:
    """A key type added to keys.SCHEMES without a pin here fails this test."""
    pinned = {"RSA" if k.startswith("rsa") else keys.describe_key(make_private_key(k).public_key()) for k in PINS}
    assert pinned == set(keys.SCHEMES)


def _envelope(payload: bytes, sig: bytes) -> bytes:
    return json.dumps(
        {"payload": base64.b64encode(payload).decode(), "payloadType": dsse.PAYLOAD_TYPE_INTOTO, "signatures": [{"sig": base64.b64encode(sig).decode()}]},
        separators=(",", ":"),
    ).encode()


@pytest.mark.parametrize("salt", [32, padding.PSS.MAX_LENGTH])
def test_rsa_pss_attestation_by_the_trusted_rsa_key_is_refused(salt: Any) -> None:
    """Issue 17 item 6: the trusted key is RSA (PKCS#1 v1.5 is its scheme); an attestation signed
    by that very key with RSA-PSS verified before. cosign refuses it: SIGNATURE_INVALID."""
    key = make_private_key("rsa2048")
    payload = statement()
    pae = dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload)
    pss = key.sign(pae, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256())  # type: ignore[union-attr]
    res = verify_candidate(candidate(_envelope(payload, pss)), IMAGE_DIGEST, trust_for(key_authority(key)))
    assert not res.verified and res.errors[0].reason == "SIGNATURE_INVALID", res.errors
    # the same key's PKCS#1 v1.5 signature over the same statement verifies
    pkcs = key.sign(pae, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    assert verify_candidate(candidate(_envelope(payload, pkcs)), IMAGE_DIGEST, trust_for(key_authority(key))).verified


def test_ecdsa_signature_over_another_hash_is_refused_end_to_end() -> None:
    key = make_private_key("p384")
    payload = statement()
    sig = key.sign(dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, payload), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg,arg-type]
    res = verify_candidate(candidate(_envelope(payload, sig)), IMAGE_DIGEST, trust_for(key_authority(key)))
    assert not res.verified and res.errors[0].reason == "SIGNATURE_INVALID"


def test_types_are_what_the_pins_say() -> None:
    assert isinstance(make_private_key("rsa2048"), rsa.RSAPrivateKey)
    assert isinstance(make_private_key("ed25519"), ed25519.Ed25519PrivateKey)
