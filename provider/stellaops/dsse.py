"""DSSE envelopes and in-toto Statements: parse strictly, build, and bind to an image (pure).

Facts (DESIGN.md §4, reference/cosign-formats.md):
- signatures are over PAE(type, body) = ``DSSEv1 <len(type)> <type> <len(body)> <body>``;
- the payload is *standard* base64 (cosign fails on URL-safe payloads after the signature
  check, so we refuse them up front); signatures may be standard or URL-safe base64;
- ``keyid`` is never used to choose a key (cosign writes ``""`` or omits it);
- duplicate JSON keys anywhere are refused (stricter than cosign: an ambiguous parse);
- the statement is parsed as cosign's protojson does: unknown top-level or subject fields
  are refused; ``_type`` must be in-toto Statement v0.1 or v1;
- the image digest must equal some subject's digest for the same algorithm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import VerificationError

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_V01, STATEMENT_V1)

MAX_SIGNATURES = 16
# Deeper JSON than this is refused: real attestations nest a few tens of levels, and a document
# nested near Python's recursion limit would parse here and then break every later encoder (the
# verdict, the Gatekeeper answer) for the whole batch.
MAX_JSON_DEPTH = 128
_STD_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_URL_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


class MalformedEnvelope(VerificationError):
    reason = "MALFORMED_ENVELOPE"


class MalformedStatement(VerificationError):
    reason = "MALFORMED_STATEMENT"


class PayloadTypeInvalid(VerificationError):
    reason = "PAYLOAD_TYPE_INVALID"


class SubjectMismatch(VerificationError):
    reason = "SUBJECT_MISMATCH"


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def json_depth_exceeds(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when a parsed JSON value nests deeper than ``limit``. Iterative (no recursion) and
    linear in the number of nodes, stopping at the first branch that is too deep; written by
    hand because the json module has no depth limit of its own."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def strict_json(data: bytes | str, *, what: str, error: type[VerificationError]) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity, invalid UTF-8 and excessive nesting."""

    def _bad_constant(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not valid UTF-8: {exc}") from exc
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
    except DuplicateKey as exc:
        raise error(
            f"{what} has the key {str(exc)!r} more than once; an ambiguous document is refused",
            hint="re-create it with a JSON encoder that writes each key once",
        ) from exc
    except RecursionError as exc:
        raise error(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; refused", reason="LIMIT_EXCEEDED") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid JSON: {exc}", hint="check the file is the JSON it claims to be") from exc
    if json_depth_exceeds(doc):
        raise error(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; refused", reason="LIMIT_EXCEEDED", hint="flatten the document")
    return doc


_STD_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def is_std_base64_text(value: str) -> bool:
    """Exactly ``_STD_B64.match(value)`` (``^[A-Za-z0-9+/]*={0,2}$``, where Python's ``$`` also
    matches before one final newline), written with C loops (``bytes.translate``): a regular
    expression walks a multi-megabyte payload character by character, several times slower."""
    if not value.isascii():
        return False
    raw = value.encode("ascii")
    if raw.endswith(b"\n"):
        raw = raw[:-1]  # what `$` allows before the end
    rest = raw.translate(None, _STD_ALPHABET)  # every character outside the alphabet, in order
    return rest in (b"", b"=", b"==") and raw.endswith(rest)


def b64decode_std(value: str, *, what: str, error: type[VerificationError]) -> bytes:
    if not isinstance(value, str) or not is_std_base64_text(value):
        raise error(f"{what} is not standard base64", hint="encode with standard base64 (RFC 4648 §4), not URL-safe")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not valid base64: {exc}") from exc


def _is_canonical_b64(text: str, data: bytes) -> bool:
    """True when ``text`` (standard base64 that decoded to ``data``) is exactly
    ``base64.b64encode(data)``: its length is the encoded length and its last 4-character group
    re-encodes to itself (every earlier group uses all its bits, so only the last one, with its
    spare bits, can differ)."""
    if len(text) != 4 * ((len(data) + 2) // 3):
        return False
    return not text or base64.b64encode(base64.b64decode(text[-4:])) == text[-4:].encode("ascii")


def b64decode_any(value: str, *, what: str, error: type[VerificationError]) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE signatures, as cosign accepts)."""
    if not isinstance(value, str):
        raise error(f"{what} must be a base64 string, got {type(value).__name__}")
    padded = value + "=" * (-len(value.rstrip("=")) % 4) if "=" not in value else value
    try:
        if _STD_B64.match(padded):
            return base64.b64decode(padded, validate=True)
        if _URL_B64.match(padded):
            return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not valid base64: {exc}") from exc
    raise error(f"{what} is not base64")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]
    raw: bytes = b""
    # The payload's base64 text as parsed, kept only when it is exactly b64encode(payload), so
    # that to_bytes() need not encode megabytes again; "" otherwise. Not an init field:
    # dataclasses.replace() and envelopes built in code never carry a stale one.
    _payload_b64: str = field(default="", init=False, repr=False, compare=False)

    @property
    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @property
    def digest(self) -> str:
        """sha256 of the envelope bytes as stored (identifies copies of one envelope)."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    def _payload_text(self) -> str:
        return self._payload_b64 or base64.b64encode(self.payload).decode()

    def _serialised(self, *, with_keyid: bool = False) -> tuple[bytes, bytes, bytes]:
        """``to_bytes()`` in three parts (head, payload base64, tail), written by hand so the
        large middle part is neither copied nor scanned again: it is what
        ``json.dumps(self.to_json(), separators=(",", ":"))`` writes, because base64 text holds
        no character JSON escapes (tests/unit/verify/test_parse_once.py checks it)."""
        doc = self.to_json(with_keyid=with_keyid, payload="")
        tail = json.dumps({"payloadType": doc["payloadType"], "signatures": doc["signatures"]}, separators=(",", ":"))
        return b'{"payload":"', self._payload_text().encode("ascii"), b'",' + tail[1:].encode()

    def canonical_digest(self) -> str:
        """sha256 of :meth:`to_bytes` (cosign v3's serialisation), hashed in parts."""
        h = hashlib.sha256()
        for part in self._serialised():
            h.update(part)
        return "sha256:" + h.hexdigest()

    def to_json(self, *, with_keyid: bool = False, payload: str | None = None) -> dict[str, Any]:
        """The envelope as cosign v3 writes it (keyid omitted unless asked for); ``payload``
        replaces the payload's base64 text (internal: :meth:`_serialised`)."""
        sigs = []
        for s in self.signatures:
            item: dict[str, str] = {}
            if with_keyid:
                item["keyid"] = s.keyid
            item["sig"] = base64.b64encode(s.sig).decode()
            sigs.append(item)
        return {
            "payload": self._payload_text() if payload is None else payload,
            "payloadType": self.payload_type,
            "signatures": sigs,
        }

    def to_bytes(self, *, with_keyid: bool = False) -> bytes:
        return b"".join(self._serialised(with_keyid=with_keyid))


def parse_envelope_obj(doc: Any, raw: bytes = b"") -> Envelope:
    """Validate an already-parsed DSSE envelope object."""
    if not isinstance(doc, dict):
        raise MalformedEnvelope(f"a DSSE envelope must be a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"payload", "payloadType", "signatures"}
    if unknown:
        raise MalformedEnvelope(f"unknown DSSE envelope field(s) {sorted(unknown)}; expected payload, payloadType, signatures")
    for name in ("payload", "payloadType", "signatures"):
        if name not in doc:
            raise MalformedEnvelope(f"DSSE envelope has no {name!r}")
    payload_type = doc["payloadType"]
    if not isinstance(payload_type, str):
        raise MalformedEnvelope("DSSE payloadType must be a string")
    payload_text = doc["payload"]
    payload = b64decode_std(payload_text, what="DSSE payload", error=MalformedEnvelope)
    sigs_doc = doc["signatures"]
    if not isinstance(sigs_doc, list) or not sigs_doc:
        raise MalformedEnvelope("DSSE envelope must carry at least one signature")
    if len(sigs_doc) > MAX_SIGNATURES:
        raise MalformedEnvelope(
            f"DSSE envelope carries {len(sigs_doc)} signatures, more than the limit of {MAX_SIGNATURES}",
            reason="LIMIT_EXCEEDED",
        )
    sigs = []
    for i, s in enumerate(sigs_doc):
        if not isinstance(s, dict):
            raise MalformedEnvelope(f"DSSE signatures[{i}] must be an object")
        unknown = set(s) - {"sig", "keyid"}
        if unknown:
            raise MalformedEnvelope(f"unknown field(s) {sorted(unknown)} in DSSE signatures[{i}]")
        keyid = s.get("keyid", "")
        if not isinstance(keyid, str):
            raise MalformedEnvelope(f"DSSE signatures[{i}].keyid must be a string")
        sig = b64decode_any(s.get("sig", ""), what=f"DSSE signatures[{i}].sig", error=MalformedEnvelope)
        if not sig:
            raise MalformedEnvelope(f"DSSE signatures[{i}].sig is empty")
        sigs.append(Signature(sig=sig, keyid=keyid))
    envelope = Envelope(payload_type=payload_type, payload=payload, signatures=tuple(sigs), raw=raw)
    if _is_canonical_b64(payload_text, payload):
        object.__setattr__(envelope, "_payload_b64", payload_text)  # frozen: set once, here
    return envelope


# JSON values a DSSE envelope may hold before it is parsed, counted as the objects, arrays and
# commas outside strings: a valid one holds 2 + its signatures containers and at most 2 + 2 per
# signature commas (at most 51 with MAX_SIGNATURES); the bound is far above that, so that every
# envelope the parser would accept, or refuse for its own reason, is still parsed.
MAX_ENVELOPE_VALUES = 1024
# one JSON string token, escapes included (the unrolled form: no per-character alternation)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def values_outside_strings(data: bytes, limit: int = MAX_ENVELOPE_VALUES) -> int:
    """Opening brackets and commas outside JSON strings: about the number of values a parse
    would build (an upper bound when ``data`` is not valid JSON, which the parser refuses
    anyway). The string-aware count runs only when the plain count is over ``limit``: base64
    (payloads, signatures, certificates) holds none of these characters."""
    def count(b: bytes) -> int:
        return b.count(b"{") + b.count(b"[") + b.count(b",")

    n = count(data)
    return n if n <= limit else count(_JSON_STRING.sub(b"", data))


def parse_envelope(data: bytes) -> Envelope:
    """Parse a DSSE envelope from its exact bytes (kept in ``raw``).

    Before the strict parse (a Python call per object, a walk of every node for the depth), a
    byte-cheap count of its values: junk of megabytes of ``{}``, ``[]`` or numbers would take
    seconds to parse strictly (issue 16 item 8) and can never be an envelope, whose values are
    a few strings, one array and one object per signature; over ``MAX_ENVELOPE_VALUES`` it is
    refused unparsed."""
    values = values_outside_strings(data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data))
    if values > MAX_ENVELOPE_VALUES:
        raise MalformedEnvelope(
            f"the DSSE envelope holds about {values} JSON values (objects, arrays, list items), more than "
            f"{MAX_ENVELOPE_VALUES}; an envelope holds a few strings, its signatures array and one object per "
            f"signature (at most {MAX_SIGNATURES})",
            reason="LIMIT_EXCEEDED",
            hint="this is not a DSSE envelope; re-import the attestation as cosign wrote it",
        )
    doc = strict_json(data, what="DSSE envelope", error=MalformedEnvelope)
    return parse_envelope_obj(doc, raw=bytes(data))


def require_intoto(envelope: Envelope) -> None:
    if envelope.payload_type != PAYLOAD_TYPE_INTOTO:
        raise PayloadTypeInvalid(
            f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE_INTOTO!r}",
            hint="only in-toto attestations are accepted",
        )


@dataclass(frozen=True)
class Subject:
    name: str
    digest: dict[str, str]


@dataclass(frozen=True)
class Statement:
    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    def covers(self, image_digest: str) -> bool:
        alg, _, hexval = image_digest.partition(":")
        return any(s.digest.get(alg) == hexval for s in self.subjects)


def parse_statement(payload: bytes) -> Statement:
    """Parse an in-toto Statement (v0.1 or v1) as strictly as cosign does, and stricter."""
    doc = strict_json(payload, what="in-toto statement", error=MalformedStatement)
    if not isinstance(doc, dict):
        raise MalformedStatement(f"the statement must be a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"_type", "subject", "predicateType", "predicate"}
    if unknown:
        raise MalformedStatement(
            f"unknown statement field(s) {sorted(unknown)}; an in-toto Statement has _type, subject, predicateType, predicate"
        )
    stype = doc.get("_type")
    if stype not in STATEMENT_TYPES:
        raise MalformedStatement(f"statement _type is {stype!r}, expected one of {list(STATEMENT_TYPES)}")
    ptype = doc.get("predicateType")
    if not isinstance(ptype, str) or not ptype:
        raise MalformedStatement("statement has no predicateType (a non-empty string)")
    subjects_doc = doc.get("subject")
    if not isinstance(subjects_doc, list) or not subjects_doc:
        raise MalformedStatement("statement has no subject (a non-empty list)")
    subjects = []
    for i, s in enumerate(subjects_doc):
        if not isinstance(s, dict):
            raise MalformedStatement(f"subject[{i}] must be an object")
        unknown = set(s) - {"name", "digest", "uri", "content", "downloadLocation", "mediaType", "annotations"}
        if unknown:
            raise MalformedStatement(f"unknown field(s) {sorted(unknown)} in subject[{i}]")
        name = s.get("name", "")
        digest = s.get("digest")
        if not isinstance(name, str):
            raise MalformedStatement(f"subject[{i}].name must be a string")
        if not isinstance(digest, dict) or not digest:
            raise MalformedStatement(f"subject[{i}].digest must be a non-empty object")
        for alg, value in digest.items():
            if not isinstance(value, str):
                raise MalformedStatement(f"subject[{i}].digest.{alg} must be a string")
        subjects.append(Subject(name=name, digest=dict(digest)))
    predicate = doc.get("predicate")
    return Statement(type=stype, subjects=tuple(subjects), predicate_type=ptype, predicate=predicate)


def check_digest_syntax(image_digest: str) -> None:
    alg, sep, hexval = image_digest.partition(":")
    if not sep or alg not in _DIGEST_LEN or len(hexval) != _DIGEST_LEN[alg] or not _HEX.match(hexval):
        raise SubjectMismatch(f"{image_digest!r} is not a digest of the form sha256:<64 hex>")


def require_subject(statement: Statement, image_digest: str) -> None:
    """The image digest must equal some subject's digest for that algorithm."""
    check_digest_syntax(image_digest)
    if not statement.covers(image_digest):
        found = ", ".join(
            f"{alg}:{val}" for s in statement.subjects for alg, val in sorted(s.digest.items())
        )
        raise SubjectMismatch(
            f"the statement covers {found or 'no digest'}, not the image digest {image_digest}",
            hint="this attestation was made for another image; attest the image's own digest",
        )


def make_statement(
    image_name: str, image_digest: str, predicate_type: str, predicate: Any, *, statement_type: str = STATEMENT_V1
) -> bytes:
    """An in-toto Statement for one image, in cosign v3's key order (passes cosign's parser)."""
    check_digest_syntax(image_digest)
    alg, _, hexval = image_digest.partition(":")
    doc = {
        "_type": statement_type,
        "subject": [{"name": image_name, "digest": {alg: hexval}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
