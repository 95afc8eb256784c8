package stellaopsslsaprovenance_test

import data.stellaopsslsaprovenance as policy
import data.stub

_violations(images, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod(images), params)
		with external_data as stub.external_data
}

_params := {
	"builderIds": ["https://github.com/actions/runner/github-hosted"],
	"sourcePattern": "git\\+https://github\\.com/stellaops/[^/]+@refs/heads/main",
	"signers": {"identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/stellaops/.*",
	}]},
}

test_success_release_provenance if {
	_violations([stub.release], _params) == set()
	_violations([stub.release], {}) == set()
}

test_violation_when_source_not_matching if {
	_violations([stub.vulnerable], object.remove(_params, ["builderIds"])) == {"container <c0> image <registry.example.com/app:vulnerable>: no verified SLSA provenance comes from an allowed builder and source: found builder <https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0> source <git+https://github.com/evil/app@refs/heads/main>; allowed builders [], source pattern <git\\+https://github\\.com/stellaops/[^/]+@refs/heads/main>"}
}

test_violation_when_source_pattern_matches_only_a_prefix if {
	params := object.union(_params, {"sourcePattern": "git\\+https://github\\.com/stellaops/app"})
	count(_violations([stub.release], params)) == 1
}

test_violation_when_builder_not_allowed if {
	count(_violations([stub.release], {"builderIds": ["https://example.com/other-builder"]})) == 1
}

test_violation_when_only_v1_accepted_and_image_has_v02 if {
	msgs := _violations([stub.vulnerable], {"predicateTypes": ["slsaprovenance1"]})
	msgs == {"container <c0> image <registry.example.com/app:vulnerable>: no attestation of type <https://slsa.dev/provenance/v1> is attached; attach one signed by a configured authority (stella attest attach)"}
}

test_violation_when_keyless_identity_differs if {
	params := object.union(_params, {"signers": {"identities": [{"issuer": "https://token.actions.githubusercontent.com", "subjectRegExp": "https://github\\.com/other/.*"}]}})
	msgs := _violations([stub.release], params)
	some msg in msgs
	contains(msg, "are signed by authority <ci> (keyless https://github.com/stellaops/app/.github/workflows/release.yml@refs/heads/main from https://token.actions.githubusercontent.com)")
}

test_violation_when_unsigned_or_provider_fails if {
	msgs := _violations([stub.unsigned], _params)
	some msg in msgs
	contains(msg, "no attestation of type <https://slsa.dev/provenance/v1> is attached (provider: NO_ATTESTATION")
	contains(msg, " and no attestation of type <https://slsa.dev/provenance/v0.2> is attached")
	count(_violations([stub.unreachable], _params)) == 1
}

# ---- multi-arch indexes (issue 16 item 1) -------------------------------------------------------

_main := {"builderIds": ["https://github.com/actions/runner/github-hosted"], "sourcePattern": "git\\+https://github\\.com/stellaops/[^/]+@refs/heads/main"}

test_violation_when_index_borrows_another_platforms_provenance if {
	msgs := _violations([stub.index_borrow], _main)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: no verified SLSA provenance comes from an allowed builder and source: found builder <https://github.com/actions/runner/github-hosted> source <git+https://github.com/stellaops/app@refs/heads/feature-x>", [stub.amd64_digest, stub.index_digest]))
	every m in msgs {
		not contains(m, stub.arm64_digest)
	}
}

test_success_index_controls if {
	_violations([stub.index_platforms_pass], _main) == set()
	_violations([stub.index_own_pass], _main) == set()
}

test_violation_when_index_platform_has_no_provenance if {
	msgs := _violations([stub.index_bare_platform], _main)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: no attestation of type <https://slsa.dev/provenance/v1>", [stub.bare_amd64_digest, stub.index_digest]))
}
