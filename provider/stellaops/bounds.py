"""Bounds on what a verdict may carry that nobody signed (issue 16 item 6).

A registry (or an import tenant) controls the annotations of the manifests it serves, the
``created`` time it claims, the predicate type an unverifiable envelope claims and text that error
messages quote. Copied verbatim, a few hundred bytes of ProviderRequest became a 20 MB answer that
Gatekeeper then caches for minutes. :func:`bound_verdict` is the one place that cuts them:

1. every unsigned string is cut to ``limits.unsigned_string_bytes`` (UTF-8 bytes, the cut marked in
   the string itself), error messages and hints (our text around quoted data) to four times that;
2. at most ``limits.unsigned_annotations`` annotations are kept per attestation; when any are
   dropped or cut, the annotation ``dev.stellaops/cut`` says how many and by which limit;
3. if the verdict's JSON is still over ``limits.verdict_bytes``: the detail of unverified
   attestations goes first (annotations, unsigned ``created``), then the unverified attestations
   themselves, then repeated error messages (one per reason is kept, with its count); each step
   adds a ``LIMIT_EXCEEDED`` error saying what was dropped. Verified attestations and every
   error's reason are kept. Unverified attestations never admit anything, so none of these steps
   changes a policy's decision, only how much of the why is told.
4. If the verified attestations alone are over the limit (signed by a trusted signer, so not an
   attacker's amplification, but still too big to cache and answer), the verdict keeps no
   attestation and says so: every policy denies (fail closed), never a truncated list.

Pure: no I/O, no clock; the input is not modified (the dataclasses are frozen).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from .config import LimitsConfig
from .verdict import AttestationResult, ErrorItem, Verdict

ANNOTATION_CUT = "dev.stellaops/cut"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"

# annotations kept first when there are more than the limit: the ones the provider itself reads
# or writes (their order among themselves, and the rest's, is by name: deterministic)
_PREFERRED_PREFIXES = ("dev.stellaops/", "org.opencontainers.image.created", "dev.sigstore.cosign/")

# error messages are the provider's own text around quoted registry data: a larger bound than
# a bare unsigned string, still a bound
_MESSAGE_FACTOR = 4


def cut_string(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, the cut marked at its end
    ("…[cut N bytes]"), never splitting a character. Unchanged when already short enough."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    marker_for = lambda n: f"…[cut {n} bytes]".encode()  # noqa: E731 - local helper
    # the marker's own length depends on how much is cut; two passes settle it
    keep = max(0, max_bytes - len(marker_for(len(raw))))
    marker = marker_for(len(raw) - keep)
    keep = max(0, max_bytes - len(marker))
    if len(marker) > max_bytes:  # a bound smaller than the marker: a hard cut, unmarked
        return raw[:max_bytes].decode("utf-8", "ignore")
    head = raw[:keep].decode("utf-8", "ignore")  # "ignore" drops a split trailing character
    return head + marker.decode()


def _preferred(name: str) -> bool:
    return name.startswith(_PREFERRED_PREFIXES)


def _bound_annotations(annotations: dict[str, str], limits: LimitsConfig) -> dict[str, str]:
    n = limits.unsigned_string_bytes
    names = sorted((k for k in annotations if k != ANNOTATION_CUT), key=lambda k: (not _preferred(k), k))
    kept_names = names[: max(0, limits.unsigned_annotations)]
    dropped = len(names) - len(kept_names)
    out: dict[str, str] = {}
    cut = 0
    for name in kept_names:
        value = annotations[name]
        value = value if isinstance(value, str) else str(value)
        short_name, short_value = cut_string(name, n), cut_string(value, n)
        cut += (short_name != name) + (short_value != value)
        out[short_name] = short_value
    if dropped or cut or ANNOTATION_CUT in annotations:
        parts = []
        if dropped:
            parts.append(f"{dropped} of {len(names)} annotations dropped (limits.unsignedAnnotations: {limits.unsigned_annotations})")
        if cut:
            parts.append(f"{cut} names or values cut to {n} bytes (limits.unsignedStringBytes)")
        if ANNOTATION_CUT in annotations and not parts:
            parts.append("the registry's own dev.stellaops/cut annotation was dropped")
        out[ANNOTATION_CUT] = "; ".join(parts)
    return out


def _bound_error(e: ErrorItem, limits: LimitsConfig) -> ErrorItem:
    n = limits.unsigned_string_bytes
    reason = cut_string(e.reason, min(n, 64))
    message = cut_string(e.message, n * _MESSAGE_FACTOR)
    hint = cut_string(e.hint, n * _MESSAGE_FACTOR)
    if (reason, message, hint) == (e.reason, e.message, e.hint):
        return e
    return ErrorItem(reason, message, hint)


def _bound_attestation(a: AttestationResult, limits: LimitsConfig) -> AttestationResult:
    n = limits.unsigned_string_bytes
    changes: dict[str, Any] = {}
    annotations = _bound_annotations(a.annotations, limits)
    if annotations != a.annotations:
        changes["annotations"] = annotations
    if not a.verified:  # the type an unverifiable envelope claims is unsigned
        pt = cut_string(a.predicate_type, n)
        if pt != a.predicate_type:
            changes["predicate_type"] = pt
    if not a.created_signed:
        created = cut_string(a.created, n)
        if created != a.created:
            changes["created"] = created
    errors = tuple(_bound_error(e, limits) for e in a.errors)
    if errors != a.errors:
        changes["errors"] = errors
    return replace(a, **changes) if changes else a


def verdict_size(verdict: Verdict) -> int:
    """Bytes of the verdict's compact JSON (what the cache stores and the answer carries)."""
    return len(json.dumps(verdict.to_json(), separators=(",", ":")).encode())


def _limit_error(message: str) -> ErrorItem:
    return ErrorItem(LIMIT_EXCEEDED, message, "raise limits.verdictBytes, or prune the attestations the registry or store holds for this image")


def _reasons_text(attestations: list[AttestationResult]) -> str:
    counts = Counter(e.reason for a in attestations for e in a.errors) or Counter(["no reason"])
    return ", ".join(f"{r} x{c}" for r, c in sorted(counts.items()))


def _collapse_errors(errors: tuple[ErrorItem, ...], limits: LimitsConfig) -> tuple[ErrorItem, ...]:
    """One error per reason (the first, its message cut to the bare string bound), with a count."""
    first: dict[str, ErrorItem] = {}
    counts: Counter[str] = Counter()
    for e in errors:
        counts[e.reason] += 1
        first.setdefault(e.reason, e)
    out = []
    for reason, e in first.items():
        more = counts[reason] - 1
        message = cut_string(e.message, limits.unsigned_string_bytes)
        if more:
            message += f" (and {more} more {reason} errors, dropped: limits.verdictBytes)"
        out.append(ErrorItem(reason, message, cut_string(e.hint, limits.unsigned_string_bytes)))
    return tuple(out)


def bound_verdict(verdict: Verdict, limits: LimitsConfig) -> Verdict:
    """The verdict with every unsigned string and the whole within ``limits`` (module docstring)."""
    atts = tuple(_bound_attestation(a, limits) for a in verdict.attestations)
    errors = tuple(_bound_error(e, limits) for e in verdict.errors)
    v = replace(verdict, attestations=atts, errors=errors)
    details = getattr(verdict, "platform_details", None)
    if details:  # the platform strings an index lists are unsigned too (the list itself is never cut)
        cut = tuple(
            d if len(d.platform.encode()) <= limits.unsigned_string_bytes else replace(d, platform=cut_string(d.platform, limits.unsigned_string_bytes))
            for d in details
        )
        if cut != details:
            v = replace(v, platform_details=cut)
    cap = limits.verdict_bytes
    if cap <= 0 or verdict_size(v) <= cap:
        return v
    original = verdict_size(v)

    # 1. the detail of unverified attestations: annotations and the unsigned created
    unverified = [a for a in v.attestations if not a.verified]
    if unverified:
        slim = tuple(
            a if a.verified else replace(a, annotations={}, created="" if not a.created_signed else a.created, predicate_summary={})
            for a in v.attestations
        )
        v = replace(
            v,
            attestations=slim,
            errors=(*v.errors, _limit_error(f"verdict of {original} bytes is over limits.verdictBytes ({cap}): annotations and created of {len(unverified)} unverified attestations dropped")),
        )
        if verdict_size(v) <= cap:
            return v

    # 2. the unverified attestations themselves (their reasons counted in the error)
    if unverified:
        v = replace(
            v,
            attestations=tuple(a for a in v.attestations if a.verified),
            errors=(*v.errors, _limit_error(f"{len(unverified)} unverified attestations omitted to stay within limits.verdictBytes ({cap}); their reasons: {_reasons_text(unverified)}")),
        )
        if verdict_size(v) <= cap:
            return v

    # 3. repeated errors: one per reason
    collapsed = _collapse_errors(v.errors, limits)
    if collapsed != v.errors:
        v = replace(v, errors=collapsed)
        if verdict_size(v) <= cap:
            return v

    # 4. the verified attestations alone are too big: keep none (every policy denies), say why
    verified = len(v.attestations)
    final = replace(
        v,
        attestations=(),
        errors=(
            *_collapse_errors(v.errors, limits),
            _limit_error(
                f"verdict is {verdict_size(v)} bytes with only its {verified} verified attestations, over limits.verdictBytes ({cap}); "
                "no attestation is reported, so every policy denies"
            ),
        ),
    )
    if verdict_size(final) <= cap:
        return final
    # even the errors do not fit (a tiny limit): the reasons alone
    reasons = sorted({e.reason for e in final.errors})
    return replace(final, errors=tuple(ErrorItem(r, "", "") for r in reasons))


__all__ = ["bound_verdict", "cut_string", "verdict_size", "ANNOTATION_CUT"]
