package stellaopsscanthresholds_test

import data.stellaopsscanthresholds as policy
import data.stub

_strict := {"maxCounts": {"critical": 0, "high": 0}, "maxAgeHours": 72}

_violations(images, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod(images), params)
		with external_data as stub.external_data
		with time.now_ns as stub.now
}

test_success_release_within_thresholds if {
	_violations([stub.release], _strict) == set()
}

test_violation_when_counts_exceed if {
	_violations([stub.vulnerable], _strict) == {"container <c0> image <registry.example.com/app:vulnerable>: its newest scan-result <scan-2026-11-24> (2026-11-24T10:00:00Z) finds critical 2 (max 0), high 2 (max 0); rebuild with fixed packages, or clear findings with a VEX or the constraint's ignore list"}
}

test_success_vex_is_not_honoured_here if {
	# This policy ignores VEX: the vulnerable image stays over (see vexscanthresholds).
	count(_violations([stub.vulnerable], {"maxCounts": {"critical": 1, "high": 0}, "ignore": ["CVE-2026-2003", "CVE-2026-2004"]})) == 1
	_violations([stub.vulnerable], {"maxCounts": {"critical": 0, "high": 0}, "ignore": ["CVE-2026-2001", "CVE-2026-2002", "CVE-2026-2003", "CVE-2026-2004"]}) == set()
}

test_violation_when_medium_limit_and_ignore_list if {
	msgs := _violations([stub.release], {"maxCounts": {"medium": 0}})
	some msg in msgs
	contains(msg, "finds medium 1 (max 0)")
	_violations([stub.release], {"maxCounts": {"medium": 0}, "ignore": ["CVE-2026-1001"]}) == set()
}

test_violation_when_scan_too_old if {
	_violations([stub.stale], _strict) == {"container <c0> image <registry.example.com/app:stale>: its newest scan-result <scan-2026-09-01> is 2042 hours old (max 72); scan the image again and attach the result"}
	_violations([stub.stale], {"maxCounts": {"critical": 0}}) == set()
}

_unsigned_time(_) := {"responses": [[stub.stale, json.patch(stub.items[stub.stale].value, [{"op": "remove", "path": "/attestations/0"}])]], "errors": [], "system_error": "", "status_code": 200}

test_violation_when_scan_time_unsigned if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.stale]), {"maxAgeHours": 72})
		with external_data as _unsigned_time
		with time.now_ns as stub.now
	msgs == {"container <c0> image <registry.example.com/app:stale>: its newest scan-result <scan-2026-11-24> has no signed or logged time, so its age (max 72 hours) cannot be checked; attach a scan whose predicate carries scannedAt"}
}

test_violation_when_no_verified_scan if {
	msgs := _violations([stub.tampered], _strict)
	some msg in msgs
	contains(msg, "none verified by the provider (SIGNATURE_INVALID")
	count(_violations([stub.unsigned], _strict)) == 1
}

test_violation_when_signer_not_allowed if {
	msgs := _violations([stub.release], object.union(_strict, {"signers": {"authorities": ["vendor-key"]}}))
	some msg in msgs
	contains(msg, "are signed by authority <release-key>")
}

test_violation_when_provider_fails if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _strict)
		with external_data as stub.send_failure
		with time.now_ns as stub.now
	count(msgs) == 1
	count(_violations([stub.invalid_reference], _strict)) == 1
}

# ---- multi-arch indexes: the newest scan is chosen per digest (issue 16 item 1) -----------------

test_violation_when_index_borrows_another_platforms_newer_scan if {
	msgs := _violations([stub.index_borrow], {"maxCounts": {"critical": 0}})
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: its newest scan-result <scan-flawed> (2026-11-24T06:00:00Z) finds critical 1 (max 0)", [stub.amd64_digest, stub.index_digest]))
	every m in msgs {
		not contains(m, stub.arm64_digest)
	}
}

test_success_index_controls if {
	_violations([stub.index_platforms_pass], {"maxCounts": {"critical": 0}}) == set()
	_violations([stub.index_own_pass], {"maxCounts": {"critical": 0}}) == set()
}

test_violation_when_index_platform_has_no_scan if {
	msgs := _violations([stub.index_bare_platform], {"maxCounts": {"critical": 0}})
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: no attestation of type <stellaops.io/predicates/scan-result@v1> is attached", [stub.bare_amd64_digest, stub.index_digest]))
}
