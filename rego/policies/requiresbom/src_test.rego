package stellaopsrequiresbom_test

import data.stellaopsrequiresbom as policy
import data.stub

_violations(images, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod(images), params)
		with external_data as stub.external_data
}

test_success_release_has_cyclonedx_sbom if {
	_violations([stub.release], {"formats": ["cyclonedx-json", "spdx-json"], "minComponents": 1}) == set()
	_violations([stub.release], {}) == set()
}

test_violation_when_format_not_allowed if {
	_violations([stub.release], {"formats": ["spdx-json"]}) == {"container <c0> image <registry.example.com/app:v1.0.0>: its newest SBOM (2026-11-24T09:00:00Z) has format <cyclonedx-json>; allowed formats: [\"spdx-json\"]"}
}

test_violation_when_too_few_components if {
	_violations([stub.stale], {"minComponents": 1}) == {"container <c0> image <registry.example.com/app:stale>: its newest SBOM (2026-09-01T10:00:00Z) lists 0 components; at least 1 are required"}
}

test_violation_when_sbom_missing_or_unverified if {
	msgs := _violations([stub.unsigned, stub.tampered], {})
	count(msgs) == 2
	some msg in msgs
	contains(msg, "none verified by the provider (SUBJECT_MISMATCH")
}

test_violation_when_provider_fails if {
	_violations([stub.invalid_reference], {}) == {"container <c0> image <registry.example.com/app@sha256:nothex>: the StellaOps provider refused image <registry.example.com/app@sha256:nothex>: INVALID_REFERENCE: digest in 'registry.example.com/app@sha256:nothex' 'sha256:nothex' must have exactly 64 lower-case hex characters after sha256:, got 6"}
}

# ---- multi-arch indexes (issue 16 item 1) -------------------------------------------------------

test_violation_when_index_borrows_another_platforms_sbom if {
	msgs := _violations([stub.index_borrow], {"formats": ["cyclonedx-json"], "minComponents": 1})
	some fmt in msgs
	contains(fmt, sprintf("platform <%s> (linux/amd64) of index <%s>: its newest SBOM (2026-11-24T06:00:00Z) has format <spdx-json>", [stub.amd64_digest, stub.index_digest]))
	every m in msgs {
		not contains(m, stub.arm64_digest)
	}
}

test_success_index_controls if {
	_violations([stub.index_platforms_pass], {"formats": ["cyclonedx-json"], "minComponents": 1}) == set()
	_violations([stub.index_own_pass], {"formats": ["cyclonedx-json"], "minComponents": 1}) == set()
}

test_violation_when_index_platform_is_unattested if {
	msgs := _violations([stub.index_bare_platform], {})
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: no attestation of type <stellaops.io/predicates/sbom@v1> is attached", [stub.bare_amd64_digest, stub.index_digest]))
}
