"""verify.keys: every key type, cosign's hash choices, Ed25519ph, cosign key files."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa

from stellaops.errors import KeyLoadError
from stellaops.verify import keys

MSG = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def _pub_pem(private_key) -> bytes:  # type: ignore[no-untyped-def]
    return keys.public_key_pem(private_key.public_key())


def test_sign_verify_round_trip_every_key_type(any_key) -> None:  # type: ignore[no-untyped-def]
    _kind, private_key = any_key
    public_key = keys.load_public_key(_pub_pem(private_key))
    sig = keys.sign(private_key, MSG)
    assert keys.verify_signature(public_key, MSG, sig)
    assert not keys.verify_signature(public_key, MSG + b"x", sig)
    assert not keys.verify_signature(public_key, MSG, sig[:-1] + bytes([sig[-1] ^ 1]))


@pytest.mark.parametrize(
    "curve,alg", [(ec.SECP256R1(), hashes.SHA256()), (ec.SECP384R1(), hashes.SHA384()), (ec.SECP521R1(), hashes.SHA512())]
)
def test_ecdsa_hash_follows_the_curve_as_cosign_signs(curve, alg) -> None:  # type: ignore[no-untyped-def]
    private_key = ec.generate_private_key(curve)
    sig = private_key.sign(MSG, ec.ECDSA(alg))
    assert keys.verify_signature(private_key.public_key(), MSG, sig)
    # a signature with the wrong hash for the curve is refused
    wrong = hashes.SHA256() if not isinstance(alg, hashes.SHA256) else hashes.SHA384()
    assert not keys.verify_signature(private_key.public_key(), MSG, private_key.sign(MSG, ec.ECDSA(wrong)))


def test_rsa_pkcs1v15_is_accepted_and_pss_refused() -> None:
    """No scheme guessing (issue 17 item 6; every pin in test_key_schemes.py)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = private_key.public_key()
    assert keys.verify_signature(pub, MSG, private_key.sign(MSG, padding.PKCS1v15(), hashes.SHA256()))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert not keys.verify_signature(pub, MSG, private_key.sign(MSG, pss, hashes.SHA256()))
    assert not keys.verify_signature(pub, MSG, private_key.sign(MSG, padding.PKCS1v15(), hashes.SHA512()))


def test_ed25519_pure_and_prehash_both_verify_and_differ() -> None:
    private_key = ed25519.Ed25519PrivateKey.generate()
    pure = private_key.sign(MSG)
    ph = keys.sign(private_key, MSG)  # cosign's Ed25519ph
    assert pure != ph
    assert keys.verify_signature(private_key.public_key(), MSG, pure)
    assert keys.verify_signature(private_key.public_key(), MSG, ph)
    assert keys.sign(private_key, MSG, ed25519_prehash=False) == pure
    assert not keys.verify_signature(private_key.public_key(), MSG + b"!", ph)


def test_ed25519ph_matches_rfc8032_test_vector() -> None:
    # RFC 8032 §7.3 Ed25519ph, message "abc"
    secret = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    public = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    expected = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    assert private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public
    assert keys.sign(private_key, b"abc") == expected
    assert keys.verify_signature(private_key.public_key(), b"abc", expected)


def test_key_id_is_sha256_of_spki_der(p256_key) -> None:  # type: ignore[no-untyped-def]
    der = p256_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys.key_id(p256_key.public_key()) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_verify_signature_never_raises_on_garbage(p256_key) -> None:  # type: ignore[no-untyped-def]
    pub = p256_key.public_key()
    for sig in (b"", b"\x00", b"x" * 5000, b"0\x06\x02\x01\x00\x02\x01\x00"):
        assert keys.verify_signature(pub, MSG, sig) is False


def test_rejects_private_key_given_as_public(p256_key) -> None:  # type: ignore[no-untyped-def]
    pem = p256_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyLoadError) as err:
        keys.load_public_key(pem, source="cosign.key")
    assert err.value.reason == "KEY_INVALID"
    assert "'PRIVATE KEY'" in err.value.detail and "cosign.key" in err.value.detail
    assert "public key" in err.value.hint


@pytest.mark.parametrize("data", [b"", b"not a pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_rejects_unparsable_public_keys(data: bytes) -> None:
    with pytest.raises(KeyLoadError) as err:
        keys.load_public_key(data)
    assert err.value.reason == "KEY_INVALID"


def test_rejects_unsupported_key_types() -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    k1 = ec.generate_private_key(ec.SECP256K1())
    dsa_key = dsa.generate_private_key(2048)
    for key, words in ((small_rsa, "1024 bits"), (k1, "secp256k1"), (dsa_key, "DSAPublicKey")):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(KeyLoadError) as err:
            keys.load_public_key(pem)
        assert words in err.value.detail
        assert "Ed25519" in err.value.hint


def test_cosign_key_file_round_trip() -> None:
    priv_pem, pub_pem = keys.generate_key_pair(b"s3cret")
    assert priv_pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = base64.b64decode(b"".join(priv_pem.splitlines()[1:-1]))
    doc = json.loads(body)
    assert doc["kdf"] == {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": doc["kdf"]["salt"]}
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["ciphertext"])) in (154, 155, 156)  # P-256 PKCS#8 + 16-byte tag
    private_key = keys.load_private_key(priv_pem, b"s3cret")
    public_key = keys.load_public_key(pub_pem)
    assert keys.key_id(private_key.public_key()) == keys.key_id(public_key)  # type: ignore[arg-type]
    assert keys.verify_signature(public_key, MSG, keys.sign(private_key, MSG))


def test_cosign_key_wrong_password_is_refused() -> None:
    priv_pem, _ = keys.generate_key_pair(b"right")
    with pytest.raises(KeyLoadError) as err:
        keys.load_private_key(priv_pem, b"wrong", source="cosign.key")
    assert "wrong password" in err.value.detail and "COSIGN_PASSWORD" in err.value.hint


def test_legacy_cosign_pem_type_and_other_private_formats(any_key) -> None:  # type: ignore[no-untyped-def]
    _kind, private_key = any_key
    enc = keys.encrypt_cosign_private_key(private_key, b"pw").replace(b"SIGSTORE", b"COSIGN")
    assert keys.key_id(keys.load_private_key(enc, b"pw").public_key()) == keys.key_id(private_key.public_key())
    pkcs8 = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert keys.key_id(keys.load_private_key(pkcs8, None).public_key()) == keys.key_id(private_key.public_key())


def test_cosign_key_with_unaccepted_scrypt_parameters_is_refused() -> None:
    priv_pem, _ = keys.generate_key_pair(b"pw")
    lines = priv_pem.splitlines()
    doc = json.loads(base64.b64decode(b"".join(lines[1:-1])))
    doc["kdf"]["params"]["N"] = 1 << 24  # would cost 16 GiB
    body = base64.b64encode(json.dumps(doc).encode())
    forged = lines[0] + b"\n" + body + b"\n" + lines[-1] + b"\n"
    with pytest.raises(KeyLoadError) as err:
        keys.load_private_key(forged, b"pw")
    assert "N=16777216" in err.value.detail


def test_public_key_file_is_not_a_private_key(p256_key) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyLoadError) as err:
        keys.load_private_key(_pub_pem(p256_key), None, source="cosign.pub")
    assert "'PUBLIC KEY'" in err.value.detail
