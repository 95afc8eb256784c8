"""Write attestations to a registry in the forms cosign's ecosystem reads (DESIGN.md §4).

``attach(client, ref, data)`` takes a DSSE envelope JSON or a sigstore bundle JSON, checks it
(envelope shape, in-toto payload type, statement, subject = the image's digest) *before*
anything is pushed, and writes it in each requested format:

- ``bundle``: a sigstore bundle v0.3 referrer in cosign v3's exact manifest shape (empty
  config carrying ``artifactType``, one bundle layer, manifest annotations
  ``dev.sigstore.bundle.content``/``dev.sigstore.bundle.predicateType``/
  ``org.opencontainers.image.created``, plus ours: ``dev.stellaops/predicate-type``,
  ``dev.stellaops/tenant``, ``dev.stellaops/scan-id`` and the caller's). The bundle holds no
  ``keyid`` (cosign refuses a non-empty one inside bundles).
- ``legacy``: one more layer on cosign's ``sha256-<hex>.att`` manifest (annotation
  ``dev.cosignproject.cosign/signature: ""`` which cosign's reader requires, ``predicateType``,
  and the certificate/Rekor annotations when a bundle brought them); the config's
  ``diff_ids``/``history`` grow as go-containerregistry's ``mutate.Append`` makes them grow;
  existing layers are kept and an identical layer is not added twice.
- ``dsse``: a plain DSSE referrer (``artifactType application/vnd.dsse.envelope.v1+json``),
  which cosign and Kyverno do not read but our discovery does.

Referrers are pushed by digest with ``subject`` = the image. On registries without the OCI 1.1
referrers API the ``sha256-<hex>`` fallback index tag is kept up to date (entries
``{mediaType,size,digest,artifactType}`` sorted by digest, as go-containerregistry writes it).
Both the fallback index and the ``.att`` manifest are read-modify-write: two writers racing on
the same image can lose one entry (an inherent limit of those tag schemes; the OCI API has no
such race).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import dsse
from .errors import RegistryError, StellaError
from .reference import Reference, cosign_attestation_tag, referrers_tag
from .registry import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    RegistryClient,
    sha256_digest,
)

FORMATS = ("bundle", "legacy", "dsse")
DEFAULT_FORMATS = ("bundle", "legacy")
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"

ANN_CREATED = "org.opencontainers.image.created"
ANN_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANN_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
ANN_STELLA_PREDICATE = "dev.stellaops/predicate-type"
ANN_STELLA_TENANT = "dev.stellaops/tenant"
ANN_STELLA_SCAN_ID = "dev.stellaops/scan-id"
ANN_COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_COSIGN_CERT = "dev.sigstore.cosign/certificate"
ANN_COSIGN_CHAIN = "dev.sigstore.cosign/chain"
ANN_COSIGN_BUNDLE = "dev.sigstore.cosign/bundle"
ANN_COSIGN_RFC3161 = "dev.sigstore.cosign/rfc3161timestamp"
ANN_PREDICATE_TYPE = "predicateType"
# Annotations we compute; a caller may not set them.
RESERVED_ANNOTATIONS = frozenset(
    {ANN_CREATED, ANN_BUNDLE_CONTENT, ANN_BUNDLE_PREDICATE, ANN_STELLA_PREDICATE, ANN_COSIGN_SIGNATURE,
     ANN_COSIGN_CERT, ANN_COSIGN_CHAIN, ANN_COSIGN_BUNDLE, ANN_PREDICATE_TYPE}
)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_ANNOTATION_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$")


class AttachError(StellaError):
    """The attestation cannot be attached as given (nothing was pushed)."""

    reason = "REQUEST_INVALID"


@dataclass(frozen=True)
class AttachResult:
    """What one format wrote."""

    format: str
    image: str  # registry/repository@digest of the image
    manifest_digest: str  # the referrer manifest, or the .att manifest after the append
    layer_digest: str
    location: str  # where to find it: name@digest for referrers, name:tag for .att
    predicate_type: str
    fallback_tag: str = ""  # the referrers fallback tag updated ("" when the API is served)
    unchanged: bool = False  # already there: the identical .att layer, or the same referrer

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "image": self.image,
            "manifestDigest": self.manifest_digest,
            "layerDigest": self.layer_digest,
            "location": self.location,
            "predicateType": self.predicate_type,
            "fallbackTag": self.fallback_tag,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class ParsedAttestation:
    """A checked attestation, ready to write in any format."""

    envelope: dsse.Envelope
    statement: dsse.Statement
    envelope_bytes: bytes  # the DSSE envelope as stored in a legacy layer / dsse referrer
    bundle: dict[str, Any] | None = None  # the input bundle, when one was given
    bundle_bytes: bytes = b""
    cosign_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _go_envelope_bytes(env: dsse.Envelope) -> bytes:
    """The envelope as cosign v3 serialises it (Go ``json.Marshal`` of the protobuf struct:
    ``payload, payloadType, signatures[{sig[, keyid]}]``) — the bytes Rekor hashes."""
    sigs = []
    for s in env.signatures:
        item = {"sig": base64.b64encode(s.sig).decode()}
        if s.keyid:
            item["keyid"] = s.keyid
        sigs.append(item)
    return _compact(
        {"payload": base64.b64encode(env.payload).decode(), "payloadType": env.payload_type, "signatures": sigs}
    )


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def _cosign_annotations_from_bundle(bundle: dict[str, Any]) -> dict[str, str]:
    """Carry a bundle's certificate, Rekor promise and first RFC 3161 timestamp into cosign's
    legacy layer annotations, so a bundle written in ``legacy`` form still verifies the same way."""
    try:
        return _cosign_annotations_unchecked(bundle)
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise AttachError(
            f"the bundle's verificationMaterial is malformed ({exc.__class__.__name__}: {exc})",
            reason="MALFORMED_ENVELOPE",
        ) from exc


def _cosign_annotations_unchecked(bundle: dict[str, Any]) -> dict[str, str]:
    def bad(what: str) -> AttachError:
        return AttachError(f"the bundle's {what}", reason="MALFORMED_ENVELOPE")

    out: dict[str, str] = {}
    vm = bundle.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise bad("verificationMaterial is missing or not an object")
    certs: list[bytes] = []
    try:
        if "certificate" in vm:
            if not isinstance(vm["certificate"], dict):
                raise bad("verificationMaterial.certificate is not an object")
            certs = [base64.b64decode(vm["certificate"]["rawBytes"], validate=True)]
        elif "x509CertificateChain" in vm:
            chain = vm["x509CertificateChain"]
            if not isinstance(chain, dict) or not isinstance(chain.get("certificates"), list) or not chain["certificates"]:
                raise bad("verificationMaterial.x509CertificateChain has no certificates list")
            certs = [base64.b64decode(c["rawBytes"], validate=True) for c in chain["certificates"]]
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise bad("verificationMaterial certificate is not base64 DER in rawBytes") from exc
    if certs:
        out[ANN_COSIGN_CERT] = _pem(certs[0])
        out[ANN_COSIGN_CHAIN] = "".join(_pem(c) for c in certs[1:])
    entries = vm.get("tlogEntries", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise bad("verificationMaterial.tlogEntries is not a list of objects")
    if entries:
        e = entries[0]
        promise_doc = e.get("inclusionPromise", {})
        if not isinstance(promise_doc, dict):
            raise bad("tlog entry inclusionPromise is not an object")
        promise = promise_doc.get("signedEntryTimestamp")
        try:
            if promise and e.get("canonicalizedBody"):
                log_id = base64.b64decode((e.get("logId") or {}).get("keyId", ""), validate=True).hex()
                out[ANN_COSIGN_BUNDLE] = _compact(
                    {
                        "SignedEntryTimestamp": promise,
                        "Payload": {
                            "body": e["canonicalizedBody"],
                            "integratedTime": int(e.get("integratedTime", 0)),
                            "logIndex": int(e.get("logIndex", 0)),
                            "logID": log_id,
                        },
                    }
                ).decode()
        except (TypeError, ValueError, binascii.Error) as exc:
            raise bad("tlog entry is malformed") from exc
    # The first RFC 3161 timestamp goes on the layer as cosign v3.1 writes it (the token stays
    # base64 DER; verifiers accept it over the envelope bytes or over the signature).
    tvd = vm.get("timestampVerificationData")
    if tvd is not None:
        stamps = tvd.get("rfc3161Timestamps", []) if isinstance(tvd, dict) else None
        if not isinstance(stamps, list) or not all(isinstance(t, dict) for t in stamps):
            raise bad("verificationMaterial.timestampVerificationData.rfc3161Timestamps is not a list of objects")
        if stamps:
            token = stamps[0].get("signedTimestamp")
            try:
                if not isinstance(token, str) or not base64.b64decode(token, validate=True):
                    raise ValueError("empty")
            except (ValueError, binascii.Error) as exc:
                raise bad("RFC 3161 signedTimestamp is not base64") from exc
            out[ANN_COSIGN_RFC3161] = _compact({"SignedRFC3161Timestamp": token}).decode()
    return out


def parse_attestation(data: bytes, image_digest: str) -> ParsedAttestation:
    """Check a DSSE envelope or sigstore bundle before writing it; raises a precise error."""
    text = data.strip()
    if not text:
        raise AttachError("the attestation file is empty", reason="MALFORMED_ENVELOPE",
                          hint="pass the DSSE envelope JSON that `stella attest sign` or cosign printed")
    doc = dsse.strict_json(text, what="attestation", error=dsse.MalformedEnvelope)
    if not isinstance(doc, dict):
        raise AttachError(f"the attestation must be a JSON object, got {type(doc).__name__}", reason="MALFORMED_ENVELOPE")
    bundle: dict[str, Any] | None = None
    cosign_ann: dict[str, str] = {}
    if "dsseEnvelope" in doc or str(doc.get("mediaType", "")).startswith(BUNDLE_PREFIX):
        bundle = doc
        media_type = doc.get("mediaType", "")
        if "dsseEnvelope" not in doc:
            raise AttachError(
                "the sigstore bundle holds a message signature, not a DSSE attestation (no dsseEnvelope)",
                reason="MALFORMED_ENVELOPE",
                hint="attach attestations (cosign attest / stella attest sign), not image signatures",
            )
        if not isinstance(media_type, str) or not media_type.startswith(BUNDLE_PREFIX):
            raise AttachError(f"bundle mediaType {media_type!r} is not a sigstore bundle media type", reason="MALFORMED_ENVELOPE")
        envelope = dsse.parse_envelope_obj(doc["dsseEnvelope"], raw=b"")
        envelope = dsse.Envelope(envelope.payload_type, envelope.payload, envelope.signatures, _go_envelope_bytes(envelope))
        cosign_ann = _cosign_annotations_from_bundle(doc)
        envelope_bytes = envelope.raw
    else:
        envelope = dsse.parse_envelope(text)
        envelope_bytes = bytes(text)
    dsse.require_intoto(envelope)
    statement = dsse.parse_statement(envelope.payload)
    dsse.require_subject(statement, image_digest)
    return ParsedAttestation(
        envelope=envelope,
        statement=statement,
        envelope_bytes=envelope_bytes,
        bundle=bundle,
        bundle_bytes=bytes(text) if bundle is not None else b"",
        cosign_annotations=cosign_ann,
    )


def _bundle_layer(parsed: ParsedAttestation, key_hint: str | None) -> bytes:
    """The v0.3 bundle to store: the input bundle as given, or one built around the envelope."""
    if parsed.bundle is not None:
        media_type = parsed.bundle.get("mediaType", "")
        if media_type not in (BUNDLE_V03, "application/vnd.dev.sigstore.bundle+json;version=0.3"):
            raise AttachError(
                f"bundle mediaType is {media_type!r}; cosign reads only v0.3 bundles from referrers",
                hint="re-create it with a current signer, or attach with --format legacy,dsse",
            )
        if any(s.keyid for s in parsed.envelope.signatures):
            raise AttachError(
                "the bundle's DSSE signature carries a keyid; cosign refuses a non-empty keyid inside a bundle",
                hint="attach the bare DSSE envelope instead, or re-sign without a keyid",
            )
        return parsed.bundle_bytes
    public_key: dict[str, str] = {"hint": key_hint} if key_hint else {}
    return _compact(
        {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {"publicKey": public_key},
            "dsseEnvelope": json.loads(_go_envelope_bytes(
                dsse.Envelope(parsed.envelope.payload_type, parsed.envelope.payload,
                              tuple(dsse.Signature(s.sig) for s in parsed.envelope.signatures))
            )),
        }
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_annotations(annotations: dict[str, str]) -> None:
    for key, value in annotations.items():
        if not isinstance(key, str) or not _ANNOTATION_KEY.match(key):
            raise AttachError(f"annotation key {key!r} is not valid", hint="use a reverse-DNS key such as org.example/team")
        if not isinstance(value, str):
            raise AttachError(f"annotation {key!r} must have a string value")
        if key in RESERVED_ANNOTATIONS:
            raise AttachError(
                f"annotation {key!r} is set by attach itself and may not be given",
                hint=f"reserved: {', '.join(sorted(RESERVED_ANNOTATIONS))}",
            )


def _push_referrer(
    client: RegistryClient,
    ref: Reference,
    subject: Descriptor,
    *,
    artifact_type: str,
    layer: bytes,
    layer_media_type: str,
    annotations: dict[str, str],
    config_artifact_type: bool,
) -> tuple[str, str, str]:
    """Push an OCI 1.1 artifact manifest referring to ``subject``; returns (manifest digest,
    layer digest, fallback tag or "", unchanged). A referrer already holding the same layer
    with the same annotations (the creation time aside) is reused: nothing is pushed."""
    reg, repo = ref.registry, ref.repository
    layer_digest = sha256_digest(layer)
    existing = _existing_referrer(client, ref, subject.digest, artifact_type, layer_media_type, layer_digest, annotations)
    if existing is not None:
        fallback = ""
        if not client.referrers_api_supported(reg, repo, subject.digest):
            fallback = _update_fallback_index(client, ref, subject.digest, existing)  # no-op when listed
        return existing.digest, layer_digest, fallback, True
    client.put_blob(reg, repo, EMPTY_JSON)
    client.put_blob(reg, repo, layer)
    config: dict[str, Any] = {"mediaType": OCI_EMPTY, "size": len(EMPTY_JSON), "digest": EMPTY_DIGEST}
    if config_artifact_type:
        config["artifactType"] = artifact_type
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [{"mediaType": layer_media_type, "size": len(layer), "digest": layer_digest}],
        "annotations": dict(sorted(annotations.items())),
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
        "artifactType": artifact_type,
    }
    raw = _compact(manifest)
    digest = sha256_digest(raw)
    client.put_manifest(reg, repo, digest, raw, OCI_MANIFEST)
    fallback = ""
    if not client.referrers_api_supported(reg, repo, subject.digest):
        fallback = _update_fallback_index(
            client, ref, subject.digest, Descriptor(OCI_MANIFEST, digest, len(raw), artifact_type)
        )
    return digest, layer_digest, fallback, False


def _existing_referrer(
    client: RegistryClient,
    ref: Reference,
    subject_digest: str,
    artifact_type: str,
    layer_media_type: str,
    layer_digest: str,
    annotations: dict[str, str],
) -> Descriptor | None:
    """The referrer of ``subject_digest`` that already holds exactly this one layer with these
    annotations (``org.opencontainers.image.created`` aside: a re-attach a second later is the
    same attestation), or None. Descriptors whose listed annotations already differ are not
    fetched; the others are read (at most ``limits.referrers`` of them, the listing's bound)."""
    reg, repo = ref.registry, ref.repository

    def same(ann: dict[str, str]) -> bool:
        return {k: v for k, v in ann.items() if k != ANN_CREATED} == {
            k: v for k, v in annotations.items() if k != ANN_CREATED}

    for d in client.list_referrers(reg, repo, subject_digest, artifact_type):
        # (the listing's artifactType is not trusted to filter: go-containerregistry's registry
        # lists the config media type there; the manifest read below is checked instead)
        if d.media_type != OCI_MANIFEST:
            continue
        if d.annotations and not same(d.annotations):
            continue
        try:
            m = client.get_manifest(reg, repo, d.digest, accept=(OCI_MANIFEST,))
        except RegistryError as exc:
            if exc.reason == "MANIFEST_NOT_FOUND":  # listed but gone (a stale fallback index entry)
                continue
            raise
        layers = m.layers
        subj = m.subject
        if (
            len(layers) == 1 and layers[0].digest == layer_digest and layers[0].media_type == layer_media_type
            and subj is not None and subj.digest == subject_digest and m.artifact_type == artifact_type
            and same(m.annotations)
        ):
            return Descriptor(OCI_MANIFEST, m.digest, len(m.raw), artifact_type)
    return None


def _update_fallback_index(client: RegistryClient, ref: Reference, subject_digest: str, entry: Descriptor) -> str:
    """Add ``entry`` to the ``sha256-<hex>`` referrers index tag (entries sorted by digest)."""
    tag = referrers_tag(subject_digest)
    reg, repo = ref.registry, ref.repository
    entries: list[dict[str, Any]] = []
    try:
        index = client.get_manifest(reg, repo, tag, accept=(OCI_INDEX,))
        if not index.is_index:
            raise RegistryError(
                f"{ref.name}:{tag} exists but is a {index.media_type}, not the referrers index; refusing to overwrite it",
                hint="delete that tag or use a registry with the OCI 1.1 referrers API",
            )
        entries = [m.to_json() for m in index.manifests]
    except RegistryError as exc:
        if exc.reason != "MANIFEST_NOT_FOUND":
            raise
    if any(e["digest"] == entry.digest for e in entries):
        return tag
    entries.append({"mediaType": entry.media_type, "size": entry.size, "digest": entry.digest,
                    "artifactType": entry.artifact_type})
    entries.sort(key=lambda e: e["digest"])
    raw = _compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    client.put_manifest(reg, repo, tag, raw, OCI_INDEX)
    return tag


def _append_legacy(client: RegistryClient, ref: Reference, image_digest: str, parsed: ParsedAttestation,
                   extra: dict[str, str]) -> tuple[str, str, bool]:
    """Append the envelope as one layer to cosign's ``.att`` manifest; returns (manifest digest,
    layer digest, unchanged)."""
    reg, repo = ref.registry, ref.repository
    tag = cosign_attestation_tag(image_digest)
    layer = parsed.envelope_bytes
    layer_digest = sha256_digest(layer)
    manifest_doc: dict[str, Any]
    config_doc: dict[str, Any]
    try:
        existing = client.get_manifest(reg, repo, tag)
    except RegistryError as exc:
        if exc.reason != "MANIFEST_NOT_FOUND":
            raise
        existing = None
    if existing is not None:
        if existing.is_index:
            raise RegistryError(f"{ref.name}:{tag} is an index, not cosign's attestation manifest; refusing to change it")
        if any(layer_d.digest == layer_digest for layer_d in existing.layers):
            return existing.digest, layer_digest, True
        manifest_doc = dict(existing.doc)
        cfg = existing.config
        if cfg is None:
            raise RegistryError(f"{ref.name}:{tag} has no config; refusing to change it")
        config_raw = client.get_blob(reg, repo, cfg.digest, max_bytes=client.limits.manifest_bytes)
        try:
            config_doc = json.loads(config_raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RegistryError(f"the config of {ref.name}:{tag} is not valid JSON; refusing to change it") from exc
        if not isinstance(config_doc, dict):
            raise RegistryError(f"the config of {ref.name}:{tag} is not a JSON object; refusing to change it")
    else:
        manifest_doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "size": 0, "digest": ""}, "layers": []}
        config_doc = {"architecture": "", "created": ZERO_TIME, "history": [], "os": "",
                      "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}
    rootfs = config_doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("diff_ids", []).append(layer_digest)  # uncompressed layer: diff_id == digest
    history = config_doc.get("history")
    if not isinstance(history, list):
        history = []
    history.append({"created": ZERO_TIME})
    # go-containerregistry keeps "history" before "os" (struct field order); keep existing order otherwise.
    config_doc["history"] = history
    config_raw = _compact(config_doc)
    client.put_blob(reg, repo, layer)
    config_digest = client.put_blob(reg, repo, config_raw)
    layer_ann = {ANN_COSIGN_SIGNATURE: "", ANN_PREDICATE_TYPE: parsed.predicate_type}
    layer_ann.update(parsed.cosign_annotations)
    layer_ann.update(extra)
    manifest_doc["config"] = {**manifest_doc.get("config", {}), "size": len(config_raw), "digest": config_digest}
    manifest_doc["layers"] = [
        *manifest_doc.get("layers", []),
        {"mediaType": DSSE_MEDIA_TYPE, "size": len(layer), "digest": layer_digest,
         "annotations": dict(sorted(layer_ann.items()))},
    ]
    raw = _compact(manifest_doc)
    media_type = manifest_doc.get("mediaType") or OCI_MANIFEST
    digest = client.put_manifest(reg, repo, tag, raw, media_type)
    return digest, layer_digest, False


def attach(
    client: RegistryClient,
    ref: Reference,
    data: bytes,
    *,
    formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
    annotations: dict[str, str] | None = None,
    created: str | None = None,
    tenant: str | None = None,
    scan_id: str | None = None,
    key_hint: str | None = None,
) -> list[AttachResult]:
    """Check ``data`` (DSSE envelope or sigstore bundle JSON) against the image ``ref`` names
    and write it in each of ``formats``. Nothing is pushed when a check fails."""
    fmts = [f.strip() for f in formats if f.strip()]
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown or not fmts:
        raise AttachError(f"unknown format(s) {unknown or fmts}; choose from {', '.join(FORMATS)}")
    user_ann = dict(annotations or {})
    _check_annotations(user_ann)
    if created is not None and not _RFC3339.match(created):
        raise AttachError(f"created {created!r} is not an RFC 3339 time such as 2026-11-25T16:36:37Z")
    subject = client.resolve(ref)
    image_digest = subject.digest
    parsed = parse_attestation(data, image_digest)
    stamp = created or _now()
    seed_ann = {ANN_STELLA_PREDICATE: parsed.predicate_type}
    if tenant:
        seed_ann[ANN_STELLA_TENANT] = tenant
    if scan_id:
        seed_ann[ANN_STELLA_SCAN_ID] = scan_id
    bundle_layer = _bundle_layer(parsed, key_hint) if "bundle" in fmts else b""
    image = f"{ref.name}@{image_digest}"
    results: list[AttachResult] = []
    for fmt in dict.fromkeys(fmts):
        if fmt == "bundle":
            ann = {ANN_BUNDLE_CONTENT: "dsse-envelope", ANN_BUNDLE_PREDICATE: parsed.predicate_type,
                   ANN_CREATED: stamp, **seed_ann, **user_ann}
            mdigest, ldigest, fallback, unchanged = _push_referrer(
                client, ref, subject, artifact_type=BUNDLE_V03, layer=bundle_layer, layer_media_type=BUNDLE_V03,
                annotations=ann, config_artifact_type=True,
            )
            results.append(AttachResult("bundle", image, mdigest, ldigest, f"{ref.name}@{mdigest}",
                                        parsed.predicate_type, fallback, unchanged))
        elif fmt == "dsse":
            ann = {ANN_CREATED: stamp, **seed_ann, **user_ann}
            mdigest, ldigest, fallback, unchanged = _push_referrer(
                client, ref, subject, artifact_type=DSSE_MEDIA_TYPE, layer=parsed.envelope_bytes,
                layer_media_type=DSSE_MEDIA_TYPE, annotations=ann, config_artifact_type=True,
            )
            results.append(AttachResult("dsse", image, mdigest, ldigest, f"{ref.name}@{mdigest}",
                                        parsed.predicate_type, fallback, unchanged))
        else:
            mdigest, ldigest, unchanged = _append_legacy(client, ref, image_digest, parsed, {**seed_ann, **user_ann})
            results.append(AttachResult("legacy", image, mdigest, ldigest,
                                        f"{ref.name}:{cosign_attestation_tag(image_digest)}",
                                        parsed.predicate_type, "", unchanged))
    return results


def split_documents(data: bytes) -> list[bytes]:
    """Split a file of one or more JSON documents (``cosign download attestation`` output: one
    per line) into the exact bytes of each."""
    try:
        text = data.decode("utf-8", errors="strict") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise AttachError(f"the attestation file is not UTF-8 text: {exc}", reason="MALFORMED_ENVELOPE") from exc
    decoder = json.JSONDecoder()
    out: list[bytes] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            _, end = decoder.raw_decode(text, i)
        except ValueError as exc:
            raise AttachError(f"the attestation file is not JSON at character {i}: {exc}",
                              reason="MALFORMED_ENVELOPE") from exc
        out.append(text[i:end].encode("utf-8"))
        i = end
    return out
