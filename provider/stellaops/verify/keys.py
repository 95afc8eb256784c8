"""Keys of every type cosign knows: load, identify, verify, sign, and cosign's key files (pure).

Facts (reference/cosign-formats.md §8, checked against cosign v3.1.3 and go-securesystemslib):

- public keys are PEM ``PUBLIC KEY`` (PKIX SubjectPublicKeyInfo), which is what ``cosign.pub`` is;
- cosign hashes by key type: ECDSA P-256 and RSA with SHA-256, P-384 with SHA-384, P-521 with
  SHA-512; ECDSA signatures are ASN.1 DER; RSA is RSASSA-PKCS1-v1_5. A key verifies exactly the
  scheme its type implies and nothing else (no scheme guessing): an RSA-PSS signature by an RSA
  ``PUBLIC KEY`` (rsaEncryption SPKI) is refused, as cosign refuses it, and so is an ECDSA
  signature over another hash than the curve's;
- cosign signs with **Ed25519ph** (SHA-512 prehash, empty context) for Ed25519 keys, while the
  DSSE spec means pure Ed25519: we verify both and sign as cosign does unless told otherwise;
- ``cosign.key`` is PEM ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older: ``ENCRYPTED COSIGN PRIVATE
  KEY``) whose body is JSON: scrypt(password, salt, N, r=8, p=1) → 32-byte key →
  nacl/secretbox over the PKCS#8 DER. N is 65536 when written; 32768 and 131072 are accepted.

``cryptography`` has no Ed25519ph, and no library writes cosign's key envelope, so those two are
done here with libsodium (PyNaCl), which implements both primitives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from typing import Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from ..errors import KeyLoadError

PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]

SUPPORTED = "ECDSA P-256/P-384/P-521, RSA 2048-4096 bits, Ed25519"
COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
COSIGN_PEM_TYPE = COSIGN_PEM_TYPES[0]
_SCRYPT_ACCEPTED = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}
_SCRYPT_WRITE = (65536, 8, 1)
_MAX_KEY_FILE = 1 << 20
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)

_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_CURVE_NAME = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def pem_types(data: bytes) -> list[str]:
    """The PEM block types in ``data`` (for error messages)."""
    return [m.group(1).decode("ascii", "replace") for m in _PEM_BLOCK.finditer(data)]


def _describe(data: bytes) -> str:
    found = pem_types(data)
    if found:
        return "PEM block(s) " + ", ".join(repr(t) for t in found)
    return "no PEM block" if data.strip() else "an empty file"


def _check_supported(key: object, *, what: str, source: str) -> None:
    where = f" in {source}" if source else ""
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        if key.curve.name not in _CURVE_HASH:
            raise KeyLoadError(
                f"{what}{where} is ECDSA on curve {key.curve.name}, which is not supported",
                hint=f"supported: {SUPPORTED}",
            )
    elif isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        if not 2048 <= key.key_size <= 4096:
            raise KeyLoadError(
                f"{what}{where} is RSA with {key.key_size} bits, expected 2048 to 4096",
                hint=f"supported: {SUPPORTED}",
            )
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        raise KeyLoadError(
            f"{what}{where} is of type {type(key).__name__}, which is not supported",
            hint=f"supported: {SUPPORTED}",
        )


def describe_key(key: PublicKey | PrivateKey) -> str:
    """A short human name of the key type: ``ECDSA P-256``, ``RSA 3072``, ``Ed25519``."""
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return "ECDSA " + _CURVE_NAME.get(key.curve.name, key.curve.name)
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return f"RSA {key.key_size}"
    return "Ed25519"


def load_public_key(pem: bytes, *, source: str = "") -> PublicKey:
    """Load a PEM SPKI public key (``cosign.pub``) of a supported type.

    Raises :class:`KeyLoadError` (KEY_INVALID) naming what was found and what is supported.
    """
    where = f" {source}" if source else ""
    if not isinstance(pem, (bytes, bytearray)) or len(pem) > _MAX_KEY_FILE:
        raise KeyLoadError(f"public key{where} is not a PEM file of reasonable size")
    blocks = pem_types(pem)
    if blocks != ["PUBLIC KEY"]:
        hint = f"expected exactly one PEM 'PUBLIC KEY' block (SPKI, as in cosign.pub); supported: {SUPPORTED}"
        if any("PRIVATE" in b for b in blocks):
            hint = "this is a private key: give the public key (cosign.pub), e.g. from `cosign public-key --key cosign.key`"
        elif "CERTIFICATE" in blocks:
            hint = "this is a certificate: extract its key with `openssl x509 -pubkey -noout`"
        raise KeyLoadError(f"public key{where} has {_describe(pem)}, expected one 'PUBLIC KEY'", hint=hint)
    try:
        key = serialization.load_pem_public_key(bytes(pem))
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise KeyLoadError(
            f"public key{where} is a 'PUBLIC KEY' PEM block that cannot be parsed: {exc}",
            hint=f"supported: {SUPPORTED}",
        ) from exc
    _check_supported(key, what="public key", source=source)
    return key  # type: ignore[return-value]


def public_key_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_pem(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_key: PublicKey) -> str:
    """``sha256:<hex>`` of the key's SPKI DER (DESIGN.md §3)."""
    return "sha256:" + hashlib.sha256(public_key_der(public_key)).hexdigest()


def _ed25519ph_verify(public_key: ed25519.Ed25519PublicKey, message: bytes, sig: bytes) -> bool:
    from nacl import bindings
    from nacl.exceptions import BadSignatureError

    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        return bool(bindings.crypto_sign_ed25519ph_final_verify(state, sig, raw))
    except (BadSignatureError, ValueError, TypeError):
        return False


def _ed25519ph_sign(private_key: ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
    from nacl import bindings

    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    _pk, sk = bindings.crypto_sign_seed_keypair(seed)
    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    return bytes(bindings.crypto_sign_ed25519ph_final_create(state, sk))


SCHEMES = {
    "ECDSA P-256": "ECDSA with SHA-256, ASN.1 DER signature",
    "ECDSA P-384": "ECDSA with SHA-384, ASN.1 DER signature",
    "ECDSA P-521": "ECDSA with SHA-512, ASN.1 DER signature",
    "RSA": "RSASSA-PKCS1-v1_5 with SHA-256 (RSA-PSS is refused)",
    "Ed25519": "Ed25519 (pure, RFC 8032) or Ed25519ph (what cosign signs)",
}


def verify_signature(public_key: PublicKey, message: bytes, sig: bytes) -> bool:
    """True when ``sig`` is a valid signature of ``message`` by ``public_key`` under the one scheme
    of its key type (:data:`SCHEMES`). Never raises for a bad signature.

    Ed25519 is the only type with two variants: its SPKI cannot say which, cosign signs
    Ed25519ph while the DSSE spec means pure Ed25519, and the two are domain-separated (RFC 8032
    ``dom2``), so a signature valid under one is never valid under the other."""
    if not isinstance(sig, (bytes, bytearray)) or not sig or len(sig) > 2048:
        return False
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            alg = _CURVE_HASH.get(public_key.curve.name)
            if alg is None:
                return False
            public_key.verify(bytes(sig), message, ec.ECDSA(alg()))
            return True
        if isinstance(public_key, rsa.RSAPublicKey):
            # RSASSA-PKCS1-v1_5 with SHA-256 only: the scheme of an rsaEncryption SPKI in cosign
            # and sigstore (PKIX_RSA_PKCS1V15_*_SHA256). PSS is another scheme, never tried.
            public_key.verify(bytes(sig), message, padding.PKCS1v15(), hashes.SHA256())
            return True
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            if len(sig) != 64:
                return False
            try:
                public_key.verify(bytes(sig), message)
                return True
            except InvalidSignature:
                return _ed25519ph_verify(public_key, message, bytes(sig))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return False


def sign(private_key: PrivateKey, message: bytes, *, ed25519_prehash: bool = True) -> bytes:
    """Sign ``message`` as cosign would with this key (Ed25519: Ed25519ph unless told otherwise)."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = _CURVE_HASH.get(private_key.curve.name)
        if alg is None:
            raise KeyLoadError(f"cannot sign with ECDSA curve {private_key.curve.name}", hint=f"supported: {SUPPORTED}")
        return private_key.sign(message, ec.ECDSA(alg()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return _ed25519ph_sign(private_key, message) if ed25519_prehash else private_key.sign(message)
    raise KeyLoadError(f"cannot sign with a key of type {type(private_key).__name__}", hint=f"supported: {SUPPORTED}")


# --- cosign's encrypted key file ------------------------------------------------------------


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * 1024 * 1024)


def _b64(value: object, what: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise KeyLoadError(f"cosign key {source}: {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyLoadError(f"cosign key {source}: {what} is not base64") from exc


def _decrypt_cosign(body: bytes, password: bytes, source: str) -> bytes:
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise KeyLoadError(f"cosign key {source}: the PEM body is not the JSON cosign writes") from exc
    if not isinstance(doc, dict):
        raise KeyLoadError(f"cosign key {source}: the PEM body is not a JSON object")
    kdf = doc.get("kdf") or {}
    cipher = doc.get("cipher") or {}
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyLoadError(f"cosign key {source}: kdf is {kdf.get('name') if isinstance(kdf, dict) else kdf!r}, expected 'scrypt'")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyLoadError(f"cosign key {source}: cipher is {cipher.get('name') if isinstance(cipher, dict) else cipher!r}, expected 'nacl/secretbox'")
    params = kdf.get("params") or {}
    try:
        triple = (int(params["N"]), int(params["r"]), int(params["p"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyLoadError(f"cosign key {source}: scrypt parameters N, r, p are missing") from exc
    if triple not in _SCRYPT_ACCEPTED:
        raise KeyLoadError(
            f"cosign key {source}: scrypt parameters N={triple[0]} r={triple[1]} p={triple[2]} are not ones cosign writes",
            hint="cosign accepts N of 32768, 65536 or 131072 with r=8, p=1",
        )
    salt = _b64(kdf.get("salt"), "kdf.salt", source)
    nonce = _b64(cipher.get("nonce"), "cipher.nonce", source)
    ciphertext = _b64(doc.get("ciphertext"), "ciphertext", source)
    if len(nonce) != SecretBox.NONCE_SIZE:
        raise KeyLoadError(f"cosign key {source}: nonce has {len(nonce)} bytes, expected {SecretBox.NONCE_SIZE}")
    key = _scrypt(password, salt, *triple)
    try:
        return bytes(SecretBox(key).decrypt(ciphertext, nonce))
    except CryptoError as exc:
        raise KeyLoadError(
            f"cosign key {source}: decryption failed (wrong password or corrupted file)",
            hint="set COSIGN_PASSWORD to the password the key was created with",
        ) from exc


def load_private_key(data: bytes, password: bytes | None, *, source: str = "") -> PrivateKey:
    """Load a private key for signing: cosign's encrypted ``cosign.key``, PKCS#8 PEM (plain or
    encrypted), or a traditional ``EC``/``RSA PRIVATE KEY`` PEM."""
    where = source or "private key"
    if not isinstance(data, (bytes, bytearray)) or len(data) > _MAX_KEY_FILE:
        raise KeyLoadError(f"{where} is not a key file of reasonable size")
    data = bytes(data)
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise KeyLoadError(
            f"{where} has {_describe(data)}",
            hint="expected cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY) or a PEM private key (PKCS#8, EC, RSA)",
        )
    pem_type = match.group(1).decode()
    if pem_type in COSIGN_PEM_TYPES:
        try:
            body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyLoadError(f"{where}: the {pem_type} PEM body is not base64") from exc
        der = _decrypt_cosign(body, password or b"", where)
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
            raise KeyLoadError(f"{where}: the decrypted key is not PKCS#8 DER: {exc}") from exc
    elif pem_type in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        try:
            key = serialization.load_pem_private_key(
                match.group(0), password=(password or None) if pem_type == "ENCRYPTED PRIVATE KEY" else None
            )
        except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
            raise KeyLoadError(f"{where}: the {pem_type} PEM block cannot be loaded: {exc}") from exc
    else:
        raise KeyLoadError(
            f"{where} holds a PEM {pem_type!r} block, not a private key",
            hint="expected cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY) or a PEM private key (PKCS#8, EC, RSA)",
        )
    _check_supported(key, what="private key", source=source)
    return key  # type: ignore[return-value]


def encrypt_cosign_private_key(private_key: PrivateKey, password: bytes) -> bytes:
    """cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` PEM for ``private_key``."""
    from nacl.secret import SecretBox

    _check_supported(private_key, what="private key", source="")
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(32)
    nonce = os.urandom(SecretBox.NONCE_SIZE)
    n, r, p = _SCRYPT_WRITE
    box = SecretBox(_scrypt(password, salt, n, r, p))
    ciphertext = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (COSIGN_PEM_TYPE, "\n".join(lines), COSIGN_PEM_TYPE)).encode()


def generate_key_pair(password: bytes) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair in cosign's formats: (``cosign.key`` PEM, ``cosign.pub`` PEM)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_cosign_private_key(private_key, password), public_key_pem(private_key.public_key())
