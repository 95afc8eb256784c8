package stellaopsrequireattestations_test

import data.stellaopsrequireattestations as policy
import data.stub

_params := {"predicateTypes": ["stellaops.io/predicates/scan-result@v1", "cyclonedx", "stellaops.io/predicates/sbom@v1"]}

_sbom_and_scan := {"predicateTypes": ["stellaops.io/predicates/scan-result@v1", "stellaops.io/predicates/sbom@v1"]}

test_success_release_image_has_all if {
	count(policy.violation) == 0 with input as stub.review(stub.pod([stub.release]), _sbom_and_scan)
		with external_data as stub.external_data
}

test_violation_when_attestation_type_missing if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _params)
		with external_data as stub.external_data
	msgs == {"container <c0> image <registry.example.com/app:v1.0.0>: no attestation of type <https://cyclonedx.org/bom> is attached; attach one signed by a configured authority (stella attest attach)"}
}

test_violation_when_unsigned if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.unsigned]), _sbom_and_scan)
		with external_data as stub.external_data
	count(msgs) == 2
	some msg in msgs
	contains(msg, "image <registry.example.com/app:unsigned>: no attestation of type <stellaops.io/predicates/scan-result@v1> is attached (provider: NO_ATTESTATION")
}

test_violation_when_not_verified if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.tampered]), _sbom_and_scan)
		with external_data as stub.external_data
	some msg in msgs
	contains(msg, "none verified by the provider (SUBJECT_MISMATCH")
}

test_success_offline_signatures_need_require_tlog_false if {
	offline := object.union(_sbom_and_scan, {"requireTlog": false})
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _sbom_and_scan)
		with external_data as _offline
	some msg in msgs
	contains(msg, "have no verified transparency-log entry")
	count(policy.violation) == 0 with input as stub.review(stub.pod([stub.release]), offline)
		with external_data as _offline
}

# The release verdict as an offline (no Rekor) signing would give it, served from Gatekeeper's cache.
_offline(_) := {"responses": [[stub.release, _offline_verdict]], "errors": [], "system_error": "", "status_code": 0}

_offline_verdict := json.patch(stub.items[stub.release].value, [
	{"op": "replace", "path": "/attestations/2/tlog", "value": {"verified": false}},
	{"op": "replace", "path": "/attestations/3/tlog", "value": {"verified": false}},
])

test_violation_for_every_container_kind if {
	deployment := {"kind": "Deployment", "spec": {"template": {"spec": {
		"initContainers": [{"name": "init", "image": stub.unsigned}],
		"containers": [{"name": "app", "image": stub.release}],
		"ephemeralContainers": [{"name": "debug", "image": stub.unsigned}],
	}}}}
	msgs := stub.messages(policy.violation) with input as stub.review(deployment, _sbom_and_scan)
		with external_data as stub.external_data
	count(msgs) == 4
	some a in msgs
	startswith(a, "initContainer <init> image <registry.example.com/app:unsigned>")
	some b in msgs
	startswith(b, "ephemeralContainer <debug> image <registry.example.com/app:unsigned>")
}

test_success_exempt_images if {
	params := object.union(_sbom_and_scan, {"exemptImages": ["registry.example.com/app:unsigned"]})
	count(policy.violation) == 0 with input as stub.review(stub.pod([stub.unsigned, stub.release]), params)
		with external_data as stub.external_data
}

test_violation_when_provider_fails if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _sbom_and_scan)
		with external_data as stub.send_failure
	msgs == {"container <c0> image <registry.example.com/app:v1.0.0>: the StellaOps provider could not verify image <registry.example.com/app:v1.0.0> now (status 500): failed to send external data request: Post \"https://stellaops.stellaops.svc:8443/gatekeeper/v1/verify\": context deadline exceeded; nothing was cached, the next admission retries"}
}

test_violation_when_provider_answers_nothing if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _sbom_and_scan)
		with external_data as stub.empty
	count(msgs) == 1
}

test_violation_when_key_unreachable if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release, stub.unreachable]), _sbom_and_scan)
		with external_data as stub.external_data
	msgs == {"container <c1> image <registry.example.com/app:unreachable>: the StellaOps provider could not verify image <registry.example.com/app:unreachable> now (status 200): registry.example.com/app:unreachable: REGISTRY_UNREACHABLE: connection refused by registry.example.com:443; nothing was cached, the next admission retries"}
}

test_success_no_parameters_no_types if {
	count(policy.violation) == 0 with input as {"review": {"object": stub.pod([stub.unsigned])}}
		with external_data as stub.external_data
}

_undefined(request) := request if {
	request == "never"
}

test_violation_when_external_data_is_undefined if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([stub.release]), _sbom_and_scan)
		with external_data as _undefined
	msgs == {"container <c0> image <registry.example.com/app:v1.0.0>: the StellaOps provider could not verify image <registry.example.com/app:v1.0.0> now (status none): the call to the provider failed inside the policy engine (the transport builtin returned nothing); nothing was cached, the next admission retries"}
}

# ---- multi-arch indexes (issue 16 item 1) -------------------------------------------------------

_release_only := object.union(_sbom_and_scan, {"signers": {"authorities": ["release-key"]}})

_index_violations(image, params) := msgs if {
	msgs := stub.messages(policy.violation) with input as stub.review(stub.pod([image]), params)
		with external_data as stub.external_data
}

test_violation_when_index_borrows_another_platforms_signer if {
	msgs := _index_violations(stub.index_borrow, _release_only)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: the verified attestation(s) of type <stellaops.io/predicates/sbom@v1> are signed by authority <ci-key>", [stub.amd64_digest, stub.index_digest]))
	every m in msgs {
		not contains(m, stub.arm64_digest)
	}
}

test_success_index_controls if {
	_index_violations(stub.index_platforms_pass, _release_only) == set()
	_index_violations(stub.index_own_pass, _release_only) == set()
}

test_violation_when_index_platform_is_unattested if {
	msgs := _index_violations(stub.index_bare_platform, _sbom_and_scan)
	some msg in msgs
	contains(msg, sprintf("platform <%s> (linux/amd64) of index <%s>: no attestation of type <stellaops.io/predicates/scan-result@v1> is attached", [stub.bare_amd64_digest, stub.index_digest]))

	# no type required: a listed platform with no verified attestation still denies
	bare := _index_violations(stub.index_bare_platform, {})
	count(bare) == 2
	_names(bare, stub.bare_amd64_digest)
	not _names(bare, stub.arm64_digest)
}

_names(msgs, digest) if {
	some msg in msgs
	contains(msg, digest)
}

# ---- image volumes (issue 16 item 3) ----------------------------------------------------------

test_violation_when_image_volume_is_unattested if {
	pod := object.union(stub.pod([stub.release]), {"spec": {"volumes": [{"name": "models", "image": {"reference": stub.unsigned}}]}})
	msgs := stub.messages(policy.violation) with input as stub.review(pod, _sbom_and_scan)
		with external_data as stub.external_data
	count(msgs) == 2
	every msg in msgs {
		startswith(msg, "imageVolume <models> image <registry.example.com/app:unsigned>: no attestation of type")
	}
	exempt := object.union(_sbom_and_scan, {"exemptImages": [stub.unsigned]})
	count(policy.violation) == 0 with input as stub.review(pod, exempt)
		with external_data as stub.external_data
}
