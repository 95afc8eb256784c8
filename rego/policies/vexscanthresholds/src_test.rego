package stellaopsvexscanthresholds_test

import data.stellaopsvexscanthresholds as policy
import data.stub

_violations(images, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod(images), params)
		with external_data as stub.external_data
		with time.now_ns as stub.now
}

_limits := {"maxCounts": {"critical": 0, "high": 0}}

test_violation_when_vex_from_other_signer_does_not_count if {
	params := object.union(_limits, {"vexSigners": {"authorities": ["release-key"]}})
	_violations([stub.vulnerable], params) == {"container <c0> image <registry.example.com/app:vulnerable>: its newest scan-result <scan-2026-11-24> (2026-11-24T10:00:00Z) finds critical 1 (max 0), high 1 (max 0); rebuild with fixed packages, or clear findings with a VEX or the constraint's ignore list"}
}

test_success_vex_not_affected_and_fixed_do_not_count if {
	# Any configured authority may sign VEX here: 2001 (not_affected), 2003 (fixed) and 2004 clear;
	# 2002 stays (its newest statement says affected) until it is on the ignore list.
	msgs := _violations([stub.vulnerable], _limits)
	some msg in msgs
	contains(msg, "finds critical 1 (max 0);")
	_violations([stub.vulnerable], object.union(_limits, {"ignore": ["CVE-2026-2002"]})) == set()
}

test_success_vex_signers_default_to_signers if {
	params := object.union(_limits, {"signers": {"authorities": ["release-key"]}, "ignore": ["CVE-2026-2002"]})
	msgs := _violations([stub.vulnerable], params)
	some msg in msgs
	contains(msg, "finds high 1 (max 0)")
}

test_success_release_passes if {
	_violations([stub.release], object.union(_limits, {"maxAgeHours": 48})) == set()
}

test_violation_when_unsigned_or_provider_fails if {
	count(_violations([stub.unsigned], _limits)) == 1
	count(_violations([stub.unreachable], _limits)) == 1
}

# ---- multi-arch indexes: VEX of one platform never clears another's findings (issue 16 item 1) --

test_violation_when_index_borrows_another_platforms_vex if {
	msgs := _violations([stub.index_vex_borrow], _limits)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: its newest scan-result <scan-flawed-release> (2026-11-25T08:00:00Z) finds critical 1 (max 0)", [stub.amd64_digest, stub.index_digest]))
	every m in msgs {
		not contains(m, stub.arm64_digest)
	}
}

test_violation_when_index_borrows_another_platforms_newer_scan if {
	msgs := _violations([stub.index_borrow], _limits)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: its newest scan-result <scan-flawed>", [stub.amd64_digest, stub.index_digest]))
}

test_success_index_controls if {
	_violations([stub.index_platforms_pass], _limits) == set()
	_violations([stub.index_own_pass], _limits) == set()
}

test_violation_when_index_platform_is_unattested if {
	msgs := _violations([stub.index_bare_platform], _limits)
	some msg in msgs
	contains(msg, stub.bare_amd64_digest)
}
