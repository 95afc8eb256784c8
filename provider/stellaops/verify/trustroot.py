"""Sigstore trust material: a ``trusted_root.json`` (or a private instance's PEM files) turned into
the CA certificates and log keys the verifiers use (pure, no I/O).

The document format is sigstore's protobuf-specs ``TrustedRoot`` in protojson
(``application/vnd.dev.sigstore.trustedroot+json;version=0.1``): ``certificateAuthorities``
(Fulcio chains with ``validFor``), ``tlogs`` (Rekor keys), ``ctlogs`` (CT log keys) and
``timestampAuthorities``. A log is found by its ``logId.keyId`` (sha256 of the key's SPKI DER
for Rekor v1 and CT logs, the value used when the document gives none).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ..errors import ConfigError, KeyLoadError
from ..trust import SigstoreRoots
from . import keys

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
MAX_DOCUMENT = 8 << 20


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None

    def contains(self, when: datetime) -> bool:
        if self.start is not None and when < self.start:
            return False
        if self.end is not None and when > self.end:
            return False
        return True

    def to_json(self) -> dict[str, str]:
        out = {}
        if self.start is not None:
            out["start"] = self.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.end is not None:
            out["end"] = self.end.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA: its chain (leaf-most first, root last) and when it may issue."""

    certificates: tuple[x509.Certificate, ...]
    valid_for: TimeRange = TimeRange()
    uri: str = ""


@dataclass(frozen=True)
class LogKey:
    """A Rekor or CT log key: ``log_id`` = sha256(SPKI DER)."""

    log_id: bytes
    public_key: keys.PublicKey
    valid_for: TimeRange = TimeRange()
    base_url: str = ""


@dataclass(frozen=True)
class TrustedRootMaterial:
    fulcio: tuple[CertificateAuthority, ...] = ()
    rekor: tuple[LogKey, ...] = ()
    ctlogs: tuple[LogKey, ...] = ()
    tsas: tuple[CertificateAuthority, ...] = ()
    source: str = ""
    document: bytes = b""  # a trusted_root.json equivalent (for sigstore-python)
    extra: dict[str, Any] = field(default_factory=dict)

    def rekor_key(self, log_id: bytes) -> LogKey | None:
        return next((k for k in self.rekor if k.log_id == log_id), None)

    def ctlog_key(self, log_id: bytes) -> LogKey | None:
        return next((k for k in self.ctlogs if k.log_id == log_id), None)

    def fulcio_cas_at(self, when: datetime) -> list[CertificateAuthority]:
        return [ca for ca in self.fulcio if ca.valid_for.contains(when)]


def _time(value: Any, where: str, source: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {where} must be an RFC 3339 string, got {value!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {where} is not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _range(doc: Any, where: str, source: str) -> TimeRange:
    if doc is None:
        return TimeRange()
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: {where} must be an object with start/end")
    return TimeRange(_time(doc.get("start"), f"{where}.start", source), _time(doc.get("end"), f"{where}.end", source))


def _b64(value: Any, where: str, source: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {where} is missing or not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{source}: {where} is not valid base64") from exc


def _log_keys(items: Any, where: str, source: str) -> tuple[LogKey, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"{source}: {where} must be a list")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("publicKey"), dict):
            raise ConfigError(f"{source}: {at}.publicKey is missing")
        pk = item["publicKey"]
        der = _b64(pk.get("rawBytes"), f"{at}.publicKey.rawBytes", source)
        try:
            key = serialization.load_der_public_key(der)
            keys._check_supported(key, what="log key", source=f"{source} {at}")
        except KeyLoadError as exc:
            raise ConfigError(exc.detail, hint=exc.hint) from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: {at}.publicKey.rawBytes is not a DER public key: {exc}") from exc
        log_id = hashlib.sha256(der).digest()
        declared = item.get("logId") if isinstance(item.get("logId"), dict) else None
        if declared is not None and declared.get("keyId") is not None:
            # Rekor v1 and CT logs: sha256(SPKI DER); Rekor v2 logs use another key ID
            # (a signed-note key hash), so the declared one is what entries refer to.
            log_id = _b64(declared.get("keyId"), f"{at}.logId.keyId", source)
        out.append(LogKey(log_id=log_id, public_key=key, valid_for=_range(pk.get("validFor"), f"{at}.publicKey.validFor", source), base_url=str(item.get("baseUrl", ""))))  # type: ignore[arg-type]
    return tuple(out)


def _cas(items: Any, where: str, source: str) -> tuple[CertificateAuthority, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"{source}: {where} must be a list")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        chain = item.get("certChain") if isinstance(item, dict) else None
        certs_doc = chain.get("certificates") if isinstance(chain, dict) else None
        if not isinstance(certs_doc, list) or not certs_doc:
            raise ConfigError(f"{source}: {at}.certChain.certificates is missing or empty")
        certs = []
        for j, c in enumerate(certs_doc):
            der = _b64(c.get("rawBytes") if isinstance(c, dict) else None, f"{at}.certChain.certificates[{j}].rawBytes", source)
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise ConfigError(f"{source}: {at}.certChain.certificates[{j}] is not a DER certificate: {exc}") from exc
        out.append(CertificateAuthority(tuple(certs), _range(item.get("validFor"), f"{at}.validFor", source), str(item.get("uri", ""))))
    return tuple(out)


MAX_ROOTS_PER_FILE = 16


def load_trusted_root(data: bytes, source: str) -> TrustedRootMaterial:
    """Parse and validate a sigstore ``trusted_root.json``, or a JSON Lines file of several (what
    ``gh attestation trusted-root`` writes: public-good and GitHub's instance), every root merged;
    :class:`ConfigError` names ``source`` (and the line)."""
    if len(data) > MAX_DOCUMENT:
        raise ConfigError(f"{source}: trusted root is {len(data)} bytes, more than {MAX_DOCUMENT}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data":
            return _load_jsonl(data, source)
        raise ConfigError(f"{source}: not a JSON trusted_root document: {exc}", hint="expected a sigstore trusted_root.json") from exc
    return _load_one(doc, data, source)


def _load_jsonl(data: bytes, source: str) -> TrustedRootMaterial:
    """One trusted root per non-empty line, merged (``gh attestation trusted-root``)."""
    parts: list[TrustedRootMaterial] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        if len(parts) >= MAX_ROOTS_PER_FILE:
            raise ConfigError(f"{source}: more than {MAX_ROOTS_PER_FILE} trusted roots in one JSON Lines file")
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{where}: not a JSON trusted root: {exc}",
                hint="a JSON Lines trust file holds one complete trusted_root.json per line (as `gh attestation trusted-root` writes)",
            ) from exc
        parts.append(_load_one(doc, line, where))
    return merge(parts)


def _load_one(doc: Any, data: bytes, source: str) -> TrustedRootMaterial:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a trusted root must be a JSON object")
    media_type = doc.get("mediaType")
    if media_type != MEDIA_TYPE:
        raise ConfigError(
            f"{source}: mediaType is {media_type!r}, expected {MEDIA_TYPE!r}",
            hint="bundlePath must be a sigstore trusted_root.json (e.g. from `cosign trusted-root create`)",
        )
    material = TrustedRootMaterial(
        fulcio=_cas(doc.get("certificateAuthorities"), "certificateAuthorities", source),
        rekor=_log_keys(doc.get("tlogs"), "tlogs", source),
        ctlogs=_log_keys(doc.get("ctlogs"), "ctlogs", source),
        tsas=_cas(doc.get("timestampAuthorities"), "timestampAuthorities", source),
        source=source,
        document=bytes(data),
    )
    if not (material.fulcio or material.rekor or material.tsas):  # TSAs alone: `cosign trusted-root create --tsa …`
        raise ConfigError(f"{source}: the trusted root has neither certificate authorities, transparency logs nor timestamp authorities")
    return material


def _pem_certs(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{what} holds no PEM certificate: {exc}") from exc
    return certs


def _pem_key(data: bytes, what: str) -> keys.PublicKey:
    try:
        return keys.load_public_key(data, source=what)
    except KeyLoadError as exc:
        raise ConfigError(exc.detail, hint=exc.hint) from exc


def _order_chain(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf-most first, self-signed root last (as trusted_root.json orders a chain)."""
    return sorted(certs, key=lambda c: c.issuer == c.subject)


def load_tsa_chain(pem: bytes, source: str) -> CertificateAuthority:
    """A timestamp authority from a PEM chain (cosign ``--timestamp-certificate-chain``): the TSA
    certificate, its intermediates, its root, in any order; each certificate must be issued by the
    next and the TSA certificate must carry the timeStamping extended key usage."""
    import itertools

    from cryptography.x509.oid import ExtendedKeyUsageOID

    certs = _pem_certs(pem, source)

    def is_ca(c: x509.Certificate) -> bool:
        try:
            return bool(c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    leaves = [c for c in certs if not is_ca(c)]
    if len(leaves) != 1 or len(certs) > 10:
        raise ConfigError(
            f"{source}: a TSA chain holds one timestamping (non-CA) certificate and its CA certificates, "
            f"found {len(leaves)} non-CA certificate(s) among {len(certs)}",
            hint="use the chain the TSA publishes (timestamp-authority: GET /api/v1/timestamp/certchain)",
        )
    ordered = leaves + sorted((c for c in certs if is_ca(c)), key=lambda c: c.issuer == c.subject)
    for child, parent in itertools.pairwise(ordered):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigError(
                f"{source}: {child.subject.rfc4514_string()!r} is not issued by {parent.subject.rfc4514_string()!r}",
                hint="the file must be one chain: TSA certificate, intermediates, root",
            ) from exc
    try:
        eku = leaves[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku:
        raise ConfigError(f"{source}: the TSA certificate {leaves[0].subject.rfc4514_string()!r} lacks the timeStamping extended key usage")
    return CertificateAuthority(tuple(ordered), uri="")


def build_trusted_root(
    fulcio_pem: bytes = b"",
    rekor_pem: bytes = b"",
    ctlog_pem: bytes = b"",
    *,
    fulcio_url: str = "",
    rekor_url: str = "",
    ctlog_url: str = "",
) -> bytes:
    """A ``trusted_root.json`` for a private instance given as PEM files (no validity limits)."""

    def log(pem: bytes, url: str, what: str) -> LogKey:
        key = _pem_key(pem, what)
        return LogKey(log_id=hashlib.sha256(keys.public_key_der(key)).digest(), public_key=key, base_url=url)

    fulcio = (CertificateAuthority(tuple(_order_chain(_pem_certs(fulcio_pem, "trustedRootPem"))), uri=fulcio_url),) if fulcio_pem else ()
    rekor = (log(rekor_pem, rekor_url, "rekorPublicKey"),) if rekor_pem else ()
    ctlogs = (log(ctlog_pem, ctlog_url, "ctlogPublicKey"),) if ctlog_pem else ()
    return to_document(fulcio, rekor, ctlogs)


_CACHE: dict[str, TrustedRootMaterial] = {}
_LOCK = threading.Lock()


def from_roots(roots: SigstoreRoots) -> TrustedRootMaterial:
    """The material for a configured :class:`SigstoreRoots` (parsed once per content).

    A ``trusted_root.json``, private-instance PEM files and a custom TUF mirror's
    ``trusted_root.json`` are merged; public-good Sigstore is fetched through sigstore-python's
    TUF client only when nothing else is configured. TUF material is refreshed under the policy
    of :mod:`stellaops.verify.tuf` (a failed refresh fails closed after a bounded time)."""
    tuf_parts: list[tuple[bytes, str]] = []
    if roots.tuf is not None or roots.public_good:
        from . import tuf

        if roots.tuf is not None:
            what = f"TUF mirror {roots.tuf.url}: {tuf.TRUSTED_ROOT_TARGET}"
            doc = tuf.mirror_document(roots.tuf, validate=lambda d: load_trusted_root(d, what))
        else:
            what = "public-good Sigstore (TUF)"
            doc = tuf.public_good_document(offline=roots.offline, validate=lambda d: load_trusted_root(d, what))
        tuf_parts.append((doc, what))
    ident = hashlib.sha256(
        b"\0".join(
            [roots.trusted_root_json, roots.fulcio_roots_pem, roots.rekor_public_key_pem, roots.ctlog_public_key_pem, roots.tsa_chain_pem]
            + [doc for doc, _ in tuf_parts]
        )
    ).hexdigest()
    with _LOCK:
        cached = _CACHE.get(ident)
    if cached is not None:
        return cached
    parts: list[TrustedRootMaterial] = []
    if roots.trusted_root_json:
        parts.append(load_trusted_root(roots.trusted_root_json, roots.trusted_root_source or "bundlePath"))
    if roots.fulcio_roots_pem or roots.rekor_public_key_pem or roots.ctlog_public_key_pem:
        doc = build_trusted_root(
            roots.fulcio_roots_pem,
            roots.rekor_public_key_pem,
            roots.ctlog_public_key_pem,
            fulcio_url=roots.fulcio_url,
            rekor_url=roots.rekor_url,
            ctlog_url=roots.ctlog_url,
        )
        parts.append(load_trusted_root(doc, "trustRoots.sigstore"))
    parts.extend(load_trusted_root(doc, what) for doc, what in tuf_parts)
    if roots.tsa_chain_pem:  # a private RFC 3161 TSA (tsaCertChain), added to whatever else is trusted
        parts.append(TrustedRootMaterial(tsas=(load_tsa_chain(roots.tsa_chain_pem, "tsaCertChain"),), source="tsaCertChain"))
    material = merge(parts)
    with _LOCK:
        _CACHE[ident] = material
    return material


def merge(parts: list[TrustedRootMaterial]) -> TrustedRootMaterial:
    if len(parts) == 1:
        return parts[0]
    fulcio = tuple(ca for p in parts for ca in p.fulcio)
    rekor = tuple(k for p in parts for k in p.rekor)
    ctlogs = tuple(k for p in parts for k in p.ctlogs)
    tsas = tuple(ca for p in parts for ca in p.tsas)
    doc = to_document(fulcio, rekor, ctlogs, tsas)
    return TrustedRootMaterial(fulcio, rekor, ctlogs, tsas, source=" + ".join(p.source for p in parts), document=doc)


def _key_details(key: keys.PublicKey) -> str:
    """protobuf-specs ``PublicKeyDetails`` of a key (sigstore-python requires the field)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384"}.get(key.curve.name, "PKIX_ECDSA_P521_SHA_512")
    if isinstance(key, rsa.RSAPublicKey):
        return f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256"
    return "PKIX_ED25519"


def _subject(cert: x509.Certificate) -> dict[str, str]:
    from cryptography.x509.oid import NameOID

    def first(oid: x509.ObjectIdentifier) -> str:
        attrs = cert.subject.get_attributes_for_oid(oid)
        return str(attrs[0].value) if attrs else ""

    return {"organization": first(NameOID.ORGANIZATION_NAME), "commonName": first(NameOID.COMMON_NAME)}


def to_document(
    fulcio: tuple[CertificateAuthority, ...],
    rekor: tuple[LogKey, ...],
    ctlogs: tuple[LogKey, ...],
    tsas: tuple[CertificateAuthority, ...] = (),
) -> bytes:
    """The ``trusted_root.json`` equivalent of this material (what sigstore-python reads)."""

    def log(k: LogKey) -> dict[str, Any]:
        der = keys.public_key_der(k.public_key)
        return {
            "baseUrl": k.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": base64.b64encode(der).decode(),
                "keyDetails": _key_details(k.public_key),
                "validFor": k.valid_for.to_json() or {"start": "1970-01-01T00:00:00Z"},
            },
            "logId": {"keyId": base64.b64encode(k.log_id).decode()},
        }

    def authority(ca: CertificateAuthority) -> dict[str, Any]:
        return {
            "subject": _subject(ca.certificates[-1]),
            "uri": ca.uri,
            "certChain": {"certificates": [{"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()} for c in ca.certificates]},
            "validFor": ca.valid_for.to_json() or {"start": "1970-01-01T00:00:00Z"},
        }

    doc = {
        "mediaType": MEDIA_TYPE,
        "tlogs": [log(k) for k in rekor],
        "certificateAuthorities": [authority(ca) for ca in fulcio],
        "ctlogs": [log(k) for k in ctlogs],
        "timestampAuthorities": [authority(ca) for ca in tsas],
    }
    return json.dumps(doc, indent=2).encode()
