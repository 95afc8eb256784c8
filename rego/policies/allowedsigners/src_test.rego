package stellaopsallowedsigners_test

import data.stellaopsallowedsigners as policy
import data.stub

_violations(images, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod(images), params)
		with external_data as stub.external_data
}

_rules := {"rules": [
	{"predicateType": "stellaops.io/predicates/scan-result@v1", "authorities": ["release-key"]},
	{"predicateType": "stellaops.io/predicates/sbom@v1", "keyIds": ["sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"]},
	{"predicateType": "slsaprovenance1", "identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/stellaops/app/\\.github/workflows/release\\.yml@refs/heads/main",
	}]},
]}

test_success_release_signed_by_allowed_signers if {
	_violations([stub.release], _rules) == set()
}

test_violation_when_signer_not_allowed if {
	params := {"rules": [{"predicateType": "stellaops.io/predicates/scan-result@v1", "authorities": ["vendor-key"]}]}
	_violations([stub.release], params) == {"container <c0> image <registry.example.com/app:v1.0.0>: the verified attestation(s) of type <stellaops.io/predicates/scan-result@v1> are signed by authority <release-key> (key sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e); the constraint accepts only {\"authorities\": [\"vendor-key\"]}"}
}

test_violation_when_keyless_subject_is_only_a_prefix_match if {
	params := {"rules": [{"predicateType": "slsaprovenance1", "identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/stellaops/app/\\.github/workflows/release\\.yml@refs/heads/mai",
	}]}]}
	count(_violations([stub.release], params)) == 1
}

test_violation_when_vex_by_vendor_key_only if {
	params := {"rules": [{"predicateType": "stellaops.io/predicates/vex@v1", "keyIds": ["sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"]}]}
	_violations([stub.vulnerable], params) == set()
	count(_violations([stub.release], params)) == 1
}

test_violation_when_unsigned_or_provider_fails if {
	count(_violations([stub.unsigned], _rules)) == 3
	count(stub.messages(policy.violation)) == 1 with input as stub.review(stub.pod([stub.release]), _rules)
		with external_data as stub.empty
}

test_violation_when_rule_names_no_predicate_type if {
	msgs := _violations([stub.release], {"rules": [{"authorities": ["release-key"]}]})
	msgs == {"container <c0> image <registry.example.com/app:v1.0.0>: no attestation of type <> is attached; attach one signed by a configured authority (stella attest attach)"}
}

# ---- multi-arch indexes: per digest, never pooled (issue 16 item 1) -----------------------------

_release_rules := {"rules": [
	{"predicateType": "stellaops.io/predicates/scan-result@v1", "authorities": ["release-key"]},
	{"predicateType": "slsaprovenance1", "identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/stellaops/app/\\.github/workflows/release\\.yml@refs/heads/main",
	}]},
]}

test_violation_when_index_borrows_another_platforms_signer if {
	msgs := _violations([stub.index_borrow], _release_rules)
	count(msgs) > 0
	every msg in msgs {
		startswith(msg, "container <c0> image <registry.example.com/app:index-borrow>: ")
	}
	some amd64 in msgs
	contains(amd64, sprintf("platform <%s> (linux/amd64) of index <%s>: the verified attestation(s) of type <stellaops.io/predicates/scan-result@v1> are signed by authority <ci-key>", [stub.amd64_digest, stub.index_digest]))
	some own in msgs
	contains(own, sprintf("index <%s> itself: no attestation of type", [stub.index_digest]))
	not _names(msgs, stub.arm64_digest)
}

_names(msgs, digest) if {
	some msg in msgs
	contains(msg, digest)
}

test_success_index_whose_platforms_each_pass if {
	_violations([stub.index_platforms_pass], _release_rules) == set()
}

test_success_index_whose_own_digest_passes if {
	_violations([stub.index_own_pass], _release_rules) == set()
}

test_violation_when_index_platform_is_unattested if {
	msgs := _violations([stub.index_bare_platform], _release_rules)
	_names(msgs, stub.bare_amd64_digest)
	not _names(msgs, stub.arm64_digest)

	# with no rule at all, a listed platform without any verified attestation still denies
	bare := _violations([stub.index_bare_platform], {"rules": []})
	bare == {
		sprintf("container <c0> image <registry.example.com/app:index-bare-platform>: platform <%s> (linux/amd64) of index <%s>: it carries no verified attestation; an index passes when its own attestations pass, or when every platform passes on its own", [stub.bare_amd64_digest, stub.index_digest]),
		sprintf("container <c0> image <registry.example.com/app:index-bare-platform>: index <%s> itself: it carries no verified attestation; an index passes when its own attestations pass, or when every platform passes on its own", [stub.index_digest]),
	}
}
