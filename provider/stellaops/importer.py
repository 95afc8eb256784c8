"""Import what ``cosign download attestation`` prints into the attestation store.

``cosign download attestation IMAGE`` prints one JSON document per line: first whole sigstore
bundles (from OCI 1.1 referrers, cosign v3's default), then DSSE envelopes (from the legacy
``sha256-<hex>.att`` tag) (reference/cosign-formats.md §5). We accept exactly that, and also a
single pretty-printed document, a JSON array of documents, and documents run together on one
line: ``curl -d @file`` strips the newlines of the file it sends, so the seed's own ``curl``
command posts ``{…}{…}``.

Importing does *not* verify signatures: verification happens at admission, exactly as for
attestations found in a registry, against the configuration in force then. But every document
must parse: a DSSE envelope (or the ``dsseEnvelope`` of a bundle) of payload type in-toto,
whose payload is an in-toto Statement; its subjects and predicate type are read from that
statement. With an image digest, each statement must name that digest among its subjects;
without one, it is stored under every digest its statement names.

The CLI (``stella attest import``) and the HTTP API (``POST /api/v1/attestations/import``)
both call :func:`parse_cosign_download` then :func:`import_items`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .candidate import KIND_BUNDLE, KIND_DSSE
from .dsse import (
    MalformedEnvelope,
    MalformedStatement,
    SubjectMismatch,
    parse_envelope_obj,
    parse_statement,
    require_intoto,
)
from .errors import RequestError, StellaError, StoreError

MAX_ITEMS = 1000  # documents per import (cosign itself reads at most 1000 attestation layers)
MAX_PROBLEMS = 20  # syntax errors reported before giving up

# Sigstore bundle media types, v0.1–v0.3 (protobuf-specs); cosign v3 writes the v0.3 one.
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)
_BUNDLE_FIELDS = {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
_DIGEST_RE = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "sha384": re.compile(r"^[0-9a-f]{96}$"), "sha512": re.compile(r"^[0-9a-f]{128}$")}
_WS = " \t\r\n"


class ImportSyntaxError(RequestError):
    """The body is not a sequence of JSON documents; ``problems`` lists each bad document."""

    def __init__(self, detail: str, problems: list[dict[str, Any]], *, hint: str = "", reason: str | None = None) -> None:
        super().__init__(detail, hint=hint, reason=reason)
        self.problems = problems


@dataclass(frozen=True)
class Item:
    """One document of the input: parsed, or with the error that refuses it."""

    index: int  # 0-based position in the input
    line: int  # 1-based line where the document starts
    data: bytes  # exactly the bytes of this document (stored verbatim)
    kind: str = ""  # KIND_DSSE | KIND_BUNDLE when parsed
    predicate_type: str = ""
    subject_digests: tuple[str, ...] = ()
    error: StellaError | None = None


@dataclass
class ImportReport:
    """Per-item outcome of one import; ``to_json`` is the API's response body."""

    tenant: str
    image: str | None = None
    digest: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    @property
    def imported(self) -> int:
        return self.count("imported")

    @property
    def duplicates(self) -> int:
        return self.count("duplicate")

    @property
    def errors(self) -> int:
        return self.count("error")

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"tenant": self.tenant}
        if self.image is not None:
            doc["image"] = self.image
        if self.digest is not None:
            doc["digest"] = self.digest
        doc.update(results=self.results, imported=self.imported, duplicates=self.duplicates, errors=self.errors)
        return doc


# ------------------------------------------------------------------------------------ parsing
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears more than once (an ambiguous document is refused)")
        out[key] = value
    return out


def _bad_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


class _Lines:
    """Line numbers of text offsets, computed incrementally (offsets only grow)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, offset: int) -> int:
        if offset < self.pos:  # rare: restart
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line


def _spans(text: str) -> list[tuple[int, int, Any]]:
    """(start, end, value) of each top-level document; raises ImportSyntaxError listing bad ones."""
    lines = _Lines(text)
    pos = _skip_ws(text, 0)
    n = len(text)
    spans: list[tuple[int, int, Any]] = []
    problems: list[dict[str, Any]] = []

    def decode(at: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise _Bad(exc.pos, str(exc)) from exc
        except (ValueError, RecursionError) as exc:
            raise _Bad(at, str(exc) or type(exc).__name__) from exc

    if pos < n and text[pos] == "[":  # a JSON array of documents
        pos = _skip_ws(text, pos + 1)
        try:
            if pos < n and text[pos] == "]":
                pos += 1
            else:
                while True:
                    value, end = decode(pos)
                    spans.append((pos, end, value))
                    if len(spans) > MAX_ITEMS:
                        break
                    pos = _skip_ws(text, end)
                    if pos < n and text[pos] == ",":
                        pos = _skip_ws(text, pos + 1)
                        continue
                    if pos < n and text[pos] == "]":
                        pos += 1
                        break
                    raise _Bad(pos, "expected ',' or ']' in the JSON array")
            pos = _skip_ws(text, pos)
            if pos < n and len(spans) <= MAX_ITEMS:
                raise _Bad(pos, "unexpected data after the JSON array")
        except _Bad as bad:
            problems.append({"index": len(spans), "line": lines.at(bad.pos), "message": bad.message})
    else:  # one or more documents: one per line (ndjson), pretty-printed, or run together
        while pos < n and len(spans) <= MAX_ITEMS:
            try:
                value, end = decode(pos)
            except _Bad as bad:
                # reported at the line where the document starts (the decoder's message has
                # the exact position); resume at the next line that starts a document, so in
                # one-per-line input each bad line is one error and the good lines still parse
                problems.append({"index": len(spans) + len(problems), "line": lines.at(pos), "message": bad.message})
                if len(problems) >= MAX_PROBLEMS:
                    break
                nxt = text.find("\n", pos)
                while nxt != -1 and text[_skip_ws(text, nxt) : _skip_ws(text, nxt) + 1] not in ("{", ""):
                    nxt = text.find("\n", nxt + 1)
                if nxt == -1:
                    break
                pos = _skip_ws(text, nxt)
                continue
            if isinstance(value, list):
                problems.append({"index": len(spans) + len(problems), "line": lines.at(pos),
                                 "message": "a JSON array is accepted only as the whole body"})  # fmt: skip
            else:
                spans.append((pos, end, value))
            pos = _skip_ws(text, end)
    if len(spans) > MAX_ITEMS:
        raise ImportSyntaxError(
            f"the input holds more than {MAX_ITEMS} documents",
            [],
            reason="LIMIT_EXCEEDED",
            hint=f"import at most {MAX_ITEMS} attestations at a time",
        )
    if problems:
        first = problems[0]
        raise ImportSyntaxError(
            f"{len(problems)} document(s) are not valid JSON; first at line {first['line']}: {first['message']}",
            problems,
            hint="the input must be what `cosign download attestation` prints: one JSON document per line",
        )
    return spans


class _Bad(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos, self.message = pos, message


def subject_digests(statement: Any) -> tuple[str, ...]:
    """``alg:hex`` of every subject digest we can match an image against (sha256/384/512)."""
    out: list[str] = []
    for subject in statement.subjects:
        for alg, pattern in _DIGEST_RE.items():
            value = subject.digest.get(alg)
            if isinstance(value, str) and pattern.match(value) and f"{alg}:{value}" not in out:
                out.append(f"{alg}:{value}")
    return tuple(out)


def _classify(doc: Any) -> tuple[str, Any]:
    """(kind, the DSSE envelope object) of one document, or raise MalformedEnvelope."""
    if not isinstance(doc, dict):
        raise MalformedEnvelope(
            f"the document is a JSON {type(doc).__name__}, expected a DSSE envelope or a sigstore bundle object"
        )
    if {"mediaType", "dsseEnvelope", "verificationMaterial", "messageSignature"} & set(doc):
        media_type = doc.get("mediaType")
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise MalformedEnvelope(
                f"sigstore bundle mediaType is {media_type!r}, expected one of {list(BUNDLE_MEDIA_TYPES)}"
            )
        unknown = set(doc) - _BUNDLE_FIELDS
        if unknown:
            raise MalformedEnvelope(f"unknown sigstore bundle field(s) {sorted(unknown)}")
        if not isinstance(doc.get("verificationMaterial"), dict):
            raise MalformedEnvelope("sigstore bundle has no verificationMaterial object")
        if "dsseEnvelope" not in doc:
            raise MalformedEnvelope(
                "the sigstore bundle holds a messageSignature (a `cosign sign-blob` signature), not an attestation",
                hint="only bundles with a dsseEnvelope (attestations) can be imported",
            )
        if "messageSignature" in doc:
            raise MalformedEnvelope("sigstore bundle holds both a dsseEnvelope and a messageSignature")
        return KIND_BUNDLE, doc["dsseEnvelope"]
    return KIND_DSSE, doc


def parse_document(index: int, line: int, data: bytes, doc: Any) -> Item:
    """One document → an :class:`Item` (with ``error`` set when it cannot be imported)."""
    try:
        kind, envelope_doc = _classify(doc)
        envelope = parse_envelope_obj(envelope_doc)
        require_intoto(envelope)
        statement = parse_statement(envelope.payload)
        digests = subject_digests(statement)
        if not digests:
            raise MalformedStatement(
                "the statement names no sha256, sha384 or sha512 subject digest",
                hint="an attestation must name the image digest it is about",
            )
    except StellaError as exc:
        return Item(index=index, line=line, data=data, error=exc)
    return Item(
        index=index, line=line, data=data, kind=kind,
        predicate_type=statement.predicate_type, subject_digests=digests,
    )  # fmt: skip


def parse_cosign_download(data: bytes) -> list[Item]:
    """Split ``cosign download attestation`` output into documents and parse each one.

    Raises :class:`ImportSyntaxError` (``REQUEST_INVALID``, with ``problems`` per document)
    when the input is not JSON, or ``NO_ATTESTATION`` when it holds no document. A document
    that is JSON but not an importable attestation comes back as an ``Item`` with ``error``.
    """
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportSyntaxError(
            f"the input is not UTF-8 (byte {exc.start})", [{"index": 0, "line": 1, "message": str(exc)}]
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    spans = _spans(text)
    if not spans:
        raise ImportSyntaxError(
            "the input holds no attestation",
            [],
            reason="NO_ATTESTATION",
            hint="`cosign download attestation` printed nothing: the image has no attestations to import",
        )
    lines = _Lines(text)
    return [
        parse_document(i, lines.at(start), text[start:end].encode("utf-8"), value)
        for i, (start, end, value) in enumerate(spans)
    ]


# ------------------------------------------------------------------------------------ importing
def resolve_image(
    image: str | None, digest: str | None, client_factory: Callable[[], Any] | None
) -> tuple[str | None, str | None]:
    """(image as given, its digest). A digest in ``image`` or ``digest`` needs no registry;
    a tag is resolved with ``client_factory()`` (a :class:`~stellaops.registry.RegistryClient`)."""
    from .reference import parse_reference, validate_digest

    if digest is not None:
        if ":" in digest:
            digest = validate_digest(digest, what="--digest")
        else:  # cosign's --digest takes bare hex
            digest = validate_digest("sha256:" + digest, what="--digest")
    if image is None:
        return None, digest
    ref = parse_reference(image)
    if ref.digest:
        if digest is not None and digest != ref.digest:
            raise SubjectMismatch(
                f"the image {image} names digest {ref.digest} but the digest given is {digest}",
                hint="give one digest, or make them agree",
            )
        return image, ref.digest
    if digest is not None:
        return image, digest
    if client_factory is None:
        raise RequestError(
            f"the image {image} is a tag and no registry client is available to resolve it",
            hint="pin the image by digest (REPO@sha256:…) or pass --digest",
        )
    client = client_factory()
    return image, client.resolve(ref).digest


def import_items(
    store: Any,
    tenant: str,
    items: list[Item],
    *,
    image: str | None = None,
    image_digest: str | None = None,
    annotations: dict[str, str] | None = None,
    keep: int | None = None,
) -> ImportReport:
    """Store each parsed item for ``tenant``; one transaction per item, results per item.

    ``keep`` (``limits.storeRowsPerTenantDigest``; ``None``: the store's own setting): rows
    kept per (tenant, digest), the newest; an item whose import pruned older rows of this
    tenant says how many (``"pruned"``).

    With ``image_digest`` each statement must cover it (else that item fails with
    ``SUBJECT_MISMATCH``) and the item is stored under that digest only; otherwise under every
    subject digest of its statement. A transient store failure (``STORE_UNAVAILABLE``) aborts
    the import by raising: items stored before it stay stored, and importing again is safe.
    """
    report = ImportReport(tenant=tenant, image=image, digest=image_digest)
    for item in items:
        result: dict[str, Any] = {"index": item.index, "line": item.line}
        if item.kind:
            result["kind"] = item.kind
            result["predicateType"] = item.predicate_type
            result["subjects"] = list(item.subject_digests)
        error = item.error
        if error is None and image_digest is not None and image_digest not in item.subject_digests:
            error = SubjectMismatch(
                f"the statement covers {', '.join(item.subject_digests)}, not the image digest {image_digest}"
                + (f" of {image}" if image else ""),
                hint="this attestation was made for another image (or another platform of it)",
            )
        if error is None:
            digests = [image_digest] if image_digest is not None else list(item.subject_digests)
            try:
                extra: dict[str, Any] = {} if keep is None else {"keep": keep}
                put = store.put(
                    tenant, item.data, kind=item.kind, subject_digests=digests, predicate_type=item.predicate_type,
                    image=image, annotations=dict(annotations or {}), **extra,
                )  # fmt: skip
            except StoreError as exc:
                if exc.transient:
                    raise
                error = exc
            else:
                result.update(status="imported" if put.created else "duplicate", id=put.id, subjects=digests)
                if getattr(put, "pruned", 0):
                    result["pruned"] = put.pruned  # this tenant's oldest rows for these digests
        if error is not None:
            result["status"] = "error"
            result["error"] = error.to_json()
        report.results.append(result)
    return report
