# Tests of the transport-neutral core. The transport is replaced by the provider stub
# (rego/testdata/stub), fed with recorded verdicts, so these run with either transport loaded.
package lib.stellaops_test

import data.lib.stellaops
import data.stub

# ---- choosing attestations -------------------------------------------------------------------

test_success_get_attestation_picks_newest_verified if {
	att := stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	att.verified == true
	att.created == "2026-11-24T10:00:00Z"
	att.predicateSummary.scanId == "scan-2026-11-24"
}

test_success_get_attestations_orders_verified_then_newest_signed if {
	atts := stellaops.get_attestations(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	[a.created | some a in atts] == ["2026-11-24T10:00:00Z", "2026-11-01T10:00:00Z", "2026-11-25T00:00:00Z"]
	[a.verified | some a in atts] == [true, true, false]
}

test_success_unsigned_time_never_ranks_newer if {
	att := stellaops.get_attestation(stub.stale, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	att.created == "2026-09-01T10:00:00Z"
}

test_success_cosign_alias_resolves if {
	att := stellaops.get_attestation(stub.release, "slsaprovenance1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	att.predicateType == "https://slsa.dev/provenance/v1"
	v02 := stellaops.get_attestation(stub.vulnerable, "slsaprovenance") with data.lib.stellaops.transport.verdicts as stub.verdicts
	v02.predicateType == "https://slsa.dev/provenance/v0.2"
	stellaops.resolve_predicate_type("stellaops.io/predicates/sbom@v1") == "stellaops.io/predicates/sbom@v1"
}

test_fail_get_attestation_undefined_without_attestation if {
	not stellaops.get_attestation(stub.unsigned, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
}

test_fail_get_attestation_undefined_on_provider_error if {
	not stellaops.get_attestation(stub.invalid_reference, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	not stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.send_failure
	not stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.system_error
}

test_success_attestations_in_skips_non_objects if {
	stellaops.attestations_in({"attestations": ["x", {"predicateType": "t", "verified": true}]}, "t") == [{"predicateType": "t", "verified": true}]
}

test_success_unparsable_signed_time_ranks_oldest if {
	atts := stellaops.attestations_in(
		{"attestations": [
			{"predicateType": "t", "verified": true, "created": "yesterday", "createdSigned": true, "n": 1},
			{"predicateType": "t", "verified": true, "created": "2026-01-01T00:00:00Z", "createdSigned": true, "n": 2},
		]},
		"t",
	)
	[a.n | some a in atts] == [2, 1]
}

# ---- verify_attestation ------------------------------------------------------------------------

_att(over) := object.union(object.remove(_base, object.keys(over)), over)

_base := {
	"predicateType": "t",
	"verified": true,
	"signers": [{"kind": "key", "authority": "release-key", "keyId": "sha256:aa"}],
	"tlog": {"verified": true, "logIndex": 1, "integratedTime": 1},
	"created": "2026-11-24T10:00:00Z",
	"createdSigned": true,
	"errors": [],
}

_keyless := {"kind": "keyless", "authority": "ci", "issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main"}

test_success_verify_attestation_accepts_logged_verified if {
	stellaops.verify_attestation(_att({}))
}

test_success_verify_attestation_on_recorded_release if {
	att := stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	stellaops.verify_attestation(att)
}

test_fail_verify_attestation_refuses_unverified if {
	not stellaops.verify_attestation(_att({"verified": false}))
	not stellaops.verify_attestation(_att({"verified": "true"}))
}

test_fail_verify_attestation_refuses_no_signer if {
	not stellaops.verify_attestation(_att({"signers": []}))
	not stellaops.verify_attestation(_att({"signers": null}))
}

test_fail_verify_attestation_refuses_unlogged if {
	not stellaops.verify_attestation(_att({"tlog": {"verified": false}}))
	not stellaops.verify_attestation(_att({"tlog": {}}))
}

test_success_verify_attestation_by_allows_unlogged_when_asked if {
	stellaops.verify_attestation_by(_att({"tlog": {"verified": false}}), {"requireTlog": false})
	not stellaops.verify_attestation_by(_att({"tlog": {"verified": false}}), {"requireTlog": "false"})
}

test_fail_verify_attestation_by_refuses_non_object_requirements if {
	not stellaops.verify_attestation_by(_att({}), ["release-key"])
}

test_success_authority_names if {
	stellaops.verify_attestation_by(_att({}), {"authorities": ["release-key", "other"]})
}

test_fail_authority_not_listed if {
	not stellaops.verify_attestation_by(_att({}), {"authorities": ["ci"]})
}

test_success_key_id if {
	stellaops.verify_attestation_by(_att({}), {"keyIds": ["sha256:aa"]})
}

test_fail_key_id_other if {
	not stellaops.verify_attestation_by(_att({}), {"keyIds": ["sha256:bb"]})
	not stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"keyIds": ["sha256:aa"]})
}

test_success_keyless_exact_identity if {
	stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subject": "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main",
	}]})
}

test_success_keyless_regexp_identity if {
	stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{
		"issuerRegExp": "https://token\\.actions\\.githubusercontent\\.com",
		"subjectRegExp": "https://github\\.com/org/.*@refs/heads/main",
	}]})
}

test_fail_keyless_regexp_is_whole_value if {
	evil := object.union(_keyless, {"subject": "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main-evil"})
	not stellaops.verify_attestation_by(_att({"signers": [evil]}), {"identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/org/.*@refs/heads/main",
	}]})
	prefixed := object.union(_keyless, {"issuer": "https://evil.example/https://token.actions.githubusercontent.com"})
	not stellaops.verify_attestation_by(_att({"signers": [prefixed]}), {"identities": [{
		"issuerRegExp": "https://token\\.actions\\.githubusercontent\\.com",
		"subjectRegExp": ".*",
	}]})
}

test_fail_keyless_identity_needs_issuer_and_subject if {
	not stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{"subjectRegExp": ".*"}]})
	not stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{"issuer": "https://token.actions.githubusercontent.com"}]})
}

test_fail_keyless_exact_and_regexp_must_both_hold if {
	not stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{
		"issuer": "https://accounts.google.com",
		"issuerRegExp": ".*",
		"subjectRegExp": ".*",
	}]})
}

test_fail_keyless_invalid_regexp_matches_nothing if {
	not stellaops.verify_attestation_by(_att({"signers": [_keyless]}), {"identities": [{"issuerRegExp": "(", "subjectRegExp": ".*"}]})
}

test_fail_keyless_identity_on_key_signer if {
	not stellaops.verify_attestation_by(_att({}), {"identities": [{"issuerRegExp": ".*", "subjectRegExp": ".*"}]})
}

test_success_one_signer_of_many if {
	stellaops.verify_attestation_by(_att({"signers": [{"kind": "key", "authority": "x", "keyId": "sha256:zz"}, _keyless]}), {"authorities": ["ci"]})
}

test_fail_authority_and_identity_must_be_the_same_signer if {
	not stellaops.verify_attestation_by(
		_att({"signers": [{"kind": "key", "authority": "ci", "keyId": "sha256:zz"}, object.union(_keyless, {"authority": "other"})]}),
		{"authorities": ["ci"], "identities": [{"issuerRegExp": ".*", "subjectRegExp": ".*"}]},
	)
}

test_success_accepted_attestation_skips_unaccepted if {
	verdict := {"attestations": [
		_att({"created": "2026-11-25T00:00:00Z", "signers": [_keyless]}),
		_att({"created": "2026-11-01T00:00:00Z"}),
	]}
	stellaops.accepted_attestation(verdict, "t", {"authorities": ["release-key"]}).created == "2026-11-01T00:00:00Z"
	count(stellaops.accepted_attestations(verdict, "t", {})) == 2
}

# ---- fail closed ------------------------------------------------------------------------------

test_success_no_provider_errors_for_good_answers if {
	errors := stellaops.provider_errors([stub.release, stub.unsigned]) with data.lib.stellaops.transport.verdicts as stub.verdicts
	errors == {}
	count(stellaops.verdicts([stub.release, stub.unsigned])) == 2 with data.lib.stellaops.transport.verdicts as stub.verdicts
}

test_success_cached_answers_status_zero_are_fine if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _cached
	errors == {}
}

_cached(images) := stub.cached({"keys": images})

test_fail_per_key_error if {
	errors := stellaops.provider_errors([stub.release, stub.invalid_reference]) with data.lib.stellaops.transport.verdicts as stub.verdicts
	object.keys(errors) == {stub.invalid_reference}
	contains(errors[stub.invalid_reference], "refused image <registry.example.com/app@sha256:nothex>: INVALID_REFERENCE")
	object.keys(stellaops.verdicts([stub.release, stub.invalid_reference])) == {stub.release} with data.lib.stellaops.transport.verdicts as stub.verdicts
}

test_fail_missing_key_with_system_error if {
	errors := stellaops.provider_errors([stub.release, stub.unreachable]) with data.lib.stellaops.transport.verdicts as stub.verdicts
	msg := errors[stub.unreachable]
	contains(msg, "could not verify image <registry.example.com/app:unreachable> now")
	contains(msg, "REGISTRY_UNREACHABLE")
	contains(msg, "the next admission retries")
}

test_fail_system_error_denies_every_image if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _system_error
	contains(errors[stub.release], "DEADLINE_EXCEEDED")
}

_system_error(images) := stub.system_error({"keys": images})

test_fail_null_fields if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as stub.send_failure
	contains(errors[stub.release], "context deadline exceeded")
	contains(errors[stub.release], "status 500")
}

test_fail_null_fields_without_system_error if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as stub.absent
	contains(errors[stub.release], "returned no responses for image <registry.example.com/app:v1.0.0>")
}

test_fail_empty_response if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as stub.empty
	contains(errors[stub.release], "returned no verdict for image <registry.example.com/app:v1.0.0>")
}

test_fail_conflicting_verdicts if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _conflicting
	contains(errors[stub.release], "2 different verdicts")
}

_conflicting(images) := stub.conflicting({"keys": images})

test_fail_malformed_verdict if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _malformed
	contains(errors[stub.release], "malformed verdict")
}

_malformed(images) := stub.malformed({"keys": images})

test_fail_future_schema if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _future
	contains(errors[stub.release], "schemaVersion 2")
}

_future(images) := stub.future_schema({"keys": images})

test_fail_transport_answer_not_an_object if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as stub.not_an_object
	contains(errors[stub.release], "status none")
}

# A transport whose builtin failed is undefined, as Gatekeeper (no strict builtin errors) makes it.
_undefined(images) := images if {
	images == "never"
}

test_fail_transport_undefined if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _undefined
	contains(errors[stub.release], "the transport builtin returned nothing")
	stellaops.verdicts([stub.release]) == {} with data.lib.stellaops.transport.verdicts as _undefined
	not stellaops.get_attestation(stub.release, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as _undefined
}

test_fail_missing_schema_version if {
	errors := stellaops.provider_errors([stub.release]) with data.lib.stellaops.transport.verdicts as _unversioned
	contains(errors[stub.release], "has schemaVersion none")
}

_unversioned(images) := {
	"responses": [[k, object.remove(stub.items[k].value, ["schemaVersion"])] | some k in images],
	"errors": [],
	"system_error": "",
	"status_code": 200,
}

test_fail_provider_violations_without_any_reason if {
	msgs := stellaops.provider_violations({{"kind": "container", "name": "app", "image": "x"}}) with data.lib.stellaops.verdicts as {}
		with data.lib.stellaops.provider_errors as {}
	msgs == {"container <app> image <x>: the StellaOps provider gave no usable verdict for image <x>"}
}

test_success_keys_sorted_unique_strings if {
	stellaops.keys({"b", "a"}) == ["a", "b"]
	stellaops.keys(["b", "a", "b", 3]) == ["a", "b"]
}

# ---- messages ---------------------------------------------------------------------------------

test_success_why_not_accepted_none_attached if {
	verdict := stellaops.verdict(stub.unsigned) with data.lib.stellaops.transport.verdicts as stub.verdicts
	msg := stellaops.why_not_accepted(verdict, "stellaops.io/predicates/scan-result@v1", {})
	contains(msg, "no attestation of type <stellaops.io/predicates/scan-result@v1> is attached (provider: NO_ATTESTATION:")
}

test_success_why_not_accepted_none_verified if {
	verdict := stellaops.verdict(stub.tampered) with data.lib.stellaops.transport.verdicts as stub.verdicts
	msg := stellaops.why_not_accepted(verdict, "stellaops.io/predicates/scan-result@v1", {})
	contains(msg, "1 attestation(s) of type <stellaops.io/predicates/scan-result@v1> found, none verified by the provider (SIGNATURE_INVALID:")
	msg2 := stellaops.why_not_accepted({"attestations": [_att({"verified": false, "errors": null})]}, "t", {})
	contains(msg2, "no reason given")
}

test_success_why_not_accepted_unlogged if {
	msg := stellaops.why_not_accepted({"attestations": [_att({"tlog": {"verified": false}})]}, "t", {})
	contains(msg, "no verified transparency-log entry")
}

test_success_why_not_accepted_wrong_signer if {
	msg := stellaops.why_not_accepted({"attestations": [_att({}), _att({"signers": [_keyless]})]}, "t", {"authorities": ["vendor"], "requireTlog": true})
	contains(msg, "authority <release-key> (key sha256:aa)")
	contains(msg, "authority <ci> (keyless https://github.com/org/app/.github/workflows/release.yml@refs/heads/main from https://token.actions.githubusercontent.com)")
	contains(msg, "the constraint accepts only {\"authorities\": [\"vendor\"]}")
}

# ---- Kubernetes objects -----------------------------------------------------------------------

_spec := {
	"initContainers": [{"name": "init", "image": "img/init"}],
	"containers": [{"name": "app", "image": "img/app"}, {"name": "noimage"}],
	"ephemeralContainers": [{"name": "debug", "image": "img/debug"}],
}

_all := {
	{"kind": "initContainer", "name": "init", "image": "img/init"},
	{"kind": "container", "name": "app", "image": "img/app"},
	{"kind": "ephemeralContainer", "name": "debug", "image": "img/debug"},
}

test_success_containers_of_pod if {
	stellaops.containers({"kind": "Pod", "spec": _spec}) == _all
}

test_success_containers_of_workloads if {
	every kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"] {
		stellaops.containers({"kind": kind, "spec": {"template": {"spec": _spec}}}) == _all
	}
	stellaops.containers({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": _spec}}}}}) == _all
	stellaops.containers({"kind": "PodTemplate", "template": {"spec": _spec}}) == _all
}

# Image volumes (Kubernetes ImageVolume, spec.volumes[].image.reference) are images the Pod runs
# from as much as its containers: an unattested one must not ride along (issue 16 item 3).
_volume_spec := object.union(_spec, {"volumes": [
	{"name": "models", "image": {"reference": "img/models", "pullPolicy": "IfNotPresent"}},
	{"name": "scratch", "emptyDir": {}},
	{"name": "noref", "image": {}},
]})

_volume_all := _all | {{"kind": "imageVolume", "name": "models", "image": "img/models"}}

test_success_image_volumes_of_every_kind if {
	stellaops.containers({"kind": "Pod", "spec": _volume_spec}) == _volume_all
	every kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"] {
		stellaops.containers({"kind": kind, "spec": {"template": {"spec": _volume_spec}}}) == _volume_all
	}
	stellaops.containers({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": _volume_spec}}}}}) == _volume_all
	stellaops.containers({"kind": "PodTemplate", "template": {"spec": _volume_spec}}) == _volume_all
	stellaops.describe({"kind": "imageVolume", "name": "models", "image": "img/models"}) == "imageVolume <models> image <img/models>"
}

test_success_no_containers_for_other_kinds if {
	stellaops.containers({"kind": "ConfigMap", "data": {}}) == set()
}

test_success_exempt_images if {
	stellaops.exempt("registry.k8s.io/pause:3.9", ["registry.k8s.io/*"])
	stellaops.exempt("img/app", ["img/app"])
	not stellaops.exempt("img/app2", ["img/app"])
	not stellaops.exempt("evil.io/registry.k8s.io/x", ["registry.k8s.io/*"])
}

# ---- scan and VEX helpers ---------------------------------------------------------------------

test_success_scan_counts_subtracts_excluded if {
	summary := {
		"counts": {"critical": 1, "high": 1, "medium": 0, "low": 0, "unknown": 0},
		"findings": [{"id": "CVE-1", "severity": "critical"}, {"id": "CVE-2", "severity": "high"}, {"id": "CVE-3", "severity": "weird"}],
	}
	counts := stellaops.scan_counts(summary, {"CVE-1"})
	counts == {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 1}
}

test_success_scan_counts_short_findings_never_lower_a_count if {
	counts := stellaops.scan_counts({"counts": {"critical": 5, "high": "x"}, "findings": [{"id": "CVE-1", "severity": "critical"}]}, {"CVE-1"})
	counts.critical == 4
	counts.high == 0
}

test_success_scan_excess if {
	stellaops.scan_excess({"critical": 2, "high": 1, "medium": 9, "low": 0, "unknown": 0}, {"critical": 0, "high": 1, "medium": -1}) == ["critical 2 (max 0)"]
}

test_success_vex_newest_statement_decides if {
	verdict := stellaops.verdict(stub.vulnerable) with data.lib.stellaops.transport.verdicts as stub.verdicts
	vex := stellaops.accepted_attestations(verdict, "stellaops.io/predicates/vex@v1", {"authorities": ["release-key"]})
	stellaops.vex_cleared(vex) == {"CVE-2026-2001", "CVE-2026-2003"}
	all_signers := stellaops.accepted_attestations(verdict, "stellaops.io/predicates/vex@v1", {})
	stellaops.vex_cleared(all_signers) == {"CVE-2026-2001", "CVE-2026-2003", "CVE-2026-2004"}
}

test_success_age_hours_only_for_signed_times if {
	now := time.parse_rfc3339_ns("2026-11-25T10:00:00Z")
	stellaops.age_hours({"created": "2026-11-24T10:00:00Z", "createdSigned": true}, now) == 24
	not stellaops.age_hours({"created": "2026-11-24T10:00:00Z", "createdSigned": false}, now)
	stellaops.age_hours({"created": "x", "createdSigned": false, "verified": true, "predicateSummary": {"scannedAt": "2026-11-25T08:00:00Z"}}, now) == 2
	not stellaops.age_hours({"created": "x", "createdSigned": false, "verified": false, "predicateSummary": {"scannedAt": "2026-11-25T08:00:00Z"}}, now)
}

test_success_vex_order_from_signed_predicate_timestamps if {
	# The provider marks VEX creation times unsigned (recorded_offline); the signed predicate's
	# timestamp, repeated in predicateSummary, still orders them.
	older := {"predicateType": "v", "verified": true, "createdSigned": false, "created": "2026-11-25T00:00:00Z", "predicateSummary": {"timestamp": "2026-11-01T00:00:00Z", "statements": [{"vulnerability": "CVE-1", "status": "not_affected"}]}}
	newer := {"predicateType": "v", "verified": true, "createdSigned": false, "created": "2026-11-01T00:00:00Z", "predicateSummary": {"timestamp": "2026-11-20T00:00:00Z", "statements": [{"vulnerability": "CVE-1", "status": "affected"}]}}
	ranked := stellaops.attestations_in({"attestations": [older, newer]}, "v")
	ranked == [newer, older]
	stellaops.vex_cleared(ranked) == set()
}

test_success_recorded_vex_clears_the_recorded_critical if {
	verdict := stellaops.verdict(stub.recorded_offline) with data.lib.stellaops.transport.verdicts as stub.verdicts
	vex := stellaops.accepted_attestations(verdict, "stellaops.io/predicates/vex@v1", {"requireTlog": false})
	stellaops.vex_cleared(vex) == {"CVE-2026-2001"}
	scan := stellaops.accepted_attestation(verdict, "stellaops.io/predicates/scan-result@v1", {"requireTlog": false})
	stellaops.scan_counts(scan.predicateSummary, stellaops.vex_cleared(vex)).critical == 0
	slsa := stellaops.accepted_attestation(verdict, "slsaprovenance1", {"requireTlog": false})
	slsa.predicateSummary.builderId == "https://github.com/actions/runner/github-hosted"
}

# ---- helpers for policies ---------------------------------------------------------------------

_pod := {"kind": "Pod", "spec": {"containers": [
	{"name": "app", "image": "registry.example.com/app:v1.0.0"},
	{"name": "pause", "image": "registry.k8s.io/pause:3.9"},
	{"name": "gone", "image": "registry.example.com/app:unreachable"},
]}}

test_success_checked_containers_leave_exempt_out if {
	names := {c.name | some c in stellaops.checked_containers(_pod, {"exemptImages": ["registry.k8s.io/*"]})}
	names == {"app", "gone"}
	count(stellaops.checked_containers(_pod, {})) == 3
}

test_fail_provider_violations_name_the_container if {
	msgs := stellaops.provider_violations(stellaops.checked_containers(_pod, {"exemptImages": ["registry.k8s.io/*"]})) with data.lib.stellaops.transport.verdicts as stub.verdicts
	count(msgs) == 1
	some msg in msgs
	startswith(msg, "container <gone> image <registry.example.com/app:unreachable>: the StellaOps provider could not verify image")
}

test_success_requirements_from_parameters if {
	stellaops.requirements({}) == {"requireTlog": true}
	stellaops.requirements({"signers": {"authorities": ["a"]}, "requireTlog": false}) == {"authorities": ["a"], "requireTlog": false}
}

test_success_scan_problems if {
	now := time.parse_rfc3339_ns("2026-11-25T12:00:00Z")
	release := stellaops.verdict(stub.release) with data.lib.stellaops.transport.verdicts as stub.verdicts
	stellaops.scan_problems(release, {"maxCounts": {"critical": 0}, "maxAgeHours": 48}, now, set()) == set()
	over := stellaops.scan_problems(release, {"maxCounts": {"low": 0, "medium": 0}}, now, {"CVE-2026-1001"})
	over == {"its newest scan-result <scan-2026-11-24> (2026-11-24T10:00:00Z) finds low 1 (max 0); rebuild with fixed packages, or clear findings with a VEX or the constraint's ignore list"}
	old := stellaops.scan_problems(release, {"maxAgeHours": 12}, now, set())
	old == {"its newest scan-result <scan-2026-11-24> is 26 hours old (max 12); scan the image again and attach the result"}
	unsigned := stellaops.verdict(stub.unsigned) with data.lib.stellaops.transport.verdicts as stub.verdicts
	missing := stellaops.scan_problems(unsigned, {}, now, set())
	count(missing) == 1
	unlogged := {"attestations": [_att({"predicateType": "stellaops.io/predicates/scan-result@v1", "createdSigned": false, "predicateSummary": {"scanId": "s1"}})]}
	stellaops.scan_problems(unlogged, {"maxAgeHours": 1}, now, set()) == {"its newest scan-result <s1> has no signed or logged time, so its age (max 1 hours) cannot be checked; attach a scan whose predicate carries scannedAt"}
}

# ---- verdicts recorded from the real provider -------------------------------------------------

test_success_recorded_logged_keyless_passes_the_seed_check if {
	att := stellaops.get_attestation(stub.recorded_logged, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	stellaops.verify_attestation(att)
	stellaops.verify_attestation_by(att, {"identities": [{
		"issuer": "https://token.actions.githubusercontent.com",
		"subjectRegExp": "https://github\\.com/acme/app/\\.github/workflows/.*@refs/heads/main",
	}]})
	not stellaops.verify_attestation_by(att, {"authorities": ["release-key"]})
}

test_success_recorded_offline_passes_as_the_provider_required if {
	att := stellaops.get_attestation(stub.recorded_offline, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
	att.tlog.required == false # the provider ran with requireTlog: false
	stellaops.verify_attestation(att)
	not stellaops.verify_attestation_by(att, {"requireTlog": true})
	stellaops.verify_attestation_by(att, {"requireTlog": false, "authorities": ["release-key"]})
	stellaops.verify_attestation_by(att, {"requireTlog": false, "keyIds": [att.signers[0].keyId]})
	counts := stellaops.scan_counts(att.predicateSummary, set())
	counts.critical == 1
}

test_fail_recorded_unsigned_and_invalid_reference if {
	verdict := stellaops.verdict(stub.recorded_unsigned) with data.lib.stellaops.transport.verdicts as stub.verdicts
	contains(stellaops.why_not_accepted(verdict, "stellaops.io/predicates/sbom@v1", {}), "(provider: NO_ATTESTATION: no attestation is attached to registry.example.com/app@sha256:")
	errors := stellaops.provider_errors([stub.recorded_invalid_reference, stub.recorded_logged]) with data.lib.stellaops.transport.verdicts as stub.verdicts
	object.keys(errors) == {stub.recorded_invalid_reference}
	contains(errors[stub.recorded_invalid_reference], "INVALID_REFERENCE: digest in")
}

test_success_verify_attestation_follows_the_providers_tlog_requirement if {
	stellaops.verify_attestation(_att({"tlog": {"verified": false, "required": false}}))
	stellaops.verify_attestation_by(_att({"tlog": {"verified": false, "required": false}}), {"authorities": ["release-key"]})
}

test_fail_verify_attestation_when_the_provider_required_a_log if {
	not stellaops.verify_attestation(_att({"tlog": {"verified": false, "required": true}}))
	not stellaops.verify_attestation(_att({"tlog": {"verified": false}}))
}

test_fail_explicit_require_tlog_overrides_the_provider if {
	not stellaops.verify_attestation_by(_att({"tlog": {"verified": false, "required": false}}), {"requireTlog": true})
}

_index_verdict(platform_atts) := {
	"digest": "sha256:index",
	"platforms": ["sha256:amd64", "sha256:arm64"],
	"attestations": platform_atts,
}

test_fail_attestations_in_never_returns_another_digests_attestation if {
	verdict := _index_verdict([_att({"digest": "sha256:arm64"}), _att({"digest": "sha256:amd64"})])
	count(stellaops.attestations_in(verdict, "t")) == 0
	count(stellaops.accepted_attestations(verdict, "t", {})) == 0
	not stellaops.accepted_attestation(verdict, "t", {})
	single := {"digest": "sha256:app", "platforms": [], "attestations": [_att({"digest": "sha256:other"}), _att({"digest": "sha256:app", "n": 1})]}
	[a.n | some a in stellaops.attestations_in(single, "t")] == [1]
}

test_fail_attestation_without_a_digest_counts_for_no_digest_of_an_index if {
	verdict := _index_verdict([_att({}), _att({"digest": ""})])
	count(stellaops.attestations_in(verdict, "t")) == 0
	every view in stellaops.views(verdict) {
		count(view.attestations) == 0
	}
}

test_success_attestation_without_a_digest_counts_for_a_plain_image if {
	# a plain image has one digest, so an attestation naming none can only be about it
	verdict := {"digest": "sha256:app", "platforms": [], "attestations": [_att({})]}
	count(stellaops.attestations_in(verdict, "t")) == 1
	count(stellaops.own_view(verdict).attestations) == 1
	not_other := {"digest": "sha256:app", "attestations": [_att({"digest": "sha256:other"})]}
	count(stellaops.attestations_in(not_other, "t")) == 0
}

test_success_get_attestation_of_an_index_is_its_own if {
	own := _att({"digest": stub.index_digest, "created": "2026-11-01T00:00:00Z"})
	verdicts := {"responses": [[stub.index_borrow, object.union(stub.items[stub.index_borrow].value, {"attestations": array.concat(stub.items[stub.index_borrow].value.attestations, [own])})]], "errors": [], "system_error": "", "status_code": 200}
	att := stellaops.get_attestation(stub.index_borrow, "t") with data.lib.stellaops.transport.verdicts as verdicts
	att == own
	not stellaops.get_attestation(stub.index_borrow, "stellaops.io/predicates/scan-result@v1") with data.lib.stellaops.transport.verdicts as stub.verdicts
}

test_success_views_one_per_digest if {
	verdict := object.union(stub.items[stub.index_borrow].value, {"platforms": [stub.amd64_digest, stub.arm64_digest, stub.amd64_digest, stub.index_digest]})
	views := stellaops.views(verdict)
	[v.digest | some v in views] == [stub.index_digest, stub.amd64_digest, stub.arm64_digest]
	[v.view.role | some v in views] == ["index", "platform", "platform"]
	[v.view.platform | some v in views] == ["", "linux/amd64", "linux/arm64"]
	every v in views {
		v.platforms == []
		not v.platformDetails
		every a in v.attestations {
			a.digest == v.digest
		}
	}
	count(views[1].attestations) == 3
	count(views[2].attestations) == 4
	count(views[0].attestations) == 0
	stellaops.platforms(verdict) == [stub.amd64_digest, stub.arm64_digest]
}

test_success_views_of_a_single_image if {
	verdict := {"digest": "sha256:app", "platforms": [], "attestations": [_att({"digest": "sha256:app"})]}
	views := stellaops.views(verdict)
	count(views) == 1
	views[0].view == {"role": "image", "index": "", "platform": ""}
	stellaops.describe_view(views[0]) == ""
	no_list := stellaops.views({"digest": "sha256:app", "attestations": []})
	no_list[0].view.role == "image"
}

test_success_views_without_platform_details if {
	verdict := _index_verdict([])
	stellaops.describe_view(stellaops.platform_views(verdict)[0]) == "platform <sha256:amd64> of index <sha256:index>"
	stellaops.describe_view(stellaops.own_view(verdict)) == "index <sha256:index> itself"
}

_pass_all(verdict) := {v.digest: set() | some v in stellaops.views(verdict)}

test_success_denials_single_image if {
	verdict := {"digest": "sha256:app", "platforms": [], "attestations": []}
	stellaops.denials(verdict, {"sha256:app": set()}) == set()
	stellaops.denials(verdict, {"sha256:app": {"bad"}}) == {"bad"}
}

test_success_denials_index_own_or_every_platform if {
	verdict := _index_verdict([_att({"digest": "sha256:index"}), _att({"digest": "sha256:amd64"}), _att({"digest": "sha256:arm64"})])
	stellaops.denials(verdict, _pass_all(verdict)) == set()

	# own passes, platforms fail: admitted
	stellaops.denials(verdict, {"sha256:index": set(), "sha256:amd64": {"x"}, "sha256:arm64": {"y"}}) == set()

	# own fails, every platform passes: admitted
	stellaops.denials(verdict, {"sha256:index": {"z"}, "sha256:amd64": set(), "sha256:arm64": set()}) == set()

	# own fails and one platform fails: denied, each reason naming its digest
	stellaops.denials(verdict, {"sha256:index": {"z"}, "sha256:amd64": {"x"}, "sha256:arm64": set()}) == {
		"index <sha256:index> itself: z",
		"platform <sha256:amd64> of index <sha256:index>: x",
	}
}

test_fail_denials_view_without_a_decision if {
	verdict := _index_verdict([_att({"digest": "sha256:amd64"}), _att({"digest": "sha256:arm64"})])
	stellaops.denials(verdict, {"sha256:index": {"z"}, "sha256:amd64": set()}) == {
		"index <sha256:index> itself: z",
		"platform <sha256:arm64> of index <sha256:index>: the policy gave no decision for it (a policy must give one per view)",
	}

	# a decision that is not a set is no decision
	count(stellaops.denials(verdict, {"sha256:index": {"z"}, "sha256:amd64": set(), "sha256:arm64": []})) == 2
	count(stellaops.denials({"digest": "sha256:app", "attestations": []}, {})) == 1
}

test_fail_denials_index_view_needs_a_verified_attestation if {
	verdict := _index_verdict([_att({"digest": "sha256:arm64"}), _att({"digest": "sha256:amd64", "verified": false})])
	stellaops.denials(verdict, _pass_all(verdict)) == {
		"index <sha256:index> itself: it carries no verified attestation; an index passes when its own attestations pass, or when every platform passes on its own",
		"platform <sha256:amd64> of index <sha256:index>: it carries no verified attestation; an index passes when its own attestations pass, or when every platform passes on its own",
	}
	own := _index_verdict([_att({"digest": "sha256:index"})])
	stellaops.denials(own, _pass_all(own)) == set()
}

test_fail_platforms_not_a_list_of_digests_is_malformed if {
	bad := {"responses": [[stub.index_borrow, object.union(stub.items[stub.index_borrow].value, {"platforms": [1]})]], "errors": [], "system_error": "", "status_code": 200}
	errors := stellaops.provider_errors([stub.index_borrow]) with data.lib.stellaops.transport.verdicts as bad
	contains(errors[stub.index_borrow], "malformed verdict")
	null_list := {"responses": [[stub.index_borrow, object.union(stub.items[stub.index_borrow].value, {"platforms": null})]], "errors": [], "system_error": "", "status_code": 200}
	object.keys(stellaops.provider_errors([stub.index_borrow])) == {stub.index_borrow} with data.lib.stellaops.transport.verdicts as null_list
}

test_fail_nested_index_attestations_count_for_nothing if {
	# A nested index sha256:mid lists the leaves; only the top index's own attestations, or each
	# leaf's own, can satisfy a constraint.
	verdict := {
		"digest": "sha256:top",
		"platforms": ["sha256:leaf1", "sha256:leaf2"],
		"platformDetails": [
			{"digest": "sha256:leaf1", "platform": "linux/amd64", "index": "sha256:mid"},
			{"digest": "sha256:leaf2", "platform": "linux/arm64", "index": "sha256:mid"},
		],
		"attestations": [_att({"digest": "sha256:mid"}), _att({"digest": "sha256:leaf2"})],
	}
	every view in stellaops.views(verdict) {
		every a in view.attestations {
			a.digest != "sha256:mid"
		}
	}
	problems := {v.digest: _t_problems(v) | some v in stellaops.views(verdict)}
	stellaops.denials(verdict, problems) == {
		"index <sha256:top> itself: no t",
		"platform <sha256:leaf1> (linux/amd64) of index <sha256:top>: no t",
	}
}

_t_problems(view) := {"no t"} if {
	count(stellaops.accepted_attestations(view, "t", {})) == 0
} else := set()
