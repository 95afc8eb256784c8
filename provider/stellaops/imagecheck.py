"""The one per-image pipeline: digest → discovery (registry and store) → limits and budgets →
verification of each candidate → :class:`Verdict` with its platforms.

Both the provider (``Engine.verify_key``, which adds its caches and ``bounds.bound_verdict``
around it) and ``stella attest verify`` call :func:`verify_image`, so the CLI cannot be blind to
what admission sees (imported attestations, every platform of an index, the byte budgets).
Where the CLI must behave like cosign instead of like admission, the difference is a named
parameter of :func:`verify_image` (``deadline=None``: no admission deadline;
``store=None``: ``--no-store``), never a second copy of the chain.

:func:`index_gate` is the every-platform rule of CONTRACTS.md for callers that decide on one
predicate type (the CLI's exit code): an index passes only on its own attestations, or when each
platform passes on its own; no decision mixes attestations of different digests.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .budget import ByteBudget
from .candidate import KIND_BUNDLE, KIND_DSSE, SOURCE_IMPORTED, Candidate
from .config import LimitsConfig
from .errors import StellaError
from .reference import Reference
from .trust import TrustConfig
from .verdict import AttestationResult, ErrorItem, PlatformDetail, Verdict

VerifyFn = Callable[..., AttestationResult]


class DeadlineExceeded(StellaError):
    reason = "DEADLINE_EXCEEDED"


def resolve_digest(client: Any, ref: Reference) -> tuple[str, str | None]:
    """The manifest digest ``ref`` names now, and its media type when the registry said."""
    if ref.digest:
        return ref.digest, None
    desc = client.resolve(ref)
    return desc.digest, (getattr(desc, "media_type", None) or None)


def _deadline_check(deadline: float | None, key: str) -> Callable[[], None]:
    def check() -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded(
                f"{key}: the request deadline passed while verifying its attestations; stopped",
                hint="retry; if it keeps happening, check the image's attestations (junk slows verification), the "
                "registry's latency, or raise server.deadlineSeconds (below the Provider's spec.timeout)",
            )

    return check


def verify_image(
    client: Any,
    ref: Reference,
    key: str,
    *,
    trust: TrustConfig,
    limits: LimitsConfig,
    digest: str | None = None,
    media_type: str | None = None,
    store: Any = None,
    deadline: float | None = None,
    request_budget: ByteBudget | None = None,
    verify: VerifyFn | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[Candidate, AttestationResult], None] | None = None,
) -> Verdict:
    """Verify the image ``ref`` (``key`` as the caller named it) and return its verdict.

    Raises a definitive :class:`StellaError` when no verdict can be given (not found, an index
    over ``limits.platformManifests``/``limits.indexDepth``, a malformed index, not allowed,
    registry evidence not read because of a limit: :class:`discovery.EvidenceCut`, since what
    was not read could change the decision), a
    transient one when retrying may succeed (registry or store down, a transient failure while
    verifying one attestation, the per-request byte budget used up by other keys,
    ``deadline`` passed: checked between sources and between candidates).

    ``deadline`` (``time.monotonic()``): the provider's admission deadline; the CLI passes None
    (as cosign, it waits for its registry). ``store``: the imported-attestation store, None
    leaves it out (the CLI's ``--no-store``). ``on_start`` (with the number of candidates) and
    ``on_result`` (after each, also for a copy not verified again): the CLI's progress bar. ``verify``: ``verify_candidate`` unless a test passes another.
    """
    if verify is None:
        from .verify.attestation import verify_candidate as verify
    check = _deadline_check(deadline, key)
    if digest is None:
        digest, media_type = resolve_digest(client, ref)
    from .discovery import Cut, discover_all, refusal

    found = discover_all(
        client,
        ref,
        digest,
        store=store,
        media_type=media_type,
        byte_budget=limits.attestation_bytes_per_image,
        request_budget=request_budget,
        index_depth=limits.index_depth,
        max_platforms=limits.platform_manifests,
        store_per_tenant=limits.attestations_per_image,
        check_deadline=check,
        envelope_bytes=limits.envelope_bytes,
        store_after_cut=False,  # a cut refuses the key: the store's rows would not be looked at
    )
    errors: list[ErrorItem] = [ErrorItem(p.reason, f"{p.location or p.attached_to}: {p.message}", "") for p in found.problems]
    cuts = list(found.cuts)
    candidates: list[Candidate] = []
    for c in found.candidates:
        if len(c.data) > limits.envelope_bytes:
            message = f"{c.location or c.source}: attestation of {len(c.data)} bytes is over limits.envelopeBytes ({limits.envelope_bytes}); not verified"
            if c.source != SOURCE_IMPORTED:
                cuts.append(Cut(c.attached_to, c.location, "limits.envelopeBytes", len(c.data), message))
                continue
            errors.append(ErrorItem("LIMIT_EXCEEDED", message, "raise limits.envelopeBytes if attestations this large are expected"))
            continue
        candidates.append(c)
    registry = [c for c in candidates if c.source != SOURCE_IMPORTED]
    if len(registry) > limits.attestations_per_image:
        cuts.append(
            Cut(digest, "", "limits.attestationsPerImage", 0,
                f"{len(registry)} registry attestations, {len(registry) - limits.attestations_per_image} more than "
                f"limits.attestationsPerImage ({limits.attestations_per_image})")
        )
    refused = refusal(cuts, digest)
    if refused is not None:
        raise refused  # definitive, per key: every policy denies (docs/discovery.md "Evidence that was not read")
    candidates = within_count_limit(candidates, digest, errors, limits.attestations_per_image)
    results = verify_candidates(
        candidates, digest, trust, verify=verify, check_deadline=check, on_start=on_start, on_result=on_result,
        deadline=deadline, key=key,
    )
    if not results and not errors:
        errors.append(
            ErrorItem("NO_ATTESTATION", f"no attestation is attached to {ref.name}@{digest}", "attach one with `stella attest attach` or `cosign attest`")
        )
    details = tuple(PlatformDetail(p.digest, p.platform, p.index) for p in found.platforms if p.digest != digest)
    return Verdict(
        image=key,
        digest=digest,
        attestations=tuple(results),
        errors=tuple(errors),
        platforms=tuple(d.digest for d in details),
        platform_details=details,
    )


def within_count_limit(candidates: list[Candidate], digest: str, errors: list[ErrorItem], limit: int) -> list[Candidate]:
    """At most ``limits.attestationsPerImage`` candidates *per budget*: the registry is one
    budget and each import tenant another, so no tenant's imports (which anyone with a token
    can make about any digest) can crowd out the registry's or another tenant's attestations.
    (:func:`verify_image` refuses a key whose registry candidates are over the limit before
    calling this; a tenant over it gets an error naming it, never a refusal.)"""
    budgets: dict[str, list[Candidate]] = {}
    for c in candidates:
        budget = f"tenant:{c.annotations.get('dev.stellaops/tenant', '')}" if c.source == SOURCE_IMPORTED else "registry"
        budgets.setdefault(budget, []).append(c)
    kept: list[Candidate] = []
    for budget, group in budgets.items():
        if len(group) > limit:
            errors.append(
                ErrorItem(
                    "LIMIT_EXCEEDED",
                    f"{len(group)} attestations for {digest} from {budget}; only {limit} were verified"
                    + (" (the newest imports of each digest first)" if budget != "registry" else ""),
                    "raise limits.attestationsPerImage or prune old attestations",
                )
            )
            # the registry's in discovery order; a tenant's as the store gives them (StoreFind:
            # newest first per digest), each digest's newest before any digest's older ones
            group = (group if budget == "registry" else _newest_of_each_digest_first(group))[:limit]
        kept.extend(group)
    return kept


def _newest_of_each_digest_first(group: list[Candidate]) -> list[Candidate]:
    """Round-robin over the digests the candidates are attached to (index, platforms), keeping
    each digest's own order (the store's: newest first): on an index, an older import of one
    digest never displaces the newest import of another."""
    rank: dict[str, int] = {}
    ordered: list[tuple[int, int, Candidate]] = []
    for i, c in enumerate(group):
        r = rank.get(c.attached_to, 0)
        rank[c.attached_to] = r + 1
        ordered.append((r, i, c))
    return [c for _r, _i, c in sorted(ordered, key=lambda t: (t[0], t[1]))]


def _sort_key(a: AttestationResult) -> tuple[int, int, str]:
    # verified first, then newest signed time first (only signed/logged times count)
    return (0 if a.verified else 1, 0 if a.created_signed else 1, _neg(a.created if a.created_signed else ""))


def _neg(s: str) -> str:
    # RFC 3339 UTC strings sort lexically; invert for "newest first" inside an ascending sort.
    return "".join(chr(0x10FFFF - ord(c)) for c in s)


def _identity(c: Candidate) -> tuple[str, str, str, Any]:
    """What verification reads of a candidate: identical identities verify identically."""
    return (c.attached_to, c.kind, hashlib.sha256(c.data).hexdigest(), c.cosign)


def _verification_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Distinct candidates, sigstore bundles first (they carry the most verification material:
    certificate, log entry, timestamps), otherwise in discovery order."""
    seen: set[tuple[str, str, str, Any]] = set()
    distinct: list[Candidate] = []
    for c in candidates:
        ident = _identity(c)
        if ident in seen:
            continue  # the same bytes found again (an imported copy of an .att layer, two tenants)
        seen.add(ident)
        distinct.append(c)
    return [c for c in distinct if c.kind == KIND_BUNDLE] + [c for c in distinct if c.kind != KIND_BUNDLE]


def verify_candidates(
    candidates: list[Candidate],
    digest: str,
    trust: TrustConfig,
    *,
    verify: VerifyFn,
    check_deadline: Callable[[], None] = lambda: None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[Candidate, AttestationResult], None] | None = None,
    deadline: float | None = None,
    key: str = "",
) -> list[AttestationResult]:
    """Each candidate verified on its own, each envelope once.

    Before verifying: byte-identical candidates are verified once; a DSSE candidate whose bytes
    are exactly the envelope of an already *verified* copy on the same digest (cosign's layer
    bytes = the bundle's envelope) is not parsed again. A copy whose first found version did not
    verify is still verified (another container may carry the certificate or log entry it
    lacked); results are then kept once per envelope digest, a verified copy winning.

    ``check_deadline`` runs before each candidate (raises: the key stops, transient). With a
    ``deadline``, a key whose remaining candidates cannot be verified in time at the rate
    measured so far stops at once (:func:`_projected_past_deadline`): it would end transient
    anyway, and stopping it early leaves the CPU to the request's other keys (one image's junk
    must not delay another image past the deadline; verification holds the GIL). A
    transient failure of one candidate (its Rekor lookup, the TUF mirror) propagates: the key
    goes to ``systemError`` (``engine`` module docstring)."""
    by_envelope: dict[tuple[str, str], AttestationResult] = {}
    unnamed: list[AttestationResult] = []
    verified_envelopes: dict[tuple[str, str], AttestationResult] = {}
    order = _verification_order(candidates)
    if on_start is not None:
        on_start(len(order))
    verified_sizes: dict[str, int] = {}  # per digest: the largest candidate that verified
    left = sum(len(c.data) for c in order)  # bytes still to verify
    spent_bytes, spent_seconds = 0, 0.0
    for c in order:
        left -= len(c.data)
        target = c.attached_to or digest
        done = None
        if c.kind == KIND_DSSE and target in verified_sizes:
            done = verified_envelopes.get((target, "sha256:" + hashlib.sha256(c.data).hexdigest()))
            # another serialisation of a verified envelope (cosign's `keyid: ""`, key order): its
            # canonical digest, from the envelope alone (the statement is not parsed), only for a
            # candidate about as large as what verified, so junk of another size costs nothing here
            if done is None and len(c.data) <= 2 * verified_sizes[target] + 4096:
                done = verified_envelopes.get((target, _canonical_envelope_digest(c.data)))
        if done is not None:  # this envelope already verified for this digest (from its bundle)
            if on_result is not None:
                on_result(c, done)
            continue
        check_deadline()
        _projected_past_deadline(deadline, key, left + len(c.data), spent_bytes, spent_seconds)
        started = time.monotonic()
        res = verify(c, target, trust)
        spent_seconds += time.monotonic() - started
        spent_bytes += len(c.data)
        if not res.digest:
            res = replace(res, digest=target)
        if on_result is not None:
            on_result(c, res)
        if not res.envelope_digest:
            unnamed.append(res)
            continue
        slot = (res.digest, res.envelope_digest)
        if res.verified:
            verified_envelopes[(target, res.envelope_digest)] = res
            verified_sizes[target] = max(verified_sizes.get(target, 0), len(c.data))
        prev = by_envelope.get(slot)
        # the same envelope found in several places counts once; a verified copy wins
        if prev is None or (res.verified and not prev.verified):
            by_envelope[slot] = res
    return sorted([*by_envelope.values(), *unnamed], key=_sort_key)


# the projection needs a sample worth measuring: at least this many bytes verified already
_PROJECTION_SAMPLE_BYTES = 1024 * 1024


def _projected_past_deadline(deadline: float | None, key: str, left: int, spent_bytes: int, spent_seconds: float) -> None:
    """Raise DEADLINE_EXCEEDED now when the ``left`` bytes of candidates still to verify would
    take past ``deadline`` at the rate measured on this key so far (only once at least 1 MiB
    was verified, so small attestations are never judged on a noisy sample)."""
    if deadline is None or spent_bytes < _PROJECTION_SAMPLE_BYTES or spent_seconds <= 0:
        return
    remaining = deadline - time.monotonic()
    projected = left * spent_seconds / spent_bytes
    if projected > remaining:
        raise DeadlineExceeded(
            f"{key}: {left} bytes of attestations are left to verify, about {projected:.2f}s at this key's rate, "
            f"and {max(remaining, 0):.2f}s remain before the request deadline; stopped",
            hint="retry; if it keeps happening, prune the image's attestations (imported junk counts), "
            "lower limits.attestationBytesPerImage or raise server.deadlineSeconds (below the Provider's spec.timeout)",
        )


def _canonical_envelope_digest(data: bytes) -> str:
    """sha256 of the envelope's canonical serialisation (what verification names it by), "" when
    it does not parse (verification then says why)."""
    from . import dsse

    try:
        return "sha256:" + hashlib.sha256(dsse.parse_envelope(data).to_bytes()).hexdigest()
    except (StellaError, ValueError, TypeError):
        return ""


@dataclass(frozen=True)
class GateResult:
    """The every-platform rule applied to one predicate type."""

    passed: bool
    covered_by: str  # "index" (its own attestations), "platforms" (each its own), or "" (failed)
    missing: tuple[str, ...] = ()  # platform digests without an accepted attestation of their own


def index_gate(verdict: Verdict, accepts: Callable[[AttestationResult], bool]) -> GateResult:
    """CONTRACTS.md's rule: the image digest's own attestations satisfy ``accepts``, or (for an
    index) each platform digest, on its own attestations alone, does. Attestations are matched
    to digests by the digest their verified subject covers (``AttestationResult.digest``)."""
    own = {a.digest for a in verdict.attestations if a.verified and accepts(a)}
    if verdict.digest in own:
        return GateResult(True, "index" if verdict.platforms else "image")
    if not verdict.platforms:
        return GateResult(False, "")
    missing = tuple(p for p in verdict.platforms if p not in own)
    return GateResult(not missing, "" if missing else "platforms", missing)


__all__ = ["DeadlineExceeded", "GateResult", "index_gate", "resolve_digest", "verify_candidates", "verify_image", "within_count_limit"]
