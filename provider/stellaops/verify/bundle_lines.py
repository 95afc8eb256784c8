"""Files of several sigstore bundles: ``gh attestation download`` writes JSON Lines, one bundle
per line (issue 17 item 4). Used by ``stella attest verify-blob-attestation --bundle FILE``
(every bundle is tried; the first that verifies with the wanted predicate type wins).

A file that is one JSON document (a bundle, cosign's legacy blob bundle, pretty-printed or not)
is returned as is; otherwise each non-empty line must be one complete JSON object. A bad line
is refused with its number, never skipped: an attacker must not be able to hide a line from
the user's view of what was checked.
"""

from __future__ import annotations

import json

from ..candidate import KIND_BUNDLE, SOURCE_IMPORTED, Candidate
from ..errors import RequestError, VerificationError
from ..verdict import AttestationResult

MAX_BUNDLES_PER_FILE = 64


def split_bundle_lines(data: bytes, source: str) -> list[tuple[int, bytes]]:
    """(line number, document) of the JSON documents in ``data``: ``[(1, data)]`` for one
    document, one per non-empty line for JSON Lines. Raises :class:`VerificationError`
    (MALFORMED_ENVELOPE) naming ``source`` and the line."""
    try:
        json.loads(data)
        return [(1, bytes(data))]
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise VerificationError(f"{source} is not JSON: {exc}", reason="MALFORMED_ENVELOPE") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{source} is not JSON: {exc}", reason="MALFORMED_ENVELOPE") from exc
    out: list[tuple[int, bytes]] = []
    for number, line in enumerate(bytes(data).split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(out) >= MAX_BUNDLES_PER_FILE:
            raise VerificationError(f"{source}: more than {MAX_BUNDLES_PER_FILE} bundles in one JSON Lines file", reason="LIMIT_EXCEEDED")
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VerificationError(
                f"{source} line {number}: not a JSON bundle: {exc}",
                reason="MALFORMED_ENVELOPE",
                hint="a JSON Lines file holds one complete sigstore bundle per line (as `gh attestation download` writes)",
            ) from exc
        if not isinstance(doc, dict):
            raise VerificationError(f"{source} line {number}: a bundle must be a JSON object", reason="MALFORMED_ENVELOPE")
        out.append((number, line.strip()))
    return out


def bundle_file_candidates(bundle_path: str) -> list[Candidate] | None:
    """The candidates of a JSON Lines file of sigstore bundles (one per line, each tried), or
    None when the file is one JSON document (then ``cli.verify.blob_candidate`` reads it as
    before: a sigstore bundle or cosign's legacy blob bundle)."""
    try:
        with open(bundle_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise RequestError(f"cannot read bundle {bundle_path!r}: {exc.strerror}", hint="check the path") from exc
    try:
        json.loads(data)
        return None  # one document: read as before
    except (ValueError, UnicodeDecodeError):
        pass
    return [candidate_from_bundle(doc, f"{bundle_path} line {number}") for number, doc in split_bundle_lines(data, bundle_path)]


def candidate_from_bundle(data: bytes, location: str) -> Candidate:
    """A candidate from one line's sigstore bundle."""
    doc = json.loads(data)
    if not str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
        raise VerificationError(f"{location} is not a sigstore bundle (no sigstore bundle mediaType)", reason="MALFORMED_ENVELOPE")
    return Candidate(kind=KIND_BUNDLE, data=data, source=SOURCE_IMPORTED, attached_to="", location=location)


def pick_result(results: list[AttestationResult], wanted: str) -> AttestationResult:
    """The result the command reports: the first that verified with the wanted predicate type,
    else the first that verified, else the first (its reason is the command's)."""
    return next(
        (r for r in results if r.verified and r.predicate_type == wanted),
        next((r for r in results if r.verified), results[0]),
    )
