"""bound_verdict: nothing unsigned is copied into a verdict beyond a small bound (issue 16 item 6)."""

from __future__ import annotations

import json

from stellaops.bounds import ANNOTATION_CUT, bound_verdict, cut_string, verdict_size
from stellaops.config import LimitsConfig
from stellaops.verdict import AttestationResult, ErrorItem, Signer, TlogResult, Verdict

D = "sha256:" + "a" * 64


def _unverified(i: int, big: int = 10_000, annotations: int = 40) -> AttestationResult:
    return AttestationResult(
        predicate_type="https://evil.example/" + "t" * big,
        verified=False,
        source="referrers",
        digest=D,
        created="x" * big,
        annotations={f"k{j:03d}": "v" * big for j in range(annotations)},
        errors=(ErrorItem("SIGNATURE_INVALID", "at registry: " + "m" * big, "h" * big),),
        envelope_digest=f"sha256:{i:064x}",
    )


def _verified() -> AttestationResult:
    return AttestationResult(
        predicate_type="https://slsa.dev/provenance/v1",
        verified=True,
        source="referrers",
        digest=D,
        signers=(Signer(kind="key", authority="release", key_id="sha256:" + "b" * 64),),
        tlog=TlogResult(verified=True, log_index=1, integrated_time=1),
        created="2026-01-01T00:00:00Z",
        created_signed=True,
        annotations={"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        predicate={"buildDefinition": {"buildType": "x"}},
        envelope_digest="sha256:" + "c" * 64,
    )


def test_cut_string_marks_the_cut_and_stays_within_the_bound() -> None:
    assert cut_string("short", 256) == "short"
    out = cut_string("é" * 1000, 256)
    assert len(out.encode()) <= 256
    assert out.endswith("bytes]") and "cut" in out
    out.encode("utf-8")  # no split character


def test_every_unsigned_string_is_cut_and_annotations_counted() -> None:
    limits = LimitsConfig()
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, attestations=(_unverified(1),)), limits)
    a = v.attestations[0]
    assert len(a.predicate_type.encode()) <= limits.unsigned_string_bytes
    assert len(a.created.encode()) <= limits.unsigned_string_bytes
    assert len(a.annotations) == limits.unsigned_annotations + 1
    assert "24 of 40 annotations dropped" in a.annotations[ANNOTATION_CUT]
    assert all(len(val.encode()) <= limits.unsigned_string_bytes for val in a.annotations.values() if val)
    assert len(a.errors[0].message.encode()) <= 4 * limits.unsigned_string_bytes
    assert a.errors[0].reason == "SIGNATURE_INVALID"


def test_signed_fields_of_verified_attestations_are_kept() -> None:
    good = _verified()
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, attestations=(good,)), LimitsConfig())
    assert v.attestations == (good,)


def test_over_the_verdict_cap_unverified_detail_goes_first_and_is_reported() -> None:
    limits = LimitsConfig(verdict_bytes=64 * 1024)
    atts = (_verified(), *(_unverified(i) for i in range(200)))
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, attestations=atts), limits)
    assert verdict_size(v) <= limits.verdict_bytes
    assert _verified() in v.attestations
    reasons = [e.reason for e in v.errors]
    assert "LIMIT_EXCEEDED" in reasons
    assert any("unverified" in e.message for e in v.errors)
    json.dumps(v.to_json())


def test_verified_attestations_alone_over_the_cap_deny_rather_than_truncate() -> None:
    limits = LimitsConfig(verdict_bytes=2048)
    big = AttestationResult(**{**_verified().__dict__, "predicate": {"x": "y" * 10_000}})
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, attestations=(big,)), limits)
    assert v.attestations == ()
    assert verdict_size(v) <= limits.verdict_bytes
    assert any(e.reason == "LIMIT_EXCEEDED" and "every policy denies" in e.message for e in v.errors)


def test_many_verdict_errors_collapse_to_one_per_reason() -> None:
    limits = LimitsConfig(verdict_bytes=16 * 1024)
    errs = tuple(ErrorItem("MANIFEST_INVALID", f"referrer {i}: " + "z" * 900, "") for i in range(500))
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, errors=errs), limits)
    assert verdict_size(v) <= limits.verdict_bytes
    assert {e.reason for e in v.errors} >= {"MANIFEST_INVALID"}
    assert any("499 more MANIFEST_INVALID" in e.message for e in v.errors)


def test_platform_strings_an_index_lists_are_cut_but_never_dropped() -> None:
    from stellaops.verdict import PlatformDetail

    details = tuple(PlatformDetail(digest=f"sha256:{i:064x}", platform="linux/" + "z" * 5000, index=D) for i in range(3))
    v = bound_verdict(Verdict(image="r/x@" + D, digest=D, platforms=tuple(d.digest for d in details), platform_details=details), LimitsConfig())
    assert len(v.platform_details) == 3 and len(v.platforms) == 3
    assert all(len(d.platform.encode()) <= 256 for d in v.platform_details)
